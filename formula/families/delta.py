"""`Delta`: the point-mass torch distribution behind `formula.Deterministic`.

A deterministic node `h = f(x)` is a distribution whose every draw is the network's output. Its reparameterised
sample is the value itself (gradients flow into the network), its log-density is taken as 0 and its entropy as
0, the convention of Pyro's `Delta` with `log_density=0`, so that `log p(h|x)` of a deterministic node adds
nothing to an objective.
"""

from __future__ import annotations

import torch
from torch.distributions import Distribution, constraints

__all__ = ["Delta"]


class Delta(Distribution):
    """A point mass at `value` (batch shape `value.shape`, scalar events; wrap in `Independent` for more)."""

    arg_constraints = {"value": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, value: torch.Tensor, validate_args: bool | None = None):
        self.value = value
        super().__init__(batch_shape=value.shape, event_shape=torch.Size(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        """The same point mass with its value broadcast to `batch_shape`."""
        new = self._get_checked_instance(Delta, _instance)
        batch_shape = torch.Size(batch_shape)
        new.value = self.value.expand(batch_shape)
        super(Delta, new).__init__(batch_shape, torch.Size(), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """The value, broadcast to `sample_shape + batch_shape`; differentiable in the value."""
        return self.value.expand(torch.Size(sample_shape) + self.value.shape)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """The value, broadcast to `sample_shape + batch_shape`, detached."""
        return self.rsample(sample_shape).detach()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Zero, broadcast to the shape of `value` (see the module docstring for why not -inf off the point)."""
        shape = torch.broadcast_shapes(value.shape, self.batch_shape)
        dtype = self.value.dtype if self.value.is_floating_point() else torch.get_default_dtype()
        return torch.zeros(shape, dtype=dtype, device=self.value.device)

    def entropy(self) -> torch.Tensor:
        """Zero for every batch element."""
        dtype = self.value.dtype if self.value.is_floating_point() else torch.get_default_dtype()
        return torch.zeros(self.batch_shape, dtype=dtype, device=self.value.device)

    @property
    def mean(self) -> torch.Tensor:
        return self.value

    @property
    def mode(self) -> torch.Tensor:
        return self.value

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.value)
