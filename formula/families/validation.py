"""Checks of parameters and observed data against their torch constraints, cheap enough to run while training.

Distributions are built with `validate_args=False` for speed, so a network returning a negative scale or data
outside the support would give finite, wrong values. These checks evaluate each constraint once (one fused
elementwise test per tensor) and synchronise once per call; only when something fails do they look for the
offending value, and raise a `FormulaInputError` naming the declaration, the parameter or variable, the
constraint and the value.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping, NamedTuple, Optional, Tuple

import torch
import torch.distributions as D
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from ..errors import FormulaInputError

__all__ = ["Where", "check_parameters", "check_distribution", "check_value", "support_of", "describe", "as_given"]


class Where(NamedTuple):
    """The declaration a check is about: its class name and signature text."""

    label: str
    signature: str


def describe(constraint: constraints.Constraint) -> str:
    """A constraint in words: `> 0`, `in [0, 1]`, `an integer in [0, 9]`, `on the simplex`, ..."""
    if isinstance(constraint, constraints.independent):
        return describe(constraint.base_constraint)
    if isinstance(constraint, constraints._IntegerInterval):
        return f"an integer in [{constraint.lower_bound}, {constraint.upper_bound}]"
    if isinstance(constraint, constraints._IntegerGreaterThan):
        return f"an integer >= {constraint.lower_bound}"
    if isinstance(constraint, (constraints._Interval, constraints._HalfOpenInterval)):
        return f"in [{constraint.lower_bound}, {constraint.upper_bound}]"
    if isinstance(constraint, constraints._GreaterThan):
        return f"> {constraint.lower_bound}"
    if isinstance(constraint, constraints._GreaterThanEq):
        return f">= {constraint.lower_bound}"
    if isinstance(constraint, constraints._LessThan):
        return f"< {constraint.upper_bound}"
    simplex = "on the simplex (non-negative, summing to 1 over the last dimension)"
    words = {constraints._Real: "a real number (not NaN)", constraints._Boolean: "0 or 1",
             constraints._Simplex: simplex, _TolerantSimplex: simplex,
             constraints._OneHot: "one-hot over the last dimension",
             _Unnormalised: "non-negative with a positive sum over the last dimension"}
    return words.get(type(constraint), repr(constraint))


class _TolerantSimplex(constraints.Constraint):
    """The simplex with a tolerance that grows with the dimension and the dtype's precision (torch uses 1e-6)."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(value.dtype).eps if value.is_floating_point() else 0.0
        tol = max(1e-6, 8 * eps * value.shape[-1])
        return (value >= 0).all(-1) & ((value.sum(-1) - 1).abs() <= tol)


class _Unnormalised(constraints.Constraint):
    """Probabilities as given to a torch family that normalises them: non-negative with a positive sum."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return (value >= 0).all(-1) & (value.sum(-1) > 0)


_LENIENT = {constraints._Simplex: _TolerantSimplex()}
UNNORMALISED = _Unnormalised()


def as_given(constraint: constraints.Constraint) -> constraints.Constraint:
    """The constraint on a parameter as passed to the family: simplex probabilities may be unnormalised."""
    return UNNORMALISED if isinstance(constraint, constraints._Simplex) else constraint


def _first_bad(value: torch.Tensor, ok: torch.Tensor) -> str:
    """`-0.5 at index [3, 1]`: the first offending value (a whole event where the constraint has one)."""
    index = tuple((~ok).nonzero()[0].tolist())
    bad = value[index] if value.dim() else value
    shown = bad.tolist() if bad.numel() <= 8 else f"{bad.reshape(-1)[:8].tolist()}..."
    return f"{shown} at index {list(index)}" if index else f"{shown}"


def _failures(checks: Iterable[Tuple[str, constraints.Constraint, torch.Tensor]]) -> List[Tuple[str, Any, Any, Any]]:
    """Run every check with one synchronisation; return (name, constraint, value, ok) of the failing ones.

    Nothing is checked inside a `torch.compile` trace: a data-dependent branch would break the graph, and the
    eager calls before and beside it are where validation runs."""
    if torch.compiler.is_compiling():
        return []
    done = []
    for name, constraint, value in checks:
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value)
        if value.device.type == "meta":
            continue  # no values to check
        constraint = _LENIENT.get(type(constraint), constraint)
        done.append((name, constraint, value, constraint.check(value)))
    if not done:
        return []
    device = next((ok.device for *_, ok in done if ok.device.type != "cpu"), torch.device("cpu"))
    if bool(torch.stack([ok.all().to(device) for *_, ok in done]).all()):  # parameters given as numbers are on cpu
        return []
    return [item for item in done if not bool(item[3].all())]


def _raise(where: Where, what: str, failures: List[Tuple[str, Any, Any, Any]], hint: str = "") -> None:
    name, constraint, value, ok = failures[0]
    raise FormulaInputError(
        f"{where.label} {where.signature}: {what} {name} must be {describe(constraint)}, got "
        f"{_first_bad(value, ok)} (shape {list(value.shape)}){'; ' + hint if hint else ''}", where.signature,
        (0, len(where.signature)))


def check_parameters(where: Where, params: Mapping[str, Any],
                     arg_constraints: Mapping[str, constraints.Constraint]) -> None:
    """Check each parameter that has a constraint (none dependent); raise naming the first that fails."""
    checks = [(name, arg_constraints[name], value) for name, value in params.items() if name in arg_constraints]
    failures = _failures(checks)
    if failures:
        _raise(where, "parameter", failures)


def _distribution_checks(dist: D.Distribution, prefix: str = "") -> List[Tuple[str, Any, Any]]:
    """(name, constraint, value) of every parameter a distribution holds, nested distributions included."""
    try:
        arg_constraints = dist.arg_constraints
    except NotImplementedError:
        arg_constraints = {}
    checks = []
    for name, constraint in arg_constraints.items():
        if constraints.is_dependent(constraint):
            continue
        if name not in dist.__dict__ and isinstance(getattr(type(dist), name, None), lazy_property):
            continue  # not given (e.g. probs of a distribution built from logits)
        checks.append((prefix + name, constraint, getattr(dist, name)))
    for attr, value in vars(dist).items():
        if isinstance(value, D.Distribution):
            checks += _distribution_checks(value, f"{prefix}{attr.lstrip('_')}.")
    return checks


def check_distribution(where: Where, dist: D.Distribution) -> None:
    """Check every parameter of a built torch distribution (and of the distributions it wraps)."""
    failures = _failures(_distribution_checks(dist))
    if failures:
        _raise(where, "parameter", failures)


def support_of(dist: D.Distribution) -> Optional[constraints.Constraint]:
    """The elementwise support of a distribution (through `Independent`), or None when it has none."""
    while isinstance(dist, D.Independent):
        dist = dist.base_dist
    try:
        return dist.support
    except NotImplementedError:
        return None


def check_value(where: Where, name: str, value: Any, support: constraints.Constraint, hint: str = "") -> None:
    """Check observed data against a support; raise naming the variable, the support and a value outside it."""
    if not isinstance(value, torch.Tensor):
        raise FormulaInputError(f"{where.label} {where.signature}: {name} must be a tensor, got "
                                f"{type(value).__name__}", where.signature, (0, len(where.signature)))
    failures = _failures([(name, support, value)])
    if failures:
        _raise(where, "observed", failures, hint)
