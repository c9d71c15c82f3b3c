"""Per-call memo of conditioned distributions and function calls.

The key of a use is the declaration and, for each condition, what identifies its value within the call: the trace
key and write version of a draw or sequence step, the value of a sum index, nothing for an input (fixed for the
call). A condition that is a computed expression (`q(z | f(x))`) is not memoised.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

import torch

from ..check import resolved as R
from ..check.scope import shift_of
from ..check.sequences import PrefixRef, StepOfCall
from ..families.per_index import PerIndex, selecting
from ..lang import nodes as N
from .context import VECTOR, Ctx, Fn
from .refs import index_fn, key_fn


FIXED = "fixed for the call"  # the keyer of an input or a number: its value cannot change within a call
KEYERS: Dict[type, Callable] = {}  # checked node type -> keyer(node, b), for references defined elsewhere


def register_keyer(*types: type):
    """Register `fn(node, b) -> closure` telling what identifies a checked reference's value in a call (a state
    at a step: formula.compiler.recurrent), so that conditionals and definitions reading it are memoised."""

    def deco(fn):
        for t in types:
            KEYERS[t] = fn
        return fn

    return deco


def keyer(ref, b):
    """What identifies `ref`'s value in a call: a closure, FIXED for inputs and numbers, or None when it cannot be
    told cheaply (no memo then)."""
    custom = KEYERS.get(type(ref))
    if custom is not None:
        return custom(ref, b)
    if isinstance(ref, (R.InputRef, R.SliceRef, N.Num)):
        return FIXED
    if isinstance(ref, R.IndexRef):
        name = ref.name
        return lambda ctx: ("index", name, ctx.env.get(name))
    if isinstance(ref, StepOfCall):  # h_t of a function of inputs: fixed for the call but for the step
        if any(keyer(a, b) is not FIXED for a in ref.call.args):
            return None
        at, i = index_fn(ref.index, b), ref.call.decl
        return lambda ctx: ("step of call", i, at(ctx))
    if isinstance(ref, PrefixRef):
        from .slices import slice_keyer

        return slice_keyer(ref, b)
    if isinstance(ref, (R.DrawnRef, R.StepRef)):
        key_of = key_fn(ref.var, b)

        def drawn(ctx):
            key = key_of(ctx)
            return key, ctx.versions.get(key, 0)

        return drawn
    return None


def _fixed_key(ref) -> tuple:
    """What tells two fixed arguments apart at compile time: the input's name, or the number."""
    if isinstance(ref, N.Num):
        return ("number", ref.value)
    return (type(ref).__name__, ref.name)


def memoised(tag, args: List, b, make: Callable[[Ctx, list], object], extra: Optional[Fn] = None) -> Fn:
    """A closure computing `make(ctx, values of args)` once per call and per distinct key of the arguments (and of
    `extra(ctx)`, a further key such as the level of an indexed use)."""
    raw = [b.build(a) for a in args]
    lifts = [lifted(a, g, b) for a, g in zip(args, raw)]  # what the nets see inside enumerated sums
    lookups = lifts
    keyers = [keyer(a, b) for a in args]
    if any(k is None for k in keyers):
        return lambda ctx: make(ctx, [g(ctx) for g in lookups])
    varying = [k for k in keyers if k is not FIXED]
    # which inputs and numbers the arguments are: D(x) and D(y), alpha_T and alpha_1 are different values
    tag = (tag,) + tuple(_fixed_key(a) for a, k in zip(args, keyers) if k is FIXED)
    if not varying and extra is None:
        def memo_fixed(ctx):
            key = (tag, ctx.outer)  # inside an enumerated sum the inputs are expanded: another value
            out = ctx.memo.get(key)
            if out is None:
                out = ctx.memo[key] = make(ctx, [g(ctx) for g in lookups])
            return out

        return memo_fixed

    if len(raw) == 1 and len(varying) == 1:
        (only_raw,), (only_lift,), (only_key,) = raw, lifts, varying
    else:
        only_raw = None

    if not varying:  # only the level keys it (q(z_k|x) along a sampling set): the arguments on a miss only
        def memo_level(ctx):
            key = (tag, ctx.outer)
            level = extra(ctx)
            if level is not None:
                key += (level,)
            out = ctx.memo.get(key)
            if out is None:
                out = ctx.memo[key] = make(ctx, [g(ctx) for g in (lifts if ctx.outer else raw)])
            return out

        return memo_level

    def memo(ctx):
        outer = ctx.outer
        if only_raw is not None:  # one argument (q(z_t|z_{t-1})): no comprehensions in the hot path
            values = [only_lift(ctx) if outer else only_raw(ctx)]  # first: a lookup may put a step in the trace
            key = (tag, outer, only_key(ctx))
        else:
            values = [g(ctx) for g in (lifts if outer else raw)]
            key = (tag, outer) + tuple([k(ctx) for k in varying])
        if extra is not None:
            # an extra key that is None (q(z_k|x) along a sampling set: no level) is the same use as none at
            # all (q(z|x) of the draw): IWAE's encoder runs once for the draws and their log q
            level = extra(ctx)
            if level is not None:
                key += (level,)
        out = ctx.memo.get(key)
        if out is None:
            out = ctx.memo[key] = make(ctx, values)
        return out

    return memo


