"""`Summed`: torch's `Independent` for the event dimensions a declaration reinterprets, one sum cheaper.

It is an `Independent` (isinstance, KL rules, `expand`, capabilities read through it alike) whose `log_prob` sums the
base's log-densities over the event dimensions with one `sum`, where torch's reshapes first: the same value (a sum over
the same elements in the same order), one view and its backward node fewer per density in the hot path. The closed-form
KL rules of `formula.families.kl_rules` treat it as any `Independent`.
"""

from __future__ import annotations

import torch
import torch.distributions as D
from torch.distributions.utils import _sum_rightmost

__all__ = ["Summed", "summed"]


class Summed(D.Independent):
    """An `Independent(base, k)` whose log-density is `base.log_prob(x).sum(-1)` for one event dimension."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_prob = self.base_dist.log_prob(value)
        if self.reinterpreted_batch_ndims == 1:
            return log_prob.sum(-1)
        return _sum_rightmost(log_prob, self.reinterpreted_batch_ndims)


def summed(dist: D.Distribution, dims: int) -> D.Distribution:
    """`dist` with its `dims` rightmost batch dimensions reinterpreted as the event (itself when `dims` is 0)."""
    return Summed(dist, dims, validate_args=False) if dims else dist
