"""Contract cases for sequences and hierarchies (issue 12): a per-level sum over a three-level hierarchy (each
level its own network), Krishnan's DMM over a backward RNN's per-step features, a factorisation over steps with
prefix slices, and an exact sum whose nets do not broadcast; each against hand-written PyTorch."""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

import formula as fm
from contract.cases import B, Declarations, Inputs, case
from test_enumerated_inputs import C as CLASSES, unlabelled_m2
from test_levels import HIER, L, by_hand as hierarchy_by_hand, hierarchy
from test_sequence_functions import KRISHNAN, dmm, dmm_by_hand
from test_slices import FACTORISED, T, bern, factorised, normal, sequence
from contract.cases import _m2_decls
from models import C, X, Z, binary
from test_compile_models import m2_inner_by_hand

case("hvae-per-level", HIER, inputs=lambda: {"x": torch.rand(B, X, generator=torch.Generator().manual_seed(5)),
                                             "L": L}, draws=["z_1", "z_l"],
     reference=lambda d, i: hierarchy_by_hand(*d, i["x"]))(hierarchy)

case("dmm-krishnan", KRISHNAN, inputs=lambda: {"x": torch.randn(B, T, X, generator=torch.Generator().manual_seed(6))},
     draws=["z_0", "z_t"], reference=lambda d, i: dmm_by_hand(*d[:4], i["x"]),
     skip={"fullgraph": "Dynamo does not capture nn.GRU in one graph (it breaks the graph at RNN modules)"})(dmm)


def _factorised_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    first, step, emit = decls
    x = inputs["x"]
    zs = [normal(first.net(x[:, :1])).rsample()]
    for t in range(2, x.shape[1] + 1):
        zs.append(normal(step.net(x[:, :t], torch.stack(zs, 1))).rsample())
    return sum(bern(emit.net(zs[t])).log_prob(x[:, t]) for t in range(x.shape[1]))


case("steps-factorised", FACTORISED, inputs=lambda: {"x": sequence()}, draws=["z_1", "z_t"],
     reference=_factorised_ref)(factorised)

ENUMERATED = r"\sum_y q(y|x) KL(q(z|x,y) || p(z)) + H[q(y|x)]"


def _enumerated_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    qy, qz, _ = decls
    x = inputs["x"]
    q = Categorical(logits=qy.net(x)["logits"])
    ys = q.enumerate_support()
    post = Independent(Normal(**qz.net(x.expand(CLASSES, *x.shape), ys)), 1)
    std = Independent(Normal(torch.zeros(Z, dtype=x.dtype), torch.ones(Z, dtype=x.dtype)), 1)
    return (q.probs.T * kl_divergence(post, std)).sum(0) + q.entropy()


case("enumerated-concat", ENUMERATED, inputs=lambda: {"x": torch.rand(B, X, generator=torch.Generator().manual_seed(7))},
     draws=[], reference=_enumerated_ref)(unlabelled_m2)

LABELLED = (r"E_{\tilde p_l(x,y)}[E_{q(z|x,y)}[\log p(x|y,z) + \log p(y) + \log p(z) - \log q(z|x,y)]] + "
            r"\alpha E_{\tilde p_l(x,y)}[\log q(y|x)]")


def _labelled_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    qy, qz, px, py = decls[:4]
    x, y = inputs["x"], inputs["y"]
    return (m2_inner_by_hand(qz, px, py, x, y)
            + inputs["alpha"] * Categorical(logits=qy.net(x=x)["logits"]).log_prob(y))


case("m2-labelled-data-set", LABELLED, inputs=lambda: {"x": binary(B), "y": torch.arange(B) % C, "alpha": 0.3},
     draws=["z"], reference=_labelled_ref)(lambda: (*_m2_decls(False), fm.Data(r"\tilde p_l(x,y)")))


# VRNN (Chung et al. 2015): the recurrent state h_t = f(h_{t-1}, x_t, z_t) as a definition line, computed step by step
from test_recurrent_state import VRNN, vrnn, vrnn_by_hand, X as VRNN_X  # noqa: E402

case("vrnn", VRNN, inputs=lambda: {"x": torch.randn(B, T, VRNN_X, generator=torch.Generator().manual_seed(8))},
     draws=["z_t"], reference=lambda d, i: vrnn_by_hand(*d, i["x"]))(vrnn)
