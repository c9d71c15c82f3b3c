"""Checking variables indexed by a time index that is itself a variable: TD-VAE's `x_{t_2}`, `b_{t_1}`, `z_{t_1}`
(Gregor et al. 2019; docs/language.md, "Two time indices").

A *time index* is a numbered letter written as a subscript, `t_1`, `t_2`: its value is one step per example, drawn
(`t_1 \\sim \\mathcal{U}\\{1, \\ldots, T - D\\}`), defined (`t_2 = t_1 + \\delta`) or supplied (`t_1=` an int or a
`[batch]` integer tensor). A variable subscripted by one is

* a step of a sequence input, `x_{t_2}`: a gather along time, `x[i, t_2[i] - 1]` for each example i;
* a step of a declared function over the whole sequence, `b_{t_1}` with `fm.Function("b(x)", net=LSTM)`: the
  function's `[batch, T, ...]` output (one call per evaluation) gathered the same way;
* a latent, `z_{t_1}`: a variable of its own, drawn by an expectation (its trace key keeps the index as written).

Where several indices of one letter are used (`t_1`, `t_2`), a gather at `t_k` also checks, per example, that it
comes after every earlier `t_j` that can be evaluated there. Torch-free; the checker's `ref` calls `reference`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..errors import FormulaCheckError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import resolved as R
from .kinds import DeclKind

# families whose draws are steps: a time index drawn from any other explicit family is a check error
STEP_FAMILIES = ("UniformDiscrete", "Categorical", "Poisson")


@dataclass(frozen=True, eq=False)
class TimeGather(R.Checked_):
    """`x_{t_2}` or `b_{t_1}`: the step `index` (a checked reference whose value is one step per example, or one
    step for all) of a sequence input `source` ([batch, T, ...]) or of the output of a declared function `call`;
    `earlier` holds (t_j, its checked reference) for the indices of the same letter this one must come after."""

    var: N.Var
    index: object
    source: Optional[str] = None
    call: Optional[R.Call] = None
    earlier: Tuple[Tuple[N.Var, object], ...] = ()


def is_time_index(item: object) -> bool:
    """`t_1`, `t_2`, `t_{12}`: a letter with a numbered subscript, written as the index of another variable."""
    return isinstance(item, N.Var) and len(item.index) == 1 and isinstance(item.index[0], N.Num) and not item.mark \
        and not item.primes


def time_index_of(v: N.Var) -> Optional[N.Var]:
    """The time index of `x_{t_2}` (t_2), else None."""
    if isinstance(v, N.Var) and len(v.index) == 1 and is_time_index(v.index[0]):
        return v.index[0]
    return None


def _sequence_function(checker, v: N.Var):
    found = [d for d in checker.decls if d.kind is DeclKind.FUNCTION and d.name == v.name and d.vars]
    return found[0] if len(found) == 1 else None


def _refuse_non_steps(checker, index: N.Var, v: N.Var) -> None:
    """A time index drawn from an explicit family of non-integers (`t_1 \\sim \\mathcal{N}(0, 1)`) is no step."""
    stmt = checker.sampler_of(index)
    family = getattr(getattr(stmt, "dist", None), "family", None)
    if family is not None and family not in STEP_FAMILIES:
        raise checker.error(f"{var_text(v)} is indexed by {var_text(index)}, which is drawn from "
                            f"{var_text(stmt.dist)}, not a distribution over steps: draw it from "
                            f"\\mathcal{{U}}\\{{1, \\ldots, T\\}} (or supply {var_text(index)}=, integers)", v)


def _refuse_undrawn(checker, index: N.Var, v: N.Var, scope) -> None:
    """A time index (or a variable its definition uses) written with a draw statement (`t_1 \\sim ...`) but not
    drawn by an enclosing expectation would silently become an input: a check error saying what to write."""
    from .resolver import free_vars

    stack, seen = [index], set()
    while stack:
        u = stack.pop()
        if u in seen or u in scope.drawn:
            continue
        seen.add(u)
        stmt = checker.sampler_of(u)
        if isinstance(stmt, N.Draw):
            raise checker.error(f"{var_text(v)} is indexed by {var_text(index)}, and {var_text(u)} is drawn by the "
                                f"line {var_text(stmt)}, but no enclosing expectation draws it here: write "
                                f"\\mathbb{{E}}_{{{var_text(u)}}}[...] around its uses (e.g. \\mathbb{{E}}_{{t_1, "
                                "\\delta}[...])", v)
        d = checker.defs.of_variable(u)
        if d is not None:
            stack.extend(free_vars(d.value))


def _earlier(checker, index: N.Var, scope) -> Tuple[Tuple[N.Var, object], ...]:
    """The indices of `index`'s letter with a smaller number that the formula uses as indices and that can be
    evaluated here (drawn in scope, defined, or supplied)."""
    number = index.index[0].value
    seen, out = set(), []
    for node in checker.program.walk():
        if not isinstance(node, N.Var):
            continue
        other = time_index_of(node)
        if other is None or other in seen or (other.name, other.mark, other.primes) != (index.name, index.mark,
                                                                                         index.primes):
            continue
        seen.add(other)
        if other.index[0].value >= number:
            continue
        try:
            out.append((other, checker.ref(other, scope, data=False)))
        except FormulaCheckError:  # drawn elsewhere, not here: nothing to compare with at this point
            continue
    return tuple(sorted(out, key=lambda pair: pair[0].index[0].value))


def reference(checker, v: N.Var, scope) -> Optional[TimeGather]:
    """The checker's hook for `x_{t_2}` and `b_{t_1}` (a step at a time index of a sequence input or of a declared
    sequence function); None for anything else, a latent `z_{t_1}` included (a draw of its own)."""
    from .checker import _latent_key

    index = time_index_of(v)
    if index is None or v in scope.drawn or v.mark or v.primes:
        return None
    if _latent_key(v) in checker.latent_bases:
        return None
    _refuse_non_steps(checker, index, v)
    _refuse_undrawn(checker, index, v, scope)
    decl = _sequence_function(checker, v)
    if decl is not None:
        for a in decl.vars:
            if isinstance(a, N.Var) and not a.index and _latent_key(a) not in checker.latent_bases:
                checker.sequences.add(var_text(a))
        call = R.Call(v, decl.index, tuple(checker.ref(a, scope) for a in decl.vars))
        return TimeGather(v, v, checker.ref(index, scope, data=False), call=call,
                          earlier=_earlier(checker, index, scope))
    base = var_text(N.Var(v.name, (), v.mark, v.primes, v.label))
    checker.sequences.add(base)
    checker.add_input(base, v, data=True)
    return TimeGather(v, v, checker.ref(index, scope, data=False), source=base,
                      earlier=_earlier(checker, index, scope))


__all__ = ["TimeGather", "is_time_index", "time_index_of", "reference", "STEP_FAMILIES"]
