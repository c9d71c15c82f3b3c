"""Contract cases for models of scenes (issue 12, item 10): GQN, whose representation is a sum over a varying
number of context views (`[batch, N_max, ...]` with `N=` the counts), against a hand-written masked sum and ELBO."""

from __future__ import annotations

import torch
from torch.distributions import kl_divergence

import formula as fm
from contract.cases import Declarations, Inputs, case
from test_set_sums import GQN, Gauss, Rep, R, V, X, Z, data, normal


def _gqn() -> Declarations:
    torch.manual_seed(0)
    return (fm.Function("f(x, v)", net=Rep()), fm.Normal("q(z|x^q, r, v^q)", net=Gauss(X + R + V)),
            fm.Normal("p(z|r, v^q)", net=Gauss(R + V)), fm.Normal("p(x^q|z, r, v^q)", net=Gauss(Z + R + V, X)))


def _gqn_inputs() -> Inputs:
    x, v, counts, xq, vq = data(seed=8)
    return {"x": x, "v": v, "N": counts, "x^q": xq, "v^q": vq}


def _gqn_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    f, q, p, dec = (d.net for d in decls)
    x, v, counts, xq, vq = (inputs[k] for k in ("x", "v", "N", "x^q", "v^q"))
    rows = []
    for b in range(x.shape[0]):  # each example's own views, one by one
        r = torch.zeros(R, dtype=x.dtype, device=x.device)
        for i in range(int(counts[b])):
            r = r + torch.tanh(f.lin(torch.cat([x[b, i], v[b, i]], -1)))
        rows.append(r)
    r = torch.stack(rows)
    post = normal(q(xq, r, vq))
    return normal(dec(post.rsample(), r, vq)).log_prob(xq) - kl_divergence(post, normal(p(r, vq)))


case("gqn", GQN, inputs=_gqn_inputs, draws=["z"], reference=_gqn_ref)(_gqn)
