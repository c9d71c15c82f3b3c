"""Listing the support of a discrete distribution, jointly over a multi-element event.

torch's `Independent` does not enumerate (its `has_enumerate_support` is False once dimensions are
reinterpreted); a declared Bernoulli vector `p(y|x)` with event shape (3,) has 2^3 joint values, which a sum
over `y` needs. `enumerate_joint` builds them from the base's support, up to `ENUMERATION_LIMIT` values.
"""

from __future__ import annotations

import math

import torch
import torch.distributions as D

from ..errors import FormulaCheckError

__all__ = ["ENUMERATION_LIMIT", "enumerate_joint"]

ENUMERATION_LIMIT = 1 << 16  # most joint support values built for a multi-element event


def enumerate_joint(dist: D.Distribution, expand: bool, where) -> torch.Tensor:
    """`[n, *batch_shape, *event_shape]` values of `dist` (batch dims of size 1 unless `expand`)."""
    if not isinstance(dist, D.Independent):
        return dist.enumerate_support(expand=expand)
    base, inner_dims = dist.base_dist, dist.reinterpreted_batch_ndims
    while isinstance(base, D.Independent):
        base, inner_dims = base.base_dist, inner_dims + base.reinterpreted_batch_ndims
    support = base.enumerate_support(expand=False)
    k = support.shape[0]
    values = support.reshape((k,) + tuple(base.event_shape))
    inner = tuple(base.batch_shape[len(base.batch_shape) - inner_dims:])
    m = math.prod(inner)
    if k ** m > ENUMERATION_LIMIT:
        raise FormulaCheckError(f"{where.label} {where.signature}: its event of shape {tuple(dist.event_shape)} "
                                f"has {k}^{m} values, too many to enumerate", where.signature,
                                (0, len(where.signature)))
    labels = torch.arange(k, device=values.device)
    index = torch.cartesian_prod(*[labels] * m).reshape(k ** m, m)
    joint = values[index].reshape((k ** m,) + inner + tuple(base.event_shape))
    outer = tuple(dist.batch_shape)
    joint = joint.reshape((k ** m,) + (1,) * len(outer) + tuple(dist.event_shape))
    return joint.expand((k ** m,) + outer + tuple(dist.event_shape)) if expand else joint
