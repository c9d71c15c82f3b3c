"""Recurrent deterministic states (docs/language.md, "Recurrent states"): a definition line written at a step,
`h_t = f(h_{t-1}, x_t, z_t)` (VRNN), whose right side reads a state at the same or an earlier step.

A step definition `v_t = expr` (one index, a bare letter) is a state when `expr` uses its own letter at an earlier
step (`h_{t-1}`) or any other state; so DRAW's `\\hat x_t = x - \\sigma(c_{t-1})` is one, and several states may read
each other (`h^{enc}_t` reads `h^{dec}_{t-1}`, `c_t` reads `h^{dec}_t`). The first value is a numbered definition
(`h_0 = g(x)`) or an `fm.Initial("h_0", size=...)` declaration; a state read at an earlier step needs one.

A use `h_e` (e: `t`, `t-1`, a number, a bound such as `T`) is a `StateRef`: the compiler evaluates the state at
step e on demand, once per step per call. The checker checks each state's right side once, at its own step `t`
(the draws of that step `z_t` read from the trace), and refuses a use where a draw the state reads at that step is
not drawn yet (`q(z_t|x_t, h_t)` with `h_t` reading `z_t`), circular definitions at one step, and a missing first
value. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Set

from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import resolved as R
from .kinds import DeclKind
from .scope import Scope, shift_of
from .sequences import element, is_slice

INITIAL = "initial value"  # the name of an fm.Initial declaration's signature (no parse gives a name with a space)

_INIT_HINT = ("declare fm.Initial(\"{v}\", size=(H,)) (zeros; learn=True for a learned vector) or write a "
              "definition line {v} = g(x) with g a declared fm.Function")


def letter(v: N.Var) -> tuple:
    """What makes two uses the same state whatever their index: letter, decoration, primes and label."""
    return (v.name, v.mark, v.primes, v.label)


def _latent(v: N.Var) -> tuple:
    return (v.name, v.mark, v.primes)


class State:
    """One state: its definition at step `index`, its first values by step, and (once checked) its value.
    A plain object, not a checked node: the checked tree's walks stop at it."""

    def __init__(self, var: N.Var, index: str, value: N.Expr, stmt: N.Node):
        self.var, self.index, self.expr, self.stmt = var, index, value, stmt
        self.inits: Dict[int, object] = {}  # step -> an N.Expr (a definition's value) or the declaration's index
        self.checked_inits: Dict[int, object] = {}
        self.value = None  # the checked right side, at step `index`
        self.reads: Set[tuple] = set()  # draws read at the state's own step (through same-step states too)
        self.same_step: List["State"] = []  # the states read at the same step

    @property
    def text(self) -> str:
        return var_text(self.stmt)

    def __repr__(self) -> str:
        return f"State({self.text})"


@dataclass(frozen=True, eq=False)
class StateRef(R.Checked_):
    """A use of a state at step `index` (an index expression as written: `t`, `t-1`, `T`, `3`)."""

    var: N.Var
    state: State
    index: N.Expr


@dataclass(frozen=True, eq=False)
class InitialValue(R.Checked_):
    """The first value declared by `fm.Initial` (declaration `decl`)."""

    var: N.Var
    decl: int


# --- the states of a program ------------------------------------------------------------------------------------


def _step_definition(var: N.Var) -> Optional[str]:
    """The index name of a definition written at a step (`h_t` -> "t"), else None."""
    if len(var.index) == 1 and isinstance(var.index[0], N.Var) and not var.index[0].index:
        return var.index[0].name
    return None


def _uses(expr: N.Expr, key: tuple) -> List[N.Var]:
    return [v for v in expr.walk() if isinstance(v, N.Var) and v.index and letter(v) == key]


def _shift(v: N.Var, index: str) -> Optional[int]:
    """How many steps before `index` a use reads (`h_{t-1}` -> 1, `h_t` -> 0); None for anything else."""
    s = shift_of(v.index[0]) if len(v.index) == 1 else None
    return s[1] if s is not None and s[0] == index else None


def _earlier(v: N.Var) -> bool:
    """`h_{t-1}`, `h_{s-2}`: a use at a step before some index."""
    s = shift_of(v.index[0])
    return s is not None and s[1] >= 1


def states_of(checker) -> Dict[tuple, State]:
    """The program's states by letter, built (and their right sides checked) on first use."""
    table = checker.__dict__.get("_recurrent_states")
    if table is None:
        table = checker._recurrent_states = _read(checker)
        for state in table.values():
            _check_value(checker, state, table)
            for k in state.inits:
                _first_value(checker, state, k, element(state.var, N.Num(float(k))))
    return table


