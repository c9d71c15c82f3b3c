"""Python-number versions of the functions `math` lacks, for `spellings.FUNCTIONS[...].number` (no torch here)."""

from __future__ import annotations

import math

__all__ = ["sigmoid", "softplus"]


def sigmoid(v: float) -> float:
    """The logistic function, stable for large |v|."""
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def softplus(v: float) -> float:
    """log(1 + exp(v)), stable for large v (as torch.nn.functional.softplus)."""
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))
