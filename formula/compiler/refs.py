"""Builders of references: inputs, draws, sum indices, steps of sequences, slices."""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..check import resolved as R
from ..errors import FormulaInputError
from ..estimators.draws import sample_shape
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR, Ctx
from .registry import builds
from ..check.time_indices import is_time_index


def span_of(node):
    span = getattr(node, "span", None)
    return (span.start, span.end) if span is not None else None


def as_int(inputs, name, node, text) -> int:
    value = inputs.get(name)
    if value is None:
        raise FormulaInputError(f"no value for {name}: pass {name}=... (an integer)", text, span_of(node))
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise FormulaInputError(f"{name} must be a single integer, got shape {list(value.shape)}", text,
                                    span_of(node))
        value = value.item()
    if float(value) != int(value):
        raise FormulaInputError(f"{name} must be an integer, got {value}", text, span_of(node))
    return int(value)


def index_fn(item, b) -> Callable[[Ctx], Any]:
    """An index of a variable (`t`, `t-1`, `3`, `k`) as a closure: sum indices from the context, else an input."""
    if isinstance(item, N.Num):
        k = int(item.value)
        return lambda ctx: k
    if isinstance(item, N.Var) and not item.index:
        name, iname, text = item.name, var_text(item), b.text

        def idx(ctx):
            if name in ctx.env:
                return ctx.env[name]
            return as_int(ctx.inputs, iname, item, text)

        return idx
    if isinstance(item, N.Add):
        parts = [index_fn(t, b) for t in item.terms]

        def add(ctx):  # `t-1`: evaluated at every step, so no generator
            total = 0
            for p in parts:
                v = p(ctx)
                if v == VECTOR:
                    return VECTOR
                total = total + v
            return total

        return add
    if isinstance(item, N.Neg):
        if isinstance(item.arg, N.Num):  # the `-1` of `t-1`
            k = -int(item.arg.value)
            return lambda ctx: k
        inner = index_fn(item.arg, b)
        return lambda ctx: _vec_or(lambda v: -v[0], [inner(ctx)])
    raise b.error("this index cannot be evaluated (use numbers, sum indices and scalars)", item)


def length_of(bound: N.Var, sequences, b) -> Callable[[Ctx], int]:
    """A bare upper bound (`T`): a bound sum index, else an input `T=` (a positive integer), else the length of
    the first of `sequences` given as `[batch, T, ...]`."""
    name, iname, text = bound.name, var_text(bound), b.text

    def upper(ctx):
        if name in ctx.env:
            return ctx.env[name]
        if iname in ctx.inputs:
            value = as_int(ctx.inputs, iname, bound, text)
            if value < 1:
                raise FormulaInputError(f"{iname} must be at least 1, got {value}", text, span_of(bound))
            return value
        for s in sequences:
            seq = ctx.inputs.get(s)
            if torch.is_tensor(seq) and seq.dim() >= 2:
                return seq.shape[1]
        raise FormulaInputError(f"no value for {iname}: pass {iname}=... or a sequence", text, span_of(bound))

    return upper


def _vec_or(fn, values):
    return VECTOR if any(v == VECTOR for v in values) else fn(values)


def key_fn(v: N.Var, b) -> Callable[[Ctx], tuple]:
    """The trace key of a variable at this point: its name with its indices evaluated (`z_t` at t=3)."""
    if not v.index:
        key = (v.name, (), v.mark, v.primes)
        return lambda ctx: key
    idx = [_symbolic(i) if is_time_index(i) else index_fn(i, b) for i in v.index]  # z_{t_1}: keyed as written
    name, mark, primes = v.name, v.mark, v.primes
    if len(idx) == 1:
        (only,) = idx
        return lambda ctx: (name, (only(ctx),), mark, primes)
    return lambda ctx: (name, tuple(f(ctx) for f in idx), mark, primes)


def _symbolic(item):
    text = var_text(item)
    return lambda ctx: text