def _read(checker) -> Dict[tuple, State]:
    defined = checker.defs.variables
    steps = {letter(v): State(v, _step_definition(v), d.value, d.stmt) for v, d in defined.items()
             if _step_definition(v) is not None}
    own = {k for k, s in steps.items() if any((_shift(u, s.index) or 0) >= 1 for u in _uses(s.expr, k))}
    table = {k: steps[k] for k in own}
    grown = True
    while grown:  # a step definition that reads a state is a state
        grown = False
        for k, s in steps.items():
            if k not in table and any(_uses(s.expr, other) for other in table):
                table[k], grown = s, True
    if not table:
        return table
    for v, d in defined.items():  # first values: numbered definitions h_0 = g(x)
        if letter(v) in table and len(v.index) == 1 and isinstance(v.index[0], N.Num):
            table[letter(v)].inits[int(v.index[0].value)] = d.value
    for decl in checker.decls:  # fm.Initial("h_0", ...)
        if decl.kind is DeclKind.FUNCTION and decl.name == INITIAL and len(decl.vars) == 1:
            v = decl.vars[0]
            s = table.get(letter(v)) if isinstance(v, N.Var) else None
            if s is None:
                continue
            k = int(v.index[0].value)
            if k in s.inits:
                raise checker.error(f"{var_text(v)} has two first values: the definition line and "
                                    f"fm.Initial(\"{var_text(v)}\") (keep one)", _init_stmt(checker, v) or s.stmt)
            s.inits[k] = decl.index
    for k, s in table.items():
        s.same_step = [table[o] for o in table if any(_shift(u, s.index) == 0 for u in _uses(s.expr, o))]
        s.reads = _draws_read(checker, s.expr, s.index, steps, table)
    _refuse_cycles(checker, table)
    for s in table.values():  # transitive same-step reads
        seen, stack = set(), list(s.same_step)
        while stack:
            o = stack.pop()
            if id(o) in seen:
                continue
            seen.add(id(o))
            s.reads |= o.reads
            stack.extend(o.same_step)
    for s in table.values():  # a state read at an earlier step needs its first value
        for k, o in table.items():
            for u in _uses(s.expr, k):
                if (_shift(u, s.index) or 0) >= 1 and not o.inits:
                    raise checker.error(f"{var_text(u)} at the first step reads {var_text(element(o.var, N.Num(0.0)))}"
                                        f", the first value of the state {var_text(o.var)}, which is not given: "
                                        + _INIT_HINT.format(v=var_text(element(o.var, N.Num(0.0)))), u)
    return table


def _draws_read(checker, expr: N.Expr, index: str, steps, table, depth: int = 0) -> Set[tuple]:
    """The draws `expr` reads at its own step, as (letter, decoration, primes, unindexed): directly (`z_t`, or a
    draw without index such as a sentence's `z`) or through a plain step definition there (`u_t = W(z_t)`); states
    read at the same step add theirs later."""
    found = set()
    for u in expr.walk():
        if not isinstance(u, N.Var) or letter(u) in table:
            continue
        if not u.index and _latent(u) in checker.latent_bases:
            found.add(_latent(u) + (True,))
        elif not u.index or _shift(u, index) != 0:
            continue
        elif _latent(u) in checker.latent_bases:
            found.add(_latent(u) + (False,))
        elif letter(u) in steps and depth < 8:
            d = steps[letter(u)]
            found |= _draws_read(checker, d.expr, d.index, steps, table, depth + 1)
    return found


def _init_stmt(checker, v: N.Var):
    d = checker.defs.variables.get(v)
    return d.stmt if d is not None else None


def _refuse_cycles(checker, table: Dict[tuple, State]) -> None:
    """States that read each other at the same step cannot be computed: a check error naming the circle."""
    done: Set[int] = set()

    def visit(s: State, path: List[State]):
        if id(s) in done:
            return
        if any(p is s for p in path):
            circle = path[[id(p) for p in path].index(id(s)):] + [s]
            chain = " -> ".join(var_text(p.var) for p in circle)
            raise checker.error(f"the states read each other at the same step: {chain}; one of them must read "
                                "the other at the step before (e.g. h_{t-1})", s.stmt)
        for o in s.same_step:
            visit(o, path + [s])
        done.add(id(s))

    for s in table.values():
        visit(s, [])


