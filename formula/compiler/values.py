"""Builders of values: numbers, arithmetic, norms, elementwise functions and calls of declared functions."""

from __future__ import annotations

import functools

import torch

from ..check import resolved as R
from ..check.checker import SCHEDULE_STEP
from ..errors import FormulaInputError
from ..lang import nodes as N
from ..lang import spellings
from .jacobian import with_log_det
from .memo import memoised
from .refs import span_of
from .registry import builds


@builds(N.Num)
def build_num(node: N.Num, b):
    value = node.value
    return lambda ctx: value


def align(x, lead: int, dims: int):
    """A per-example value `[batch]` (exactly `lead` dimensions) with trailing size-1 dimensions up to `dims`, so that
    it broadcasts against `[batch, *event]` example by example, not against the event's last dimension."""
    if torch.is_tensor(x) and x.dim() == lead and dims > lead:
        return x.reshape(x.shape + (1,) * (dims - lead))
    return x


def paired(a, c, lead: int):
    """Two operands of arithmetic, a per-example `[batch]` one aligned to the other's `[batch, *event]`
    (`\\sqrt{\\bar\\alpha_t} x_0`: one value of the schedule per example, times that example's x_0)."""
    if torch.is_tensor(a) and torch.is_tensor(c) and a.dim() != c.dim():
        if a.dim() == lead and a.shape == c.shape[:lead]:
            return a.reshape(a.shape + (1,) * (c.dim() - lead)), c
        if c.dim() == lead and c.shape == a.shape[:lead]:
            return a, c.reshape(c.shape + (1,) * (a.dim() - lead))
    return a, c


def _add(a, c, lead: int):
    a, c = paired(a, c, lead)
    return a + c


def summed(parts):
    """The closure adding the values of `parts` (terms, log-densities, log-factors)."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, c = parts
        return lambda ctx: _add(a(ctx), c(ctx), ctx.lead)

    def add(ctx):
        acc = parts[0](ctx)
        for p in parts[1:]:
            acc = _add(acc, p(ctx), ctx.lead)
        return acc

    return add


@builds(N.Add)
def build_add(node: N.Add, b):
    return summed([b.build(t) for t in node.terms])


@builds(N.Neg)
def build_neg(node: N.Neg, b):
    a = b.build(node.arg)
    return lambda ctx: -a(ctx)


@builds(N.Mul)
def build_mul(node: N.Mul, b):
    parts = [b.build(t) for t in node.factors]

    def mul(ctx):
        acc = parts[0](ctx)
        for p in parts[1:]:
            acc, x = paired(acc, p(ctx), ctx.lead)
            acc = acc * x
        return acc

    return mul


@builds(N.Div)
def build_div(node: N.Div, b):
    a, c = b.build(node.num), b.build(node.den)

    def div(ctx):
        num, den = paired(a(ctx), c(ctx), ctx.lead)
        return num / den

    return div


@builds(N.Pow)
def build_pow(node: N.Pow, b):
    if isinstance(node.base, N.Norm) and isinstance(node.exp, N.Num) and node.exp.value == 2 and (
            node.base.ord is None or node.base.ord == N.Num(2.0)):
        a = b.build(node.base.arg)
        return lambda ctx: _squared_norm(a(ctx), ctx.lead)
    a, c = b.build(node.base), b.build(node.exp)
    return lambda ctx: a(ctx) ** c(ctx)


@builds(N.Norm)
def build_norm(node: N.Norm, b):
    a = b.build(node.arg)
    order = float(node.ord.value) if isinstance(node.ord, N.Num) else 2.0

    def norm(ctx):
        x = a(ctx)
        if not torch.is_tensor(x):
            return abs(x)
        if x.dim() <= ctx.lead:
            return x.abs()
        return torch.linalg.vector_norm(x.flatten(ctx.lead), ord=order, dim=-1)

    return norm


@builds(N.StopGrad)
def build_stopgrad(node: N.StopGrad, b):
    a = b.build(node.arg)
    return lambda ctx: (lambda x: x.detach() if torch.is_tensor(x) else x)(a(ctx))


def _squared_norm(x, lead: int):
    if not torch.is_tensor(x) or x.dim() <= lead:
        return x * x
    return (x * x).flatten(lead).sum(-1)


# --- elementwise functions: what each row of the spelling table (formula.lang.spellings) evaluates to ---------


@functools.lru_cache(maxsize=None)
def _implementation(name: str):
    """(on tensors, on Python numbers or None) for a function of the spelling table, or None if it has none."""
    row = spellings.FUNCTIONS.get(name)
    if row is None or row.torch is None:
        return None
    return spellings.resolve(row.torch), (spellings.resolve(row.number) if row.number else None)


@builds(N.Apply)
def build_apply(node: N.Apply, b):
    if node.fn == "log" and len(node.args) == 1:
        logged = b.build_log(node.args[0])
        if logged is not None:
            return logged
    impl = _implementation(node.fn)
    if impl is None:
        raise b.error(f"{node.fn} cannot be evaluated yet", node)
    fn, on_numbers = impl
    args = [b.build(a) for a in node.args]
    if len(args) != 1:
        return lambda ctx: fn(*[x(ctx) for x in args])
    (a,) = args
    text, name = b.text, node.fn

    def apply(ctx):
        x = a(ctx)
        if torch.is_tensor(x):
            return fn(x)
        if on_numbers is None:
            raise FormulaInputError(f"{name} needs a tensor argument", text, span_of(node))
        try:
            return on_numbers(x)
        except (ValueError, OverflowError) as err:
            raise FormulaInputError(f"{name}({x}) is not defined: {err}", text, span_of(node)) from None

    return apply


@builds(R.Call)
def build_call(node: R.Call, b):
    """A declared function on its arguments, memoised per call like a conditioned distribution."""
    i = node.decl

    def call(ctx, values):
        return shaped(ctx, ctx.decls[i](*values))

    if b.declaration(i).vars == (SCHEDULE_STEP,):
        call = _at_use(call, b.text, node.span)
    return with_log_det(node, b, memoised(("call", i), list(node.args), b, call), shaped)


def shaped(ctx, out):
    """A function's output with trailing size-1 dimensions past the examples' dropped (a critic's [batch, 1])."""
    while torch.is_tensor(out) and out.dim() > ctx.lead and out.shape[-1] == 1:
        out = out.squeeze(-1)
    return out


def _at_use(call, text, span):
    """A schedule's lookup whose input error (a step outside its table) points at its use in the formula, where
    the step was written, rather than at the schedule's signature; the message still names the schedule."""

    def looked_up(ctx, values):
        try:
            return call(ctx, values)
        except FormulaInputError as e:
            raise FormulaInputError(e.message, text, span) from None

    return looked_up


__all__ = ["summed", "paired", "align"]

spellings.on_change(_implementation.cache_clear)  # a new function row is evaluated by the next compile
