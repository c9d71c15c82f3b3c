"""Builders of recurrent states (formula.check.recurrent): a use `h_e` evaluates the state at step e on demand, its
definition's index bound to e, once per step per call (memoised; recomputed only when a draw or state it reads
directly has a new value), after its first value and the steps before it."""

from __future__ import annotations

import torch

from ..check import recurrent as rc
from ..check import resolved as R
from ..check.uses import children
from ..errors import FormulaError, FormulaInputError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR
from .memo import keyer, register_keyer
from .refs import index_fn, key_fn, length_of, span_of
from .registry import builds

_FAILURES = (RuntimeError, ValueError, IndexError, TypeError)


class _Stepper:
    """A state's values by step, in the call's memo: `(value, stamp)` for step k, computed on first use."""

    def __init__(self, state: rc.State, b):
        self.state, self.text = state, b.text
        self.tag = ("state", var_text(state.var), id(state))
        self.inits = {}
        self.value = None
        self.keys, self.deps, self.drawn = [], [], []  # direct references' keyers, states read, draws read

    def finish(self, b) -> None:
        s = self.state
        self.inits = {k: b.build(node) for k, node in sorted(s.checked_inits.items())}
        self.first = max(self.inits) if self.inits else None
        self.value = b.build(s.value)
        refs, states = _direct(s.value)
        self.keys = [k for k in (keyer(r, b) for r in refs) if k is not None and not isinstance(k, str)]
        self.drawn = [(r.var, key_fn(r.var, b)) for r in refs if isinstance(r, R.DrawnRef)]  # z_t of its step
        self.deps = [(_stepper(r.state, b), step_fn(r.index, b)) for r in states]
        first = ", ".join(f"{var_text(rc.element(s.var, N.Num(float(k))))}" for k in self.inits)
        b.note(P.Note(f"state {s.text}: computed at each step on first use, once per step"
                      + (f" (first value {first})" if first else "")))

    def __call__(self, ctx, k, use=None):
        if k == VECTOR or not isinstance(k, int):
            raise FormulaInputError(f"{var_text(self.state.var)} is a state: it is read at one step at a time, "
                                    "not along a sampling set", self.text, span_of(self.state.stmt))
        if ctx.outer:
            raise FormulaInputError(f"{var_text(self.state.var)} is a state, read here inside a sum that enumerates a "
                                    "discrete variable's values: not supported yet (use the state outside it)",
                                    self.text, span_of(self.state.stmt))
        memo = ctx.memo
        entry = memo.get(self.tag + (k,))
        if k in self.inits:
            if entry is None:
                entry = memo[self.tag + (k,)] = (self.inits[k](ctx), _stamp(ctx), None)
            return entry
        if entry is not None and ctx.bind(self.state.index, k, self._fingerprint) == entry[2]:
            return entry
        if self.first is not None:
            if k < self.first:
                raise FormulaInputError(f"{var_text(rc.element(self.state.var, N.Num(float(k))))} is before the "
                                        f"first value of the state (step {self.first})", self.text,
                                        span_of(self.state.stmt))
            if self.tag + (k - 1,) not in memo:
                for j in range(self.first + 1, k):  # the steps before, in order (no deep recursion)
                    if self.tag + (j,) not in memo:
                        self(ctx, j, use)
        self._refuse_undrawn(ctx, k, use)
        value = ctx.bind(self.state.index, k, self._evaluate)
        self._check_shape(ctx, k, value)
        entry = memo[self.tag + (k,)] = (value, _stamp(ctx), ctx.bind(self.state.index, k, self._fingerprint))
        return entry

    def _refuse_undrawn(self, ctx, k, use) -> None:
        """A draw of its step that is not in the trace yet (a use outside the sum, written before it): an input
        error at the use that says so, not the draw's own message."""
        for var, key_of in self.drawn:
            if ctx.bind(self.state.index, k, key_of) not in ctx.trace:
                at = var_text(rc.element(var, N.Num(float(k)))) if len(var.index) == 1 else var_text(var)
                raise FormulaInputError(
                    f"{var_text(self.state.var)} at {self.state.index} = {k} reads {at}, which is not drawn at this "
                    "point: a use of a state outside the sum that draws it comes after that sum (or inside "
                    "E_{q(z_{\\le T}|x)}[...], which draws every step first)", self.text,
                    span_of(use if use is not None else self.state.stmt))

    def _evaluate(self, ctx):
        try:
            return self.value(ctx)
        except FormulaError:
            raise
        except _FAILURES as err:
            prev = ctx.memo.get(self.tag + (ctx.env[self.state.index] - 1,))
            had = f" (the step before: shape {list(prev[0].shape)})" if prev and torch.is_tensor(prev[0]) else ""
            raise FormulaInputError(f"computing the state {self.state.text} at {self.state.index} = "
                                    f"{ctx.env[self.state.index]} failed: {str(err).splitlines()[0]}{had}; check that "
                                    "its net takes the state's shape and returns it", self.text,
                                    span_of(self.state.stmt)) from None

    def _fingerprint(self, ctx) -> tuple:
        deps = []
        for stepper, at in self.deps:
            entry = ctx.memo.get(stepper.tag + (at(ctx),))
            deps.append(entry[1] if entry is not None else None)
        return tuple(k(ctx) for k in self.keys) + tuple(deps)

    def _check_shape(self, ctx, k, value) -> None:
        prev = ctx.memo.get(self.tag + (k - 1,))
        if prev is None or not (torch.is_tensor(value) and torch.is_tensor(prev[0])):
            return
        if value.shape != prev[0].shape:
            v = self.state.var
            raise FormulaInputError(
                f"the state {self.state.text} at {self.state.index} = {k} has shape {list(value.shape)}, but "
                f"{var_text(rc.element(v, N.Num(float(k - 1))))} has {list(prev[0].shape)}: a state keeps its shape "
                "from step to step (check the net's output size against the first value's size)", self.text,
                span_of(self.state.stmt))


