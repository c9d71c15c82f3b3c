"""Straight-through Gumbel-softmax (Jang, Gu & Poole 2017, section 2.2; Bengio et al. 2013): for relaxed
categoricals and Bernoullis, the forward value is the hard one-hot (or 0/1) value of the relaxed draw, the
gradient that of the relaxed draw."""

from __future__ import annotations

import torch
from torch import distributions as D

from .gradients import GradientEstimator, register_estimator

_RELAXED = (D.RelaxedOneHotCategorical, D.RelaxedBernoulli)


def _base(dist):
    while isinstance(dist, D.Independent):
        dist = dist.base_dist
    return dist


def hard(y: torch.Tensor, one_hot: bool) -> torch.Tensor:
    """The hard value of a relaxed draw: the one-hot of its largest entry, or 0/1 at 1/2."""
    if one_hot:
        return torch.zeros_like(y).scatter_(-1, y.argmax(-1, keepdim=True), 1.0)
    return (y > 0.5).to(y.dtype)


class StraightThrough(GradientEstimator):
    """`hard(y) + y - sg(y)` for a relaxed draw y: one-hot forward, the relaxed sample's gradient backward."""

    name = "st"
    label = "straight-through Gumbel-softmax (hard one-hot forward, relaxed gradient)"

    def applies(self, capabilities) -> bool:
        family = capabilities.family
        return bool(capabilities.reparameterised) and isinstance(family, type) and issubclass(family, _RELAXED)

    def draw(self, dist, shape):
        y = dist.rsample(shape)
        return hard(y.detach(), isinstance(_base(dist), D.RelaxedOneHotCategorical)) + (y - y.detach())


ST = register_estimator(StraightThrough())

__all__ = ["StraightThrough", "ST", "hard"]
