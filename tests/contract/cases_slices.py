"""Contract cases for suffix slices and first-level prefixes (issue 12): Krishnan's structured posterior written
with `x_{\\geq t}` (each step's net reads steps t..T), and a per-level sum from l = 1 whose level-generic
declarations draw the first level from the empty prefix z_{<1}; each against hand-written PyTorch."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

import formula as fm
from contract.cases import B, T, Declarations, Inputs, case
from formula.families.per_index import PerIndex
from models import Gaussian, X, Z
from test_levels import HIER, L, Flat

SUFFIX = r"\sum_{t=1}^{T} E_{q(z_t|z_{t-1}, x_{\geq t})}[\log p(x_t|z_t)] - KL(q(z_t|z_{t-1}, x_{\geq t}) || p(z_t|z_{t-1}))"


class SuffixMean(nn.Module):
    """q(z_t|z_{t-1}, x_{>=t}): a Gaussian of the previous draw and the mean over the steps from t on."""

    def __init__(self):
        super().__init__()
        self.gauss = Gaussian(Z + X)

    def forward(self, z, xs):
        return self.gauss(z, xs.mean(1))


def normal(params):
    return Independent(Normal(params["loc"], params["scale"]), 1)


def suffix_dmm():
    torch.manual_seed(0)
    return [fm.Normal(r"q(z_t|z_{t-1}, x_{\geq t})", net=SuffixMean()), fm.Normal("p(z_t|z_{t-1})", net=Gaussian(Z)),
            fm.Normal("p(x_t|z_t)", net=Gaussian(Z, X))]


def _suffix_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, trans, emit = decls
    x, z = inputs["x"], inputs["z_0"]
    total = 0.0
    for t in range(1, x.shape[1] + 1):
        post, prior = normal(q.net(z, x[:, t - 1:])), normal(trans.net(z))
        z_t = post.rsample()
        total = total + normal(emit.net(z_t)).log_prob(x[:, t - 1]) - kl_divergence(post, prior)
        z = z_t
    return total


case("dmm-suffix-slice", SUFFIX, inputs=lambda: {"x": torch.randn(B, T, X, generator=torch.Generator().manual_seed(8)),
                                                  "z_0": torch.zeros(B, Z)},
     draws=["z_t"], reference=_suffix_ref)(suffix_dmm)

FROM_ONE = HIER.replace("l=2", "l=1")


def generic_levels():
    torch.manual_seed(0)
    ql = fm.Normal("q(z_l|x,z_{<l})", net=PerIndex([Flat(X + l * Z) for l in range(L)]), shape=(Z,))
    pl = fm.Normal("p(z_l|z_{<l})", net=PerIndex([Flat(l * Z) for l in range(L)]), shape=(Z,))
    return [ql, pl]


def _from_one_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    ql, pl = decls
    x = inputs["x"]
    z, total = [], 0.0
    for l in range(1, inputs["L"] + 1):
        prefix = torch.stack(z, 1) if z else x.new_zeros(x.shape[0], 0, Z)
        q, p = normal(ql.net.nets[l - 1](x, prefix)), normal(pl.net.nets[l - 1](prefix))
        total = total + kl_divergence(q, p)
        if l < inputs["L"]:
            z.append(q.rsample())
    return total


case("hvae-generic-first-level", FROM_ONE,
     inputs=lambda: {"x": torch.rand(B, X, generator=torch.Generator().manual_seed(9)), "L": L},
     draws=["z_l"], reference=_from_one_ref)(generic_levels)
