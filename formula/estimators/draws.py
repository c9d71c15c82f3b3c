"""The one rule for draw shapes: one draw per example, and a sampling set's K draws along a new leading dimension."""

from __future__ import annotations

from typing import Optional, Tuple

import torch


def sample_shape(dist: torch.distributions.Distribution, n: int, set_size: Optional[int] = None) -> Tuple[int, ...]:
    """The sample shape giving one draw per example: nothing extra for a conditioned distribution (its batch shape is
    the examples'), `(n,)` for an unconditioned one such as a prior; `(K, ...)` in front for a sampling set."""
    shape = () if dist.batch_shape else (n,)
    return (set_size,) + shape if set_size is not None else shape


def per_example(log_q: torch.Tensor) -> torch.Tensor:
    """A log-density of a sampling set's draws ([K, batch]) summed to one value per example ([batch])."""
    while log_q.dim() > 1:
        log_q = log_q.sum(0)
    return log_q


__all__ = ["sample_shape", "per_example"]
