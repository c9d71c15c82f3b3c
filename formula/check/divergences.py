"""What each divergence needs of its arguments, by name: the checker asks here before resolving `D(a || b)`.

Torch-free: the estimators themselves are registered with the compiler (`formula.compiler.divergences`), whose
`register_divergence` fills this table too, so a new divergence is one registration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict


class Needs(enum.Flag):
    """What a divergence can take as one argument."""

    DENSITY = enum.auto()  # a declared distribution whose log-density is evaluated
    SAMPLES = enum.auto()  # a declared distribution drawn from (the data's empirical distribution included)
    FAMILY = enum.auto()  # an explicit family written in the formula, \\mathcal{N}(0, I)


@dataclass(frozen=True)
class DivergenceSpec:
    """A divergence's name and what its left and right arguments must be."""

    name: str
    left: Needs
    right: Needs


_SPECS: Dict[str, DivergenceSpec] = {}


def register_spec(name: str, left: Needs, right: Needs) -> DivergenceSpec:
    """Declare what divergence `name` (canonical, upper case: "KL", "MMD") needs of its arguments."""
    spec = DivergenceSpec(name.upper(), left, right)
    _SPECS[spec.name] = spec
    return spec


def spec_of(name: str) -> "DivergenceSpec | None":
    return _SPECS.get(name.upper())


def known() -> str:
    return ", ".join(sorted(_SPECS)) or "none"


# KL(q || p) = E_q[log q - log p]: q is drawn from (or both are closed form), p's density is evaluated.
register_spec("KL", Needs.DENSITY | Needs.SAMPLES, Needs.DENSITY | Needs.FAMILY)

__all__ = ["Needs", "DivergenceSpec", "register_spec", "spec_of", "known"]