def lifted(arg, lookup: Fn, b) -> Fn:
    """An argument of a net as the net sees it inside enumerated sums (`\\sum_y q(y|x) f(x, y)`): an input, or a
    value drawn outside the sum, expanded to the enumerated dimensions in front ([C, batch, ...])."""
    if isinstance(arg, R.InputRef) or (isinstance(arg, PrefixRef) and arg.source is not None):
        def lift_input(ctx):
            v = lookup(ctx)
            if ctx.outer and torch.is_tensor(v) and v.dim() >= 1:
                return v.expand(*ctx.outer, *v.shape)
            return v

        return lift_input
    if isinstance(arg, R.DrawnRef):
        key_of = key_fn(arg.var, b)

        def lift_draw(ctx):
            v = lookup(ctx)
            if ctx.outer and torch.is_tensor(v):
                missing = len(ctx.outer) - ctx.depth.get(key_of(ctx), len(ctx.outer))
                if missing > 0:
                    return v.expand(*ctx.outer[:missing], *v.shape)
            return v

        return lift_draw
    return lookup


def conditioned(bound: R.Bound, b) -> Fn:
    """Declaration `bound.decl` conditioned on its conditions' values, memoised per call; at a level of an
    indexed variable (`q(z_l|...)` at l=2) its `PerIndex` network runs at that level, and the level is keyed."""
    i = bound.decl
    index_level = level_fn(bound.factor.vars[0])
    # the level keys the memo only where it selects a network: p(x_s|z) with one net is one value for every s
    level_of = None if index_level is None else (
        lambda ctx: index_level(ctx) if isinstance(getattr(ctx.decls[i], "net", None), PerIndex) else None)

    def make(ctx, values):
        decl = ctx.decls[i]
        level = level_of(ctx) if level_of is not None else None
        if level is None:  # no level to select: no context to enter
            return decl.condition(*values, validate=True) if ctx.validate else decl.condition(*values)
        with selecting(decl, level):
            return decl.condition(*values, validate=True) if ctx.validate else decl.condition(*values)

    return memoised(("dist", i), list(bound.given), b, make, extra=level_of)


def level_fn(var) -> Optional[Fn]:
    """The level of a use whose variable has one index (`z_l`, `z_{l-1}`, `z_2`) as a closure (None while its
    letter is unbound); None for any other variable."""
    if not (isinstance(var, N.Var) and len(var.index) == 1):
        return None
    item = var.index[0]
    if isinstance(item, N.Num):
        k = int(item.value)
        return lambda ctx: k
    shift = shift_of(item)
    if shift is None:
        return None
    name, c = shift

    def level(ctx):
        value = ctx.env.get(name, ctx.inputs.get(name))  # a sum index, else an integer input (`l=3`)
        if torch.is_tensor(value) and value.dim() == 0 and not value.is_floating_point():
            value = int(value)
        return value - c if isinstance(value, int) and value != VECTOR else None

    return level


__all__ = ["conditioned", "memoised", "keyer", "level_fn", "register_keyer", "KEYERS"]
