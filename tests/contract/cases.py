"""The model cases of the contract test, in one place: every model of docs/language.md §5, and each later one.

A case is one `@case(...)` entry on a function that returns fresh declarations (seeded, so that two calls give
the same weights). It names the formula text, an inputs factory (a batch of `B` examples), the variables the plan
must say it draws, and, where one exists, a hand-written PyTorch reference that makes the same draws in the same
order from the same seed. `skip={check: reason}` opts a case out of a check it cannot do; `xfail={check: reason}`
marks a check that fails because of a bug in formula (the reason names the bug; remove it once fixed).
The checks are the test functions of test_contract.py; their names are the keys of `skip` and `xfail`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.distributions import Categorical, kl_divergence
from torch.nn import functional as F

import formula as fm
from models import C, X, Z, Gaussian, Logits, binary, vae
from test_compile_models import (DMM, IWAE, M2_LABELLED, M2_UNLABELLED, VAE, VAE_LATEX, SeqPosterior, bern,
                                 iwae_by_hand, m2, m2_inner_by_hand, normal, std_normal, vae_by_hand)

B = 5  # examples per batch
W = 5  # size of JMVAE's second modality
T = 4  # sequence length of the time-series cases
BELIEF = 4  # size of TD-VAE's belief state

Declarations = Sequence[nn.Module]
Inputs = Dict[str, Any]
Reference = Callable[[Declarations, Inputs], torch.Tensor]


@dataclass(frozen=True)
class Case:
    """One model: its formula, how to build its declarations and inputs, and what the checks may expect of it."""

    name: str
    text: str
    declarations: Callable[[], Declarations]
    inputs: Callable[[], Inputs]
    draws: Tuple[str, ...]
    reference: Optional[Reference] = None
    reference_grads: bool = True  # False where the estimator is a score-function surrogate: value only
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of fm.compile
    skip: Mapping[str, str] = field(default_factory=dict)
    xfail: Mapping[str, str] = field(default_factory=dict)

    def compile(self, decls: Declarations, **options: Any) -> "fm.Objective":
        """The case's objective over the given declarations (`options` override the case's own)."""
        return fm.compile(self.text, list(decls), **{**self.options, **options})


CASES: List[Case] = []

# Known bugs of formula, each the reason of an xfail (the lead removes the entry once it is fixed).


def case(name: str, text: str, *, inputs: Callable[[], Inputs], draws: Sequence[str], **extra: Any):
    """Register the decorated declaration factory as the model case `name` (see the module docstring)."""

    def register(declarations: Callable[[], Declarations]) -> Callable[[], Declarations]:
        assert name not in {c.name for c in CASES}, f"two model cases are named {name!r}"
        CASES.append(Case(name, text, declarations, inputs, tuple(draws), **extra))
        return declarations

    return register


def labels_one_hot(net: nn.Module) -> nn.Module:
    """`net`, one-hot encoding integer labels in its parameters' dtype before it runs (models._cat would use the
    default dtype, so a float64 copy would fail); the weights are untouched."""

    def encode(module: nn.Module, args: tuple, kwargs: dict) -> Tuple[tuple, dict]:
        dtype = next(module.parameters()).dtype
        hot = lambda v: v if v.is_floating_point() else F.one_hot(v, C).to(dtype)  # noqa: E731
        return tuple(map(hot, args)), {k: hot(v) for k, v in kwargs.items()}

    net.register_forward_pre_hook(encode, with_kwargs=True)
    return net


# --- inputs -------------------------------------------------------------------------------------------------

def _x() -> Inputs:
    return {"x": binary(B)}


def _labelled() -> Inputs:
    return {"x": binary(B), "y": torch.arange(B) % C}


def _sequence() -> Inputs:
    return {"x": binary(B * T).reshape(B, T, X), "z_0": torch.zeros(B, Z)}


def _beliefs() -> Inputs:
    g = torch.Generator().manual_seed(2)
    return {"b_1": torch.randn(B, BELIEF, generator=g), "b_2": torch.randn(B, BELIEF, generator=g), "x_2": binary(B)}


# --- references (the same draws, in the same order, as the compiled objective) ------------------------------

def _vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p = decls[:2]
    return vae_by_hand(q, p, inputs["x"], beta=inputs.get("beta", 1.0))[0]


def _mc_kl_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, _ = decls
    qz = normal(q.net(x=inputs["x"]))
    rec = bern(p.net(z=qz.rsample())).log_prob(inputs["x"])
    z = qz.rsample()  # the KL's own draw
    return rec - (qz.log_prob(z) - std_normal(Z).log_prob(z))


def _joint_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, _ = decls
    qz = normal(q.net(x=inputs["x"]))
    z = qz.rsample()
    return bern(p.net(z=z)).log_prob(inputs["x"]) + std_normal(Z).log_prob(z) - qz.log_prob(z)


def _cvae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, prior = decls
    x, y = inputs["x"], inputs["y"]
    qz = normal(q.net(x=x, y=y))
    z = qz.rsample()
    return bern(p.net(z=z, y=y)).log_prob(x) - kl_divergence(qz, normal(prior.net(y=y)))


def _iwae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, _ = decls
    return iwae_by_hand(q, p, inputs["x"], inputs["K"])


def _m2_labelled_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    qz, px, py, _ = decls
    return m2_inner_by_hand(qz, px, py, inputs["x"], inputs["y"])


def _m2_unlabelled_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    qy, qz, px, py, _ = decls
    qyd = Categorical(logits=qy.net(x=inputs["x"])["logits"])
    y = qyd.sample()
    return m2_inner_by_hand(qz, px, py, inputs["x"], y) + qyd.entropy()


def _m2_enumerated_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    qy, qz, px, py, _ = decls
    qyd = Categorical(logits=qy.net(x=inputs["x"])["logits"])
    ys = qyd.enumerate_support()  # [C, B]: one z draw per (class, example)
    inner = m2_inner_by_hand(qz, px, py, inputs["x"], ys)
    return (qyd.log_prob(ys).exp() * inner).sum(0) + qyd.entropy()


def _jmvae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    qxw, qx, qw, px, pw, _ = decls
    x, w, alpha = inputs["x"], inputs["w"], inputs["alpha"]
    q = normal(qxw.net(x=x, w=w))
    z = q.rsample()
    return (bern(px.net(z=z)).log_prob(x) + bern(pw.net(z=z)).log_prob(w) - kl_divergence(q, std_normal(Z))
            - alpha * (kl_divergence(q, normal(qx.net(x=x))) + kl_divergence(q, normal(qw.net(w=w)))))


def _dmm_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, trans, emit = decls[:3]
    x, z_prev = inputs["x"], inputs.get("z_0")
    total = 0.0
    for t in range(x.shape[1]):
        if z_prev is None:  # the declared p(z_0) of the dmm-prior case
            z_prev = std_normal(Z).rsample((x.shape[0],))
        qd = normal(q.net(z_prev, x))
        z = qd.rsample()
        total = total + bern(emit.net(z=z)).log_prob(x[:, t]) - kl_divergence(qd, normal(trans.net(z_prev)))
        z_prev = z
    return total


def _td_vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    belief, smooth, trans, decoder = decls
    b1, b2, x2 = inputs["b_1"], inputs["b_2"], inputs["x_2"]
    pb2 = normal(belief.net(b=b2))
    z2 = pb2.rsample()
    qz1 = normal(smooth.net(z2, b1, b2))
    z1 = qz1.rsample()
    return (bern(decoder.net(z=z2)).log_prob(x2) + normal(belief.net(b=b1)).log_prob(z1)
            + normal(trans.net(z1)).log_prob(z2) - pb2.log_prob(z2) - qz1.log_prob(z1))


# --- declarations and the cases ------------------------------------------------------------------------------

def vae_without_prior() -> Declarations:
    """models.vae's q(z|x) and p(x|z), the same weights, for a formula that writes its prior out."""
    torch.manual_seed(0)
    return fm.Normal("q(z|x)", net=Gaussian(X)), fm.Bernoulli("p(x|z)", net=Logits(Z))


