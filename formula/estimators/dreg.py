"""DReG, doubly reparameterised gradients (Tucker, Lawson, Gu & Maddison 2018) for IWAE-style bounds
log 1/K sum_k w_k: the encoder gets sum_k w~_k^2 d log w_k / d z_k dz_k/dphi (q's parameters stopped inside
log w_k), the decoder IWAE's sum_k w~_k grad log w_k, with w~ the normalised weights."""

from __future__ import annotations

import torch

from .gradients import Reparameterised, register_estimator
from .own_draws import remember, state_of, stopped_log_prob


class _Scale:
    """A gradient hook on a draw: multiplies the gradient reaching z_k by w~_k once the weights are known."""

    __slots__ = ("weights",)

    def __init__(self):
        self.weights = None

    def __call__(self, grad):
        return grad if self.weights is None else grad * self.weights


class DoublyReparameterised(Reparameterised):
    """Pathwise draws; log q at its own draw with q's parameters stopped; the path through each draw z_k of a
    sampling set scaled by its normalised weight, so that the encoder's gradient is Tucker et al.'s eq. (8)."""

    name = "dreg"
    label = "doubly reparameterised (DReG: sum_k w~_k^2 dlog w_k/dz_k for q, IWAE's gradient for p)"
    keeps_draws = stops_own_score = uses_log_weights = True

    def keep(self, ctx, key, dist, z, is_set, decl):
        scale = None
        if is_set and z.requires_grad and torch.is_grad_enabled():
            scale = _Scale()
            z.register_hook(scale)
        ctx.put(key, z)
        remember(ctx, key, decl, self, scale)
        return None

    def own_log_prob(self, dist, z):
        return stopped_log_prob(dist, z)

    def log_weights(self, ctx, key, log_w, lse, error, power=1.0):
        """Scale the path through z_k by alpha + (1 - alpha) w^_k (w^ the normalised w^(1-alpha), power = 1 -
        alpha): the score term's DReG identity for the VR bound, Tucker et al.'s w~_k^2 at alpha = 0."""
        scale = state_of(ctx, key)
        if isinstance(scale, _Scale):
            z = ctx.trace[key]
            w = (1 - power) + power * torch.softmax(log_w.detach(), 0)
            while w.dim() < z.dim():
                w = w.unsqueeze(-1)
            scale.weights = w
        return lse


DREG = register_estimator(DoublyReparameterised())

__all__ = ["DoublyReparameterised", "DREG"]
