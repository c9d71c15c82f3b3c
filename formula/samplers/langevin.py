"""Langevin dynamics from an energy or a score: `Langevin` (unadjusted, with a replay buffer for short-run EBMs)
and `AnnealedLangevin` (over decreasing noise levels, as NCSN samples from a noise-conditional score).

One step is `x <- x + eps * s(x) + noise * sqrt(2 eps) * xi`, `xi ~ N(0, I)`, with `s = grad log p = -grad E`.
With `noise=1` it samples `p` as `eps -> 0` and the steps grow; short-run EBMs use less noise. The chain is
detached (no gradients reach the model through it) unless `create_graph=True`.

    >>> import torch
    >>> from formula.samplers import Langevin
    >>> _ = torch.manual_seed(0)
    >>> x = Langevin(steps=500, step_size=0.05).run(torch.zeros(4000, 1), energy=lambda x: (x - 3) ** 2 / 2)
    >>> round(float(x.mean()), 1), round(float(x.var()), 1)
    (3.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from ..errors import FormulaInputError
from . import options
from .buffer import Init, ReplayBuffer, UniformInit
from .progress import steps as progress_steps

Energy = Callable[[torch.Tensor], torch.Tensor]  # x [n, *event] -> energy [n] or [n, 1]
Score = Callable[[torch.Tensor], torch.Tensor]  # x [n, *event] -> grad log p(x), same shape


def score_of_energy(energy: Energy, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """`-grad_x E(x)`; the model's parameters get no gradient, and none flows back through `x` unless
    `create_graph` (then the result is differentiable in `x` and the parameters)."""
    with torch.enable_grad():
        point = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(point).sum(), point, create_graph=create_graph)
    return -grad


class Langevin:
    """Unadjusted Langevin dynamics: `steps` steps of size `step_size`, the noise scaled by `noise`.

    `buffer=N` keeps a replay buffer of N chain ends that `sample` restarts from (a `reinit` share fresh noise
    from `init`, by default uniform in [-1, 1]); `clip=(low, high)` clamps every step (data in a box);
    `create_graph=True` keeps the graph through the chain; `progress=True` shows a bar over the steps.
    """

    def __init__(self, steps: int = 60, step_size: float = 0.01, *, noise: float = 1.0, buffer: int = 0,
                 reinit: float = 0.05, init: Optional[Init] = None, clip: Optional[Sequence[float]] = None,
                 create_graph: bool = False, progress: bool = False):
        self.steps = options.whole("Langevin", "steps", steps)
        self.step_size = options.positive("Langevin", "step_size", step_size)
        self.noise = options.positive("Langevin", "noise", noise, zero=True)
        self.buffer = options.whole("Langevin", "buffer", buffer, least=0)
        self.reinit = options.share("Langevin", "reinit", reinit)
        self.init = init if init is not None else UniformInit()
        self.clip = options.bounds("Langevin", "clip", clip)
        self.create_graph, self.progress = bool(create_graph), bool(progress)

    def run(self, x: torch.Tensor, *, energy: Optional[Energy] = None, score: Optional[Score] = None,
            progress: Optional[bool] = None) -> torch.Tensor:
        """The chain's end after `steps` steps from `x`, following `-grad energy` or `score` (give one)."""
        kind, fn = options.one_of("Langevin.run", energy=energy, score=score)
        drift = (lambda v: score_of_energy(fn, v, self.create_graph)) if kind == "energy" else fn
        x = x if self.create_graph else x.detach()
        shown = self.progress if progress is None else progress
        return self._walk(x, drift, self.step_size, progress_steps(self.steps, "Langevin", shown))

    def _walk(self, x: torch.Tensor, drift: Score, eps: float, counter) -> torch.Tensor:
        spread = self.noise * math.sqrt(2 * eps)
        for _ in counter:
            x = x + eps * drift(x)
            if spread:
                x = x + spread * torch.randn_like(x)
            if self.clip is not None:
                x = x.clamp(*self.clip)
            if not self.create_graph:
                x = x.detach()
        return x

    def make_buffer(self, event_shape: Sequence[int], dtype: Optional[torch.dtype] = None) -> Optional[ReplayBuffer]:
        """The replay buffer this sampler's options ask for (None when `buffer=0`)."""
        if not self.buffer:
            return None
        return ReplayBuffer(self.buffer, event_shape, init=self.init, reinit=self.reinit, dtype=dtype)

    def sample(self, n: int, like: torch.Tensor, event_shape: Sequence[int], *, energy: Optional[Energy] = None,
               score: Optional[Score] = None, buffer: Optional[ReplayBuffer] = None,
               progress: Optional[bool] = None) -> torch.Tensor:
        """`[n, *event_shape]` draws in `like`'s dtype and device: chains from `buffer` (their ends written back)
        or from `init` noise."""
        n = options.whole("Langevin.sample", "n", n)
        if buffer is not None:
            index, start = buffer.starts(n)
            start = start.to(like.dtype)
        else:
            start = self.init(n, torch.Size(event_shape), like)
        x = self.run(start, energy=energy, score=score, progress=progress)
        if buffer is not None:
            buffer.store(index, x)
        return x

    def __repr__(self) -> str:
        extra = f", buffer={self.buffer}, reinit={self.reinit}" if self.buffer else ""
        return (f"Langevin(steps={self.steps}, step_size={self.step_size}, noise={self.noise}{extra}"
                f"{f', clip={self.clip}' if self.clip else ''})")