def _check_value(checker, state: State, table) -> None:
    """The right side at the state's own step t: its draws of step t (and earlier) read from the trace."""
    t = state.index
    latent = sorted(checker.latent_bases, key=repr)  # every draw of step t and before is read from the trace (the
    here = [N.Var(name, (N.Var(t),), mark, primes) for name, mark, primes in latent]  # uses of the state check it)
    here += [N.Var(name, (), mark, primes) for name, mark, primes in latent]  # a draw without index (z)
    scope = Scope().looping(t, None, frozenset(name for name, _, _ in latent)).drawing(here)
    state.value = checker.visit(state.expr, scope)


# --- a use -------------------------------------------------------------------------------------------------------


def reference(checker, v: N.Var, scope: Scope):
    """The checker's hook for a variable: a use of a state (`h_{t-1}`, `c_T`, `h_0`), else None."""
    if not isinstance(v, N.Var) or not v.index or not checker.defs.variables:
        return None
    table = states_of(checker)
    state = table.get(letter(v))
    if state is None:
        return None
    if len(v.index) != 1 or is_slice(v) or isinstance(v.index[0], N.SLICES):
        raise checker.error(f"{var_text(v)}: the state {var_text(state.var)} is used one step at a time "
                            f"({var_text(state.var)}, {var_text(element(state.var, N.Var(state.index)))} at "
                            "another step, or at a number)", v)
    item = v.index[0]
    if isinstance(item, N.Num) and int(item.value) in state.inits:
        return _first_value(checker, state, int(item.value), v)
    if isinstance(item, N.Num) and state.inits and int(item.value) < min(state.inits):
        raise checker.error(f"{var_text(v)} is before the first value of the state {var_text(state.var)} "
                            f"(step {min(state.inits)})", v)
    for z in sorted(state.reads):
        zv = N.Var(z[0], (), z[1], z[2]) if z[3] else element(N.Var(z[0], (), z[1], z[2]), item)
        if not (zv in scope.drawn if z[3] else _available(scope, zv)):
            raise checker.error(
                f"{var_text(v)} is used before it can be computed: {state.text} reads {var_text(zv)}, which is not "
                f"drawn at this point; use it inside the expectation that draws {var_text(zv)}, or read the "
                f"previous step's state ({var_text(element(state.var, _minus_one(item)))})", v)
    if _earlier(v) and not state.inits:
        first = var_text(element(state.var, N.Num(0.0)))
        raise checker.error(f"{var_text(v)} at the first step reads {first}, the first value of the state "
                            f"{var_text(state.var)}, which is not given: " + _INIT_HINT.format(v=first), v)
    for w in item.walk():
        if isinstance(w, N.Var) and not w.index and w.name not in scope.indices:
            checker.add_input(var_text(w), w, optional=True)  # T: the sum's bound, or the length of a sequence
    return StateRef(v, v, state, item)


def _minus_one(item: N.Expr) -> N.Expr:
    """The step before `item`: `t` -> `t-1`, `t-1` -> `t-2`, `3` -> `2`."""
    if isinstance(item, N.Num):
        return N.Num(item.value - 1)
    s = shift_of(item)
    if s is None:
        return N.Add((item, N.Neg(N.Num(1.0))))
    return N.Add((N.Var(s[0]), N.Neg(N.Num(float(s[1] + 1)))))


def _available(scope: Scope, zv: N.Var) -> bool:
    """Whether the draw `zv` (a letter at the use's step) is in the trace at this point of the walk."""
    if zv in scope.drawn:
        return True
    slices = [w for w in scope.drawn if is_slice(w) and _latent(w) == _latent(zv)]
    if slices:  # E_{q(z_{\le T}|x)}: every level; at a level's own conditions (z_{<t} drawn), not z_t itself
        return not any(isinstance(w.index[0], N.Before) and not w.index[0].inclusive
                       and w.index[0].bound == zv.index[0] for w in slices)
    loop = scope.loop_of(zv)
    if loop is not None:
        _, _, shift, drawn_here = loop
        return shift >= 1 and zv.name in drawn_here
    bound = {w.name for w in zv.index[0].walk() if isinstance(w, N.Var)}
    return not (bound & set(scope.indices))  # c_T, h_3 outside the sum: the draws the sum made


def _first_value(checker, state: State, k: int, v: N.Var):
    found = state.checked_inits.get(k)
    if found is None:
        init = state.inits[k]
        if isinstance(init, int):
            found = InitialValue(v, v, init)
        else:
            from .definitions import DefinedRef

            found = DefinedRef(v, v, checker.visit(init, Scope()))
        state.checked_inits[k] = found
    return found


__all__ = ["State", "StateRef", "InitialValue", "INITIAL", "states_of", "reference", "letter"]
