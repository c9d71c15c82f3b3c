"""Stopping a fit cleanly on SIGINT/SIGTERM: the signal is noted, the current step finishes, then `fit` saves.

A second signal of the same kind while the first is handled goes to the handler that was there before
(Ctrl-C twice stops at once). Under torchrun the ranks agree on stopping through one small all-reduce per step,
so a signal that reaches one rank only still stops them all at the same step.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Dict, Optional

import torch

from . import distributed as ddp
from ..errors import FormulaInputError

__all__ = ["InterruptGuard", "SIGNALS"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class InterruptGuard:
    """A context that records SIGINT/SIGTERM instead of dying; `requested()` says whether one arrived (on any rank)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.received: Optional[str] = None
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> "InterruptGuard":
        if not self.enabled:
            return self
        if threading.current_thread() is not threading.main_thread():
            raise FormulaInputError("fit(checkpoint_on_interrupt=...) must run in the main thread: only it can "
                                    "receive SIGINT/SIGTERM")
        for number in SIGNALS:
            self._previous[number] = signal.signal(number, self._note)
        return self

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _note(self, number: int, frame: Optional[FrameType]) -> None:
        if self.received is not None:  # the second one: the old behaviour, at once
            previous = self._previous.get(number, signal.SIG_DFL)
            signal.signal(number, previous)
            if callable(previous):
                previous(number, frame)
            else:
                signal.raise_signal(number)
            return
        self.received = signal.Signals(number).name

    def requested(self, device: torch.device) -> bool:
        """Whether a signal arrived here or, under torchrun, on any rank (all ranks call this every step)."""
        if not self.enabled:
            return False
        if not ddp.is_distributed():
            return self.received is not None
        flag = torch.tensor([1.0 if self.received is not None else 0.0], device=device)
        if float(ddp.all_reduce_sum(flag)) > 0 and self.received is None:
            self.received = "a signal on another rank"
        return self.received is not None
