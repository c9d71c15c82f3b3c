"""Ancestral sampling by a reverse process: x_T from a prior, then x_{t-1} ~ p(x_{t-1} | x_t, t) for t = T, ..., 1
(DDPM's algorithm 2, Ho et al. 2020), each transition a declared distribution or any callable returning one."""

from __future__ import annotations

from typing import Any, Callable, Union

import torch

from ..errors import FormulaError, FormulaInputError
from . import options
from .progress import steps as progress_steps

Transition = Callable[[torch.Tensor, torch.Tensor], torch.distributions.Distribution]  # (x_t, t [n]) -> p(x_{t-1})


class Ancestral:
    """`steps` = T reverse transitions from x_T; the last one (t = 1) returns its mean when `mean_last` (DDPM
    displays mu_theta(x_1, 1) without noise); `progress=True` shows a bar over the steps."""

    def __init__(self, steps: int, *, mean_last: bool = True, progress: bool = False):
        self.steps = options.whole("Ancestral", "steps", steps)
        self.mean_last, self.progress = bool(mean_last), bool(progress)

    def run(self, x: torch.Tensor, transition: Union[Transition, Any], progress: bool = None) -> torch.Tensor:
        """x_0 from x_T = `x`: `transition` is a declaration `p(x_{t-1} | x_t, t)` (its `condition(x_t, t)` is
        called) or a callable `(x_t, t) -> torch distribution`; t is an integer tensor `[n]`."""
        step = getattr(transition, "condition", transition)
        if not callable(step):
            raise FormulaInputError(f"Ancestral.run: the transition must be a declaration or a callable "
                                    f"(x_t, t) -> distribution, got {type(transition).__name__}")
        shown = self.progress if progress is None else progress
        with torch.no_grad():
            for k in progress_steps(self.steps, "ancestral", shown):
                t = torch.full((x.shape[0],), self.steps - k, dtype=torch.long, device=x.device)
                dist = self._transition(step, x, t)
                x = dist.mean if self.mean_last and k == self.steps - 1 else dist.sample()
        return x

    @staticmethod
    def _transition(step: Callable, x: torch.Tensor, t: torch.Tensor) -> torch.distributions.Distribution:
        try:
            dist = step(x, t)
        except FormulaError:
            raise
        except (RuntimeError, ValueError, TypeError) as error:
            raise FormulaInputError(f"Ancestral: the transition failed at t = {int(t[0])} on x_t of shape "
                                    f"{list(x.shape)}: {str(error).splitlines()[0]}") from None
        if not isinstance(dist, torch.distributions.Distribution):
            raise FormulaInputError(f"Ancestral: the transition must return a torch distribution, got "
                                    f"{type(dist).__name__}")
        return dist

    def __repr__(self) -> str:
        return f"Ancestral(steps={self.steps}, mean_last={self.mean_last})"


__all__ = ["Ancestral"]
