"""Contract cases for normalizing flows (issue 11, item 1): a zuko flow's maximum likelihood, a VAE whose encoder is
a conditional zuko flow and whose prior is a flow (Monte Carlo KL), and amortised planar-flow VI with the
log-determinant written in the formula (Rezende & Mohamed 2015, eq. 15) -- each against hand-written PyTorch on
zuko's own distributions."""

from __future__ import annotations

import torch
import torch.distributions as D
from torch import nn

import formula as fm
from contract.cases import B, Declarations, Inputs, case
from models import X, Z, Gaussian, Logits, binary

zuko = __import__("pytest").importorskip("zuko")

ZUKO_GRAPH_BREAK = ("zuko itself breaks Dynamo's graph (ComposedTransform(*(t(c) for t in ...)): a generator into a "
                    "class's __init__), so zuko's own flow().log_prob fails fullgraph=True")
ZUKO_ON_META = ("zuko's MaskedMLP calls torch.unique on its masks while it is built, which has no meta kernel (built "
                "on the CPU and moved to meta, the flow works: moved_to_meta passes)")
ZUKO_SKIPS = {"fullgraph": ZUKO_GRAPH_BREAK, "meta_device": ZUKO_ON_META}
FLOW_VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))"
PLANAR_VI = (r"\mathbb{E}_{q_0(z_0|x)}\left[\log q_0(z_0|x) + U(f(z_0), x) - "
             r"\log \left|\det \frac{\partial f(z_0)}{\partial z_0}\right|\right]")


def _continuous() -> Inputs:
    return {"x": torch.randn(B, X, generator=torch.Generator().manual_seed(5))}


def _flow_mle_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    return decls[0].flow().log_prob(inputs["x"])


@case("flow-mle", "E_{p_data(x)}[log p(x)]", inputs=_continuous, draws=[], reference=_flow_mle_ref,
      skip=ZUKO_SKIPS)
def _flow_mle() -> Declarations:
    torch.manual_seed(0)
    return (fm.Flow("p(x)", zuko.flows.NSF(features=X, transforms=2, hidden_features=(16,))), fm.Data("p_data(x)"))


def _flow_vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, prior = decls
    x = inputs["x"]
    qz = q.flow(x)
    rec = D.Independent(D.Bernoulli(logits=p.net(z=qz.rsample())["logits"]), 1).log_prob(x)
    z = qz.rsample()  # the Monte Carlo KL's own draw (no closed form between two flows)
    return rec - (qz.log_prob(z) - prior.flow().log_prob(z))


@case("flow-vae", FLOW_VAE, inputs=lambda: {"x": binary(B)}, draws=["z"], reference=_flow_vae_ref,
      skip=ZUKO_SKIPS)
def _flow_vae() -> Declarations:
    torch.manual_seed(0)
    return (fm.Flow("q(z|x)", zuko.flows.MAF(Z, context=X, transforms=2, hidden_features=(16,))),
            fm.Bernoulli("p(x|z)", net=Logits(Z)),
            fm.Flow("p(z)", zuko.flows.NSF(features=Z, transforms=1, hidden_features=(8,))))


class _Energy(nn.Module):
    """U(z, x) = ½‖z - Ax‖² / s²: an unnormalised Gaussian posterior whose mean depends on x."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(X, Z)

    def forward(self, z, x):
        return 0.5 * (z - self.a(x)).pow(2).sum(-1) / 0.25


def _planar_vi_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q0, f, energy = decls
    x = inputs["x"]
    out = q0.net(x=x)
    qz = D.Independent(D.Normal(out["loc"], out["scale"]), 1)
    z0 = qz.rsample()
    zk, ladj = f.net.call_and_ladj(z0)
    return qz.log_prob(z0) + energy.net(zk, x) - ladj


@case("planar-vi", PLANAR_VI, inputs=_continuous, draws=["z_0"], reference=_planar_vi_ref)
def _planar_vi() -> Declarations:
    torch.manual_seed(0)
    return (fm.Normal("q_0(z_0|x)", net=Gaussian(X)), fm.Transform("f(z_0)", fm.PlanarFlow(Z, layers=3, init_scale=0.5)),
            fm.Function("U(z, x)", net=_Energy()))