def _m2_decls(labelled: bool) -> Declarations:
    qy, qz, px, py, pz = m2()
    labels_one_hot(qz.net), labels_one_hot(px.net)
    return (qz, px, py, pz) if labelled else (qy, qz, px, py, pz)


def _dmm_decls() -> Declarations:
    torch.manual_seed(0)
    q = fm.Normal("q(z_t|z_{t-1},x)", net=SeqPosterior())
    trans = fm.Normal("p(z_t|z_{t-1})", net=Gaussian(Z))
    emit = fm.Bernoulli("p(x_t|z_t)", net=Logits(Z))
    return q, trans, emit


case("vae", VAE, inputs=_x, draws=["z"], reference=_vae_ref)(vae)
case("vae-latex", VAE_LATEX, inputs=_x, draws=["z"], reference=_vae_ref)(vae)
case("beta-vae", r"E_{q(z|x)}[log p(x|z)] - \beta D_{KL}(q(z|x)||p(z))", inputs=lambda: {**_x(), "beta": 0.5},
     draws=["z"], reference=_vae_ref)(vae)
case("elbo-joint", "E_{q(z|x)}[log p(x,z) - log q(z|x)]", inputs=_x, draws=["z"], reference=_joint_ref)(vae)
case("vae-explicit-prior", r"E_q(z|x)[log p(x|z)] - KL(q(z|x) || \mathcal{N}(0, I))", inputs=_x, draws=["z"],
     reference=_vae_ref)(vae_without_prior)