@builds(R.InputRef)
def build_input(ref: R.InputRef, b):
    name, text, node = ref.name, b.text, ref.src

    def value(ctx):
        v = ctx.inputs.get(name)
        if v is None:
            raise FormulaInputError(f"no value for {name}: pass {name}=...", text, span_of(node))
        return v

    return value


@builds(R.SliceRef)
def build_slice(ref: R.SliceRef, b):
    return build_input(R.InputRef(ref.src, ref.name), b)


@builds(R.IndexRef)
def build_index(ref: R.IndexRef, b):
    name = ref.name
    return lambda ctx: ctx.env[name]


@builds(R.DrawnRef)
def build_drawn(ref: R.DrawnRef, b):
    key_of, text, var = key_fn(ref.var, b), b.text, ref.var

    def drawn(ctx):
        value = ctx.trace.get(key_of(ctx))
        if value is None:  # the checker's scopes rule this out; never a raw KeyError
            raise FormulaInputError(f"{var_text(var)} has not been drawn at this point", text, span_of(var))
        return value

    return drawn


@builds(R.StepRef)
def build_step(ref: R.StepRef, b):
    """A draw of this step, an input of the concrete name (`z_0`), a start drawn from its declaration at first use,
    or the step of a sequence input."""
    v, text, base = ref.var, b.text, ref.sequence
    idx = [index_fn(i, b) for i in v.index]
    name, mark, primes = v.name, v.mark, v.primes
    starts = {c: (d, b.gradient_estimator(d)) for c, d in ref.starts}
    for concrete, (d, estimator) in starts.items():  # shown once, where the value is first needed
        if b.first_time(("start", concrete)):
            b.note(P.DrawStep(concrete, str(b.declaration(d)), b.capabilities(d).label,
                              f"{estimator.label}, drawn at first use"))

    concretes = {}  # the concrete name of each step (`x_3`), printed once
    only = idx[0] if len(idx) == 1 else None

    def step(ctx):
        ints = (only(ctx),) if only is not None else tuple(f(ctx) for f in idx)
        key = (name, ints, mark, primes)
        t = ctx.trace.get(key)
        if t is not None:
            return t
        concrete = concretes.get(ints)
        if concrete is None:
            concrete = concretes[ints] = var_text(N.Var(name, tuple(N.Num(float(i)) for i in ints), mark, primes))
        value = ctx.inputs.get(concrete)
        if value is not None:
            return value
        if concrete in starts:  # z_0 with a declared p(z_0): drawn once per call, at first use
            return _draw_start(ctx, *starts[concrete], key)
        return _sequence_step(ctx, base, ints, key, concrete, v, text)

    return step


def _draw_start(ctx, decl: int, estimator, key):
    d = ctx.decls[decl].condition()
    t = estimator.draw(d, sample_shape(d, ctx.n))
    ctx.put(key, t)
    return t


def _sequence_step(ctx, base, ints, key, concrete, v, text):
    seq = ctx.inputs.get(base)
    if seq is not None and len(ints) == 1 and torch.is_tensor(seq) and seq.dim() >= 2:
        step = ints[0]
        if not 1 <= step <= seq.shape[1]:
            raise FormulaInputError(f"{concrete} is step {step} of {base}, which has {seq.shape[1]} steps", text,
                                    span_of(v))
        t = seq[:, step - 1]  # kept in the trace: every use of x_t at this step is one value of one version
        ctx.put(key, t)
        return t
    raise FormulaInputError(f"no value for {concrete}: pass {concrete}=... (or the sequence {base})", text,
                            span_of(v))


__all__ = ["index_fn", "key_fn", "as_int", "span_of", "length_of"]
from . import slices  # noqa: E402,F401  (registers the builders of slices and prefix draws)
from . import time_indices  # noqa: E402,F401  (registers the builder of steps at a time index: x_{t_2})
