"""Where Langevin chains start: fresh noise (`UniformInit`), or a replay buffer of past chain ends that each chain
restarts from, refreshed with noise at a small rate (Du & Mordatch 2019, "Implicit generation and generalization
in energy-based models", section 3.1), so that short chains act as one long persistent one."""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn

from . import options

Init = Callable[[int, torch.Size, torch.Tensor], torch.Tensor]  # (n, event shape, a tensor to take dtype/device of)


class UniformInit:
    """Fresh starts: noise uniform in `[low, high]` in every coordinate."""

    def __init__(self, low: float = -1.0, high: float = 1.0):
        self.low, self.high = options.bounds("UniformInit", "(low, high)", (low, high))

    def __call__(self, n: int, event_shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """`[n, *event_shape]` uniform draws in the dtype and on the device of `like`."""
        out = torch.empty((n, *event_shape), dtype=like.dtype, device=like.device)
        return out.uniform_(self.low, self.high)

    def __repr__(self) -> str:
        return f"UniformInit({self.low}, {self.high})"


class ReplayBuffer(nn.Module):
    """`capacity` past samples (a buffer of the module: it moves, saves and resumes with the model).

    `starts(n)` picks n stored samples at random, each replaced by a fresh `init` draw with probability `reinit`;
    `store(index, x)` writes the chains' ends back where they started.
    """

    def __init__(self, capacity: int, event_shape: Sequence[int], *, init: Optional[Init] = None,
                 reinit: float = 0.05, dtype: Optional[torch.dtype] = None):
        super().__init__()
        self.capacity = options.whole("ReplayBuffer", "capacity", capacity)
        self.event_shape = torch.Size(event_shape)
        self.init = init if init is not None else UniformInit()
        self.reinit = options.share("ReplayBuffer", "reinit", reinit)
        like = torch.empty(0, dtype=dtype or torch.get_default_dtype())
        self.register_buffer("samples", self.init(self.capacity, self.event_shape, like))

    def starts(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(indices `[n]`, starting points `[n, *event]`): stored samples, a `reinit` share of them fresh noise."""
        device = self.samples.device
        index = torch.randint(self.capacity, (n,), device=device)
        x = self.samples[index]
        fresh = torch.rand(n, device=device, dtype=x.dtype) < self.reinit
        mask = fresh.reshape((n,) + (1,) * len(self.event_shape))
        return index, torch.where(mask, self.init(n, self.event_shape, x), x)

    def store(self, index: torch.Tensor, x: torch.Tensor) -> None:
        """Write the chains' ends (detached) into the slots they started from."""
        with torch.no_grad():
            self.samples[index] = x.detach().to(self.samples.dtype)

    def extra_repr(self) -> str:
        return f"capacity={self.capacity}, event_shape={tuple(self.event_shape)}, reinit={self.reinit}"


__all__ = ["ReplayBuffer", "UniformInit"]