case("vae-mc-kl", VAE, inputs=_x, draws=["z"], options={"analytic_kl": False}, reference=_mc_kl_ref)(vae)
case("iwae", IWAE, inputs=lambda: {**_x(), "K": 3}, draws=["z_{1:K}"], reference=_iwae_ref)(vae)


@case("cvae", "E_{q(z|x,y)}[log p(x|z,y)] - KL(q(z|x,y) || p(z|y))", inputs=_labelled, draws=["z"],
      reference=_cvae_ref)
def _cvae() -> Declarations:
    torch.manual_seed(0)
    return (fm.Normal("q(z|x,y)", net=labels_one_hot(Gaussian(X + C))),
            fm.Bernoulli("p(x|z,y)", net=labels_one_hot(Logits(Z + C))),
            fm.Normal("p(z|y)", net=labels_one_hot(Gaussian(C))))


case("m2-labelled", M2_LABELLED, inputs=_labelled, draws=["z"], reference=_m2_labelled_ref)(lambda: _m2_decls(True))
case("m2-unlabelled", M2_UNLABELLED, inputs=_x, draws=["y", "z"], reference=_m2_unlabelled_ref,
     reference_grads=False)(lambda: _m2_decls(False))
case("m2-enumerated",
     r"\sum_{y} q(y|x) E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] + H[q(y|x)]",
     inputs=_x, draws=["z"], reference=_m2_enumerated_ref)(lambda: _m2_decls(False))


@case("jmvae-kl", r"E_{q(z|x,w)}[log p(x|z) + log p(w|z)] - KL(q(z|x,w)||p(z)) - \alpha (KL(q(z|x,w)||q(z|x)) "
      r"+ KL(q(z|x,w)||q(z|w)))", inputs=lambda: {**_x(), "w": binary(B, W, seed=1), "alpha": 0.3}, draws=["z"],
      reference=_jmvae_ref)
def _jmvae() -> Declarations:
    torch.manual_seed(0)
    return (fm.Normal("q(z|x,w)", net=Gaussian(X + W)), fm.Normal("q(z|x)", net=Gaussian(X)),
            fm.Normal("q(z|w)", net=Gaussian(W)), fm.Bernoulli("p(x|z)", net=Logits(Z)),
            fm.Bernoulli("p(w|z)", net=Logits(Z, W)), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)))


case("dmm", DMM, inputs=_sequence, draws=["z_t"], reference=_dmm_ref)(_dmm_decls)
case("dmm-initial-prior", DMM, inputs=lambda: {"x": _sequence()["x"]}, draws=["z_0", "z_t"], reference=_dmm_ref)(
    lambda: (*_dmm_decls(), fm.Normal("p(z_0)", loc=0.0, scale=1.0, shape=(Z,))))


@case("td-vae", "q(z_1,z_2|b_1,b_2) = q(z_1|z_2,b_1,b_2) p_B(z_2|b_2)\n"
      "E_{q(z_1,z_2|b_1,b_2)}[log p(x_2|z_2) + log p_B(z_1|b_1) + log p(z_2|z_1) - log p_B(z_2|b_2) "
      "- log q(z_1|z_2,b_1,b_2)]", inputs=_beliefs, draws=["z_2", "z_1"], reference=_td_vae_ref)
def _td_vae() -> Declarations:
    torch.manual_seed(0)
    return (fm.Normal("p_B(z|b)", net=Gaussian(BELIEF)),
            fm.Normal("q(z_1|z_2,b_1,b_2)", net=Gaussian(Z + 2 * BELIEF)),
            fm.Normal("p(z_2|z_1)", net=Gaussian(Z)), fm.Bernoulli("p(x|z)", net=Logits(Z)))


# --- two-player games and sample divergences (issue 10) --------------------------------------------------------

