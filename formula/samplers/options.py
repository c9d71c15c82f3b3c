"""Checks of a sampler's options, each refusal a FormulaInputError that names the option and what it takes."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

from ..errors import FormulaInputError


def _refuse(owner: str, name: str, wanted: str, value: Any) -> FormulaInputError:
    return FormulaInputError(f"{owner}: {name}= must be {wanted}, got {value!r}")


def whole(owner: str, name: str, value: Any, least: int = 1) -> int:
    """`value` as an int of at least `least` (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _refuse(owner, name, f"a whole number >= {least}", value)
    return value


def positive(owner: str, name: str, value: Any, zero: bool = False) -> float:
    """`value` as a finite float > 0 (>= 0 when `zero`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        raise _refuse(owner, name, "a finite number " + (">= 0" if zero else "> 0"), value)
    return float(value)


def share(owner: str, name: str, value: Any) -> float:
    """`value` as a probability in [0, 1]."""
    p = positive(owner, name, value, zero=True)
    if p > 1:
        raise _refuse(owner, name, "a probability in [0, 1]", value)
    return p


def bounds(owner: str, name: str, value: Optional[Sequence[float]]) -> Optional[Tuple[float, float]]:
    """None, or a pair (low, high) with low < high."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise _refuse(owner, name, "None or a pair (low, high)", value) from None
    if not low < high:
        raise _refuse(owner, name, "a pair (low, high) with low < high", value)
    return low, high


def one_of(owner: str, **given: Any) -> Tuple[str, Any]:
    """The one keyword of `given` that is not None (exactly one must be)."""
    named = [(k, v) for k, v in given.items() if v is not None]
    if len(named) != 1:
        raise FormulaInputError(f"{owner}: give exactly one of {', '.join(f'{k}=' for k in given)}"
                                f" (got {', '.join(k for k, _ in named) or 'none'})")
    return named[0]


__all__ = ["whole", "positive", "share", "bounds", "one_of"]