def _stamp(ctx) -> int:
    ctx.clock += 1
    return ctx.clock


def _direct(node):
    """The references a checked value reads directly, and the states it reads (not through them)."""
    refs, states, stack = [], [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, rc.StateRef):
            states.append(n)
        elif isinstance(n, (R.DrawnRef, R.InputRef, R.IndexRef, R.StepRef, R.SliceRef)):
            refs.append(n)
        else:
            stack.extend(children(n))
    return refs, states


def _stepper(state: rc.State, b) -> _Stepper:
    """One stepper per state and plan (registered before its value is built: the value reads the state itself)."""
    table = b.__dict__.setdefault("_recurrent_steppers", {})
    found = table.get(id(state))
    if found is None:
        found = table[id(state)] = _Stepper(state, b)
        found.finish(b)
    return found


def step_fn(item: N.Expr, b):
    """The step a use reads: an index expression, a bare bound (`T`: a sum index, an input, else the length of a
    sequence input)."""
    if isinstance(item, N.Var) and not item.index:
        return length_of(item, sorted(b.checked.sequences), b)
    return index_fn(item, b)


@builds(rc.StateRef)
def build_state(node: rc.StateRef, b):
    stepper, at = _stepper(node.state, b), step_fn(node.index, b)
    src = node.src
    return lambda ctx: stepper(ctx, at(ctx), src)[0]


@register_keyer(rc.StateRef)
def state_keyer(node: rc.StateRef, b):
    """What identifies a state's value in a call: its step and the stamp of the value computed there."""
    stepper, at = _stepper(node.state, b), step_fn(node.index, b)

    def key(ctx):
        k = at(ctx)
        return stepper.tag + (k, stepper(ctx, k)[1])

    return key


@builds(rc.InitialValue)
def build_initial(node: rc.InitialValue, b):
    i = node.decl

    def initial(ctx):
        like = next((v for v in ctx.inputs.values() if torch.is_tensor(v) and v.is_floating_point()), None)
        if like is None:
            like = next((v for v in ctx.inputs.values() if torch.is_tensor(v)), None)
        return ctx.decls[i](ctx.n, like)

    return initial


__all__ = ["build_state", "build_initial", "step_fn"]
