"""Training an objective that has no data inputs (variational inference of an unnormalised target, a GAN
generator's own loss): each step is one call of `batch_size` draws, and an epoch is `steps_per_epoch` steps.

`Trainer.fit(None, epochs, steps_per_epoch=S)` and `Trainer.evaluate(None)` use it; the objective is called as
`objective(batch_size=n)`, the documented way to size a call without data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..errors import FormulaInputError


@dataclass(frozen=True)
class DrawBatch:
    """One step's batch of an objective without data: only its size."""

    size: int

    def inputs(self) -> dict:
        return {"batch_size": self.size}


@dataclass(frozen=True)
class Draws:
    """The steps of one epoch of an objective without data: `steps` batches of `size` draws each."""

    size: int
    steps: int

    def epoch(self, start: int = 0) -> Iterator[DrawBatch]:
        """The epoch's batches from `start` on (a resumed checkpoint continues inside the epoch)."""
        if start > self.steps:
            raise FormulaInputError(f"the run stopped after step {start} of its epoch, but this fit has "
                                    f"steps_per_epoch={self.steps}: resume it with the same steps_per_epoch")
        return (DrawBatch(self.size) for _ in range(start, self.steps))


def draws_for(data_inputs: Sequence[str], size: int, steps_per_epoch: Any, call: str) -> Draws:
    """`fit(None, ...)`/`evaluate(None)`: the objective must need no data, and an epoch needs a step count."""
    if data_inputs:
        raise FormulaInputError(f"{call} was given no data, but the formula reads {', '.join(data_inputs)} from "
                                f"the data: pass a dict of tensors (or give them as Trainer(inputs=...))")
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise FormulaInputError(f"{call} without data has no epochs of its own: give steps_per_epoch=N, the number "
                                f"of steps of batch_size={size} draws an epoch (got {steps_per_epoch!r})")
    return Draws(size, steps_per_epoch)