class AnnealedLangevin(Langevin):
    """Annealed Langevin dynamics (Song & Ermon 2019, algorithm 1): `steps` steps at each noise level of `sigmas`
    (largest first) with step size `step_size * sigma_i^2 / sigma_L^2`, following a score `s(x, sigma_i)`.

    In their notation alpha_i = step_size * sigma_i^2 / sigma_L^2 and a step is x + alpha_i/2 s + sqrt(alpha_i) z,
    which is `Langevin`'s step with eps = alpha_i / 2.
    """

    def __init__(self, sigmas: Sequence[float], steps: int = 100, step_size: float = 2e-5, **kwargs):
        super().__init__(steps, step_size, **kwargs)
        self.sigmas = tuple(options.positive("AnnealedLangevin", "sigmas", float(s)) for s in sigmas)
        if not self.sigmas or any(a <= b for a, b in zip(self.sigmas, self.sigmas[1:])):
            raise FormulaInputError(f"AnnealedLangevin: sigmas= must be decreasing noise levels, got "
                                            f"{list(sigmas)}")

    def run(self, x: torch.Tensor, *, energy: Optional[Energy] = None, score: Optional[Callable] = None,
            progress: Optional[bool] = None) -> torch.Tensor:
        """The chain's end after `steps` steps at each level; `score(x, sigma)` gets sigma as a 0-d tensor."""
        if energy is not None or score is None:
            raise FormulaInputError("AnnealedLangevin.run: give score= (a noise-conditional score s(x, sigma)); "
                                    "an energy has no noise levels")
        x = x if self.create_graph else x.detach()
        shown = self.progress if progress is None else progress
        counter = iter(progress_steps(self.steps * len(self.sigmas), "annealed Langevin", shown))
        for sigma in self.sigmas:
            level = torch.tensor(sigma, dtype=x.dtype, device=x.device)
            eps = self.step_size * (sigma / self.sigmas[-1]) ** 2 / 2
            x = self._walk(x, lambda v, s=level: score(v, s), eps, (next(counter) for _ in range(self.steps)))
        return x

    def __repr__(self) -> str:
        return f"AnnealedLangevin(sigmas={list(self.sigmas)}, steps={self.steps}, step_size={self.step_size})"


__all__ = ["Langevin", "AnnealedLangevin", "score_of_energy"]
