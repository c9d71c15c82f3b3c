"""The hand-written PyTorch baselines: VAE, IWAE, deep Markov model, GAN and flow losses as a careful person
writes them.

Reparameterised Normal encoder, Bernoulli decoder through `binary_cross_entropy_with_logits`, closed-form
Gaussian KL; IWAE by log-sum-exp over K draws; the DMM by a Python loop over time. Each function returns the
scalar loss (the negative objective, averaged over the batch) that the timing loop differentiates.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from nets import DMMNets, FlowNets, GANNets, VAENets

_LOG_2PI = math.log(2 * math.pi)


def _log_bernoulli(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) summed over the last dimension."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def _kl_normal_std(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, scale) || N(0, 1)) summed over the last dimension."""
    return (0.5 * (scale.square() + loc.square() - 1.0) - scale.log()).sum(-1)


def _kl_normal(loc_q, scale_q, loc_p, scale_p) -> torch.Tensor:
    """KL(N(loc_q, scale_q) || N(loc_p, scale_p)) summed over the last dimension."""
    var_ratio = (scale_q / scale_p).square()
    t1 = ((loc_q - loc_p) / scale_p).square()
    return (0.5 * (var_ratio + t1 - 1.0 - var_ratio.log())).sum(-1)


def _log_normal(z, loc, scale) -> torch.Tensor:
    """log N(z; loc, scale) summed over the last dimension."""
    return (-0.5 * ((z - loc) / scale).square() - scale.log() - 0.5 * _LOG_2PI).sum(-1)


def vae_loss(nets: VAENets, x: torch.Tensor) -> torch.Tensor:
    """Negative ELBO, one reparameterised draw, closed-form KL to N(0, I)."""
    q = nets.encoder(x)
    z = q["loc"] + q["scale"] * torch.randn_like(q["loc"])
    rec = _log_bernoulli(nets.decoder(z)["logits"], x)
    return -(rec - _kl_normal_std(q["loc"], q["scale"])).mean()


def iwae_loss(nets: VAENets, x: torch.Tensor, k: int) -> torch.Tensor:
    """Negative IWAE bound with `k` importance draws, log-mean-exp of log weights."""
    q = nets.encoder(x)
    loc, scale = q["loc"], q["scale"]
    z = loc + scale * torch.randn((k,) + loc.shape, dtype=loc.dtype, device=loc.device)
    log_px_z = _log_bernoulli(nets.decoder(z)["logits"], x.expand((k,) + x.shape))
    log_pz = (-0.5 * z.square() - 0.5 * _LOG_2PI).sum(-1)
    log_qz = _log_normal(z, loc, scale)
    bound = torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)
    return -bound.mean()


def dmm_loss(nets: DMMNets, x: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """Negative DMM ELBO: for t = 1..T draw z_t ~ q(z_t|z_{t-1}, x_t), add log p(x_t|z_t) - KL(q || p(z_t|z_{t-1}))."""
    z_prev = z0
    total = x.new_zeros(x.shape[0])
    for t in range(x.shape[1]):
        x_t = x[:, t]
        q = nets.combiner(z_prev, x_t)
        p = nets.transition(z_prev)
        z = q["loc"] + q["scale"] * torch.randn_like(q["loc"])
        rec = _log_bernoulli(nets.emitter(z)["logits"], x_t)
        total = total + rec - _kl_normal(q["loc"], q["scale"], p["loc"], p["scale"])
        z_prev = z
    return -total.mean()


def gan_value(nets: GANNets, x: torch.Tensor, z_dim: int) -> torch.Tensor:
    """The GAN value E[log D(x)] + E[log(1 - D(G(z)))], z ~ N(0, I): D ascends it, G descends it."""
    d, g = nets.discriminator, nets.generator
    z = torch.randn(x.shape[0], z_dim, dtype=x.dtype, device=x.device)
    return (torch.log(d(x)).squeeze(-1) + torch.log(1 - d(g(z))).squeeze(-1)).mean()


def flow_loss(nets: FlowNets, x: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the data under the zuko flow, zuko's own log-density."""
    return -nets.flow().log_prob(x).mean()


__all__ = ["vae_loss", "iwae_loss", "dmm_loss", "gan_value", "flow_loss"]
