"""`\\mathcal{U}\\{1, \\ldots, T\\}`: the uniform distribution on the integers low..high (both included), which
torch.distributions lacks; a thin wrapper of a uniform `Categorical` shifted by `low`.

    >>> import torch
    >>> u = UniformDiscrete(1, 4, dtype=torch.float32)
    >>> u.enumerate_support().tolist(), round(u.entropy().item(), 4)
    ([1, 2, 3, 4], 1.3863)
"""

from __future__ import annotations

import math

import torch
import torch.distributions as D
from torch.distributions import constraints

__all__ = ["UniformDiscrete"]


class UniformDiscrete(D.Distribution):
    """Integers `low..high` with equal probability; draws are `torch.long`, one per element of `batch_shape`."""

    arg_constraints = {}
    has_enumerate_support = True
    has_rsample = False

    def __init__(self, low: int, high: int, batch_shape=torch.Size(), *, dtype=torch.float32, device=None,
                 validate_args=None):
        low, high = int(low), int(high)
        if high < low:
            raise ValueError(f"UniformDiscrete needs low <= high, got low={low}, high={high}")
        self.low, self.high = low, high
        self._count = high - low + 1
        logits = torch.zeros(self._count, dtype=dtype, device=device)
        self._categorical = D.Categorical(logits=logits.expand(*batch_shape, self._count), validate_args=False)
        super().__init__(torch.Size(batch_shape), validate_args=False)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(self.low, self.high)

    @property
    def mean(self) -> torch.Tensor:
        return torch.full(self.batch_shape, (self.low + self.high) / 2, dtype=self._categorical.logits.dtype,
                          device=self._categorical.logits.device)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._categorical.sample(sample_shape) + self.low

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        log_p = self._categorical.logits[..., 0]  # normalised: -log(count) for every value
        inside = (value >= self.low) & (value <= self.high) & (value == torch.round(value))
        return torch.where(inside, log_p, torch.full_like(log_p, -math.inf))

    def entropy(self) -> torch.Tensor:
        return -self._categorical.logits[..., 0]

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        values = torch.arange(self.low, self.high + 1, device=self._categorical.logits.device)
        values = values.reshape((-1,) + (1,) * len(self.batch_shape))
        return values.expand((-1,) + self.batch_shape) if expand else values
