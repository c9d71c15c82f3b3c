"""Contract cases for products and mixtures of experts and autoregressive distributions (issue 11, items 2-3).

MVAE's sub-sampled ELBO over a product of Gaussian experts, MMVAE's bound over a mixture of experts, a VAE with a
learned Gaussian-mixture prior, a MADE by maximum likelihood and a VAE with a MADE decoder; each against
hand-written PyTorch making the same draws in the same order.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence

import formula as fm
from contract.cases import B, W, Declarations, Inputs, case
from models import Gaussian, Logits, X, Z, binary
from test_compile_models import bern, normal, std_normal

K = 3  # components of the mixture prior


def _xw() -> Inputs:
    return {"x": binary(B), "w": binary(B, W, seed=1)}


def _x() -> Inputs:
    return {"x": binary(B)}


# --- MVAE: a product of Gaussian experts, the ELBO over the joint and each modality ---------------------------

MVAE = ("E_{q(z|x,w)}[log p(x|z) + log p(w|z)] - KL(q(z|x,w)||p(z)) + E_{q(z|x)}[log p(x|z)] - KL(q(z|x)||p(z)) "
        "+ E_{q(z|w)}[log p(w|z)] - KL(q(z|w)||p(z))")


def _mvae() -> Declarations:
    torch.manual_seed(0)
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    poe = fm.ProductOfExperts("q(z|x,w)", experts=[prior, fm.Normal("q_x(z|x)", net=Gaussian(X)),
                                                   fm.Normal("q_w(z|w)", net=Gaussian(W))])
    return (poe, poe.subset("x"), poe.subset("w"), fm.Bernoulli("p(x|z)", net=Logits(Z)),
            fm.Bernoulli("p(w|z)", net=Logits(Z, W)), prior)


def _product(*params) -> Independent:
    """The product of diagonal Gaussians by hand: precisions add, means precision-weighted."""
    precision = sum(1 / p["scale"] ** 2 for p in params)
    loc = sum(p["loc"] / p["scale"] ** 2 for p in params) / precision
    return Independent(Normal(loc, precision.rsqrt()), 1)


def _mvae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    poe, _, _, px, pw, prior = decls
    x, w = inputs["x"], inputs["w"]
    standard = {"loc": prior.loc, "scale": prior.scale}
    ex, ew = poe.experts[1].net(x=x), poe.experts[2].net(w=w)
    total = 0.0
    for q, observed in ((_product(standard, ex, ew), [(px, x), (pw, w)]), (_product(standard, ex), [(px, x)]),
                        (_product(standard, ew), [(pw, w)])):
        z = q.rsample()
        total = total + sum(bern(p.net(z=z)).log_prob(v) for p, v in observed) - kl_divergence(q, std_normal(Z))
    return total


case("mvae-poe", MVAE, inputs=_xw, draws=["z"], reference=_mvae_ref)(_mvae)


# --- MMVAE: a mixture of experts, log-weights added in log space ----------------------------------------------

MMVAE = "E_{q(z|x,w)}[log p(x|z) + log p(w|z) + log p(z) - log q(z|x,w)]"


def _mmvae() -> Declarations:
    torch.manual_seed(0)
    moe = fm.Mixture("q(z|x,w)", components=[fm.Normal("q_x(z|x)", net=Gaussian(X)),
                                             fm.Normal("q_w(z|w)", net=Gaussian(W))])
    return (moe, fm.Bernoulli("p(x|z)", net=Logits(Z)), fm.Bernoulli("p(w|z)", net=Logits(Z, W)),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)))


def _mmvae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    moe, px, pw, _ = decls
    x, w = inputs["x"], inputs["w"]
    qx, qw = normal(moe.components[0].net(x=x)), normal(moe.components[1].net(w=w))
    choice = Categorical(logits=torch.zeros(x.shape[0], 2)).sample()  # the component, then its draw
    zx, zw = qx.rsample(), qw.rsample()
    z = torch.where(choice[:, None] == 0, zx, zw)
    log_q = torch.logsumexp(torch.stack([qx.log_prob(z), qw.log_prob(z)]) + math.log(0.5), 0)
    return bern(px.net(z=z)).log_prob(x) + bern(pw.net(z=z)).log_prob(w) + std_normal(Z).log_prob(z) - log_q


case("mmvae-moe", MMVAE, inputs=_xw, draws=["z"], reference=_mmvae_ref)(_mmvae)


# --- a VAE with a learned Gaussian-mixture prior (no closed-form KL: Monte Carlo) ----------------------------

GMM_VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"


def _gmm_vae() -> Declarations:
    torch.manual_seed(0)
    loc, scale = torch.nn.Parameter(torch.randn(K, Z)), torch.nn.Parameter(torch.rand(K, Z) + 0.5)
    prior = fm.Mixture("p(z)", components=fm.Normal("c(z)", loc=loc, scale=scale, event_dims=1),
                       learn_weights=True)
    return fm.Normal("q(z|x)", net=Gaussian(X)), fm.Bernoulli("p(x|z)", net=Logits(Z)), prior


def _gmm_vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, prior = decls
    x = inputs["x"]
    qz = normal(q.net(x=x))
    rec = bern(p.net(z=qz.rsample())).log_prob(x)
    z = qz.rsample()  # the KL's own draw
    part = prior.components[0]
    gmm = MixtureSameFamily(Categorical(logits=prior.logits), Independent(Normal(part.loc, part.scale), 1))
    return rec - (qz.log_prob(z) - gmm.log_prob(z))


case("gmm-prior-vae", GMM_VAE, inputs=_x, draws=["z"], reference=_gmm_vae_ref)(_gmm_vae)


# --- MADE: exact maximum likelihood, and as a VAE's decoder -----------------------------------------------------

MADE_ML = "E_{x ~ p_data(x)}[log p(x)]"


def _made() -> Declarations:
    torch.manual_seed(0)
    return fm.Autoregressive("p(x)", net=fm.MADE(X, hidden=(8,))), fm.Data("p_data(x)")


def _one_at_a_time(net, x: torch.Tensor, *context: torch.Tensor) -> torch.Tensor:
    """Sum over dimensions of Bernoulli(logits_i(x_{<i})).log_prob(x_i), each from a copy of x cut at i."""
    total = 0.0
    for i in range(x.shape[-1]):
        seen = torch.cat([x[..., :i], torch.zeros_like(x[..., i:])], -1)
        logits = net(seen, *context)["logits"][..., i]
        total = total + torch.distributions.Bernoulli(logits=logits).log_prob(x[..., i])
    return total


case("made", MADE_ML, inputs=_x, draws=[], reference=lambda decls, inputs: _one_at_a_time(decls[0].net,
                                                                                         inputs["x"]))(_made)


def _made_decoder() -> Declarations:
    torch.manual_seed(0)
    return (fm.Normal("q(z|x)", net=Gaussian(X)), fm.Autoregressive("p(x|z)", net=fm.MADE(X, hidden=(8,), context=Z)),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)))


def _made_decoder_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, _ = decls
    x = inputs["x"]
    qz = normal(q.net(x=x))
    return _one_at_a_time(p.net, x, qz.rsample()) - kl_divergence(qz, std_normal(Z))


case("vae-made-decoder", GMM_VAE, inputs=_x, draws=["z"], reference=_made_decoder_ref)(_made_decoder)