GAN = r"\min_G \max_D E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))]"
MMD_VAE = r"E_{q(z|x)}[\log p(x|z)] - \lambda \mathrm{MMD}_{imq}(q(z|x) \| p(z))"
CRITIC_PENALTY = r"E_{x \sim p_data(x)}[D(x)] - \lambda E_{x \sim p_data(x)}[(\|\nabla_x D(x)\|_2 - 1)^2]"


def _critic(out: nn.Module = None) -> nn.Module:
    return nn.Sequential(nn.Linear(X, 8), nn.Tanh(), nn.Linear(8, 1), *([out] if out is not None else []))


def _gan() -> Declarations:
    torch.manual_seed(0)
    return (fm.Function("D(x)", net=_critic(nn.Sigmoid())), fm.Function("G(z)", net=nn.Linear(Z, X)),
            fm.Data("p_data(x)"), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)))


def _prior_draws(prior, n: int) -> torch.Tensor:
    return torch.distributions.Normal(prior.loc, prior.scale).rsample((n,))


def _gan_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    d, g, _, prior = decls
    x = inputs["x"]
    z = _prior_draws(prior, x.shape[0])
    return torch.log(d.net(x)).squeeze(-1) + torch.log(1 - d.net(g.net(z))).squeeze(-1)


def _unbiased_imq_mmd2(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    scale = 2.0 * a.shape[-1]

    def mean_kernel(u, v, same):
        k = scale / (scale + torch.cdist(u, v) ** 2)
        n = u.shape[0]
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1)) if same else k.mean()

    return mean_kernel(a, a, True) + mean_kernel(c, c, True) - 2 * mean_kernel(a, c, False)


def _mmd_vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, prior = decls
    x = inputs["x"]
    rec = bern(p.net(z=normal(q.net(x=x)).rsample())).log_prob(x)
    a = normal(q.net(x=x)).rsample()
    c = _prior_draws(prior, x.shape[0]).reshape(a.shape)
    return rec - inputs["lambda"] * _unbiased_imq_mmd2(a, c)


def _penalty_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    (d, _) = decls
    x = inputs["x"].detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d.net(x).sum(), x, create_graph=True)
    penalty = (grad.flatten(1).norm(dim=-1) - 1) ** 2
    return d.net(inputs["x"]).squeeze(-1) - inputs["lambda"] * penalty


case("gan", GAN, inputs=_x, draws=["z"], reference=_gan_ref)(_gan)
case("mmd-vae", MMD_VAE, inputs=lambda: {**_x(), "lambda": 10.0}, draws=["z"], reference=_mmd_vae_ref,
     skip={"batch_of_one": "the unbiased MMD^2 needs two draws in a batch (a clear FormulaInputError below that)"})(
    vae)
NO_DOUBLE_BACKWARD = "torch.compile (aot_autograd) does not support double backward, which the penalty's gradient needs"
case("critic-penalty", CRITIC_PENALTY, inputs=lambda: {**_x(), "lambda": 10.0}, draws=[], reference=_penalty_ref,
     skip={"compiled": NO_DOUBLE_BACKWARD, "fullgraph": NO_DOUBLE_BACKWARD})(
    lambda: (torch.manual_seed(0), (fm.Function("D(x)", net=_critic()), fm.Data("p_data(x)")))[1])


__all__ = ["B", "CASES", "Case", "case", "labels_one_hot"]

from . import cases_experts  # noqa: E402,F401  (products and mixtures of experts, autoregressive)
from . import cases_flows  # noqa: E402,F401  (normalizing flows: zuko flows, planar-flow VI)
from . import cases_games  # noqa: E402,F401  (WGAN-GP, FactorVAE, critics' divergences)
from . import cases_explicit  # noqa: E402,F401  (explicit families, DDPM, denoising score matching)
from . import cases_diffusion  # noqa: E402,F401  (an EBM, DDPM's bound's KL, NCSN over several sigmas)
from . import cases_sequences  # noqa: E402,F401  (hierarchies per level, the DMM over an RNN, slices, exact sums)
from . import cases_text  # noqa: E402,F401  (the sentence VAE: a teacher-forced decoder over tokens)
from . import cases_tdvae  # noqa: E402,F401  (TD-VAE with two time indices drawn per example)
from . import cases_scenes  # noqa: E402,F401  (GQN: a sum over a set of context views)
from . import cases_slices  # noqa: E402,F401  (suffix slices x_{\geq t}, a hierarchy whose generic levels draw z_1)
