"""Builders of slices and prefix draws (formula.check.sequences): `x_{<t}` as `[batch, length, ...]`, and
`E_{q(z_{<l}|x)}[...]` drawing z_1, z_2, ... one level at a time, each from its level's network."""

from __future__ import annotations

import torch

from ..check.sequences import LevelDraw, PrefixExpectation, PrefixRef, StepOfCall
from ..errors import FormulaInputError
from ..estimators.draws import sample_shape
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR
from .refs import index_fn, length_of, span_of
from .registry import builds


def _range_fn(lo_node, hi_node, b, node, source):
    """(lo, hi) of a slice at this point; a bare `T` nobody supplies is the sequence's length."""
    lo = index_fn(lo_node, b)
    hi = _upper_fn(hi_node, b, source)
    text = b.text

    def bounds(ctx):
        a, c = lo(ctx), hi(ctx)
        if a == VECTOR or c == VECTOR:
            raise FormulaInputError(f"{var_text(node)} cannot be sliced along a sampling set", text, span_of(node))
        if a < 1:
            raise FormulaInputError(f"{var_text(node)} starts at {a}: slices start at 1", text, span_of(node))
        return a, c

    return bounds


def _upper_fn(hi_node, b, source):
    """The last element: a bare letter no sum binds (`T`) is an input if given, else the length of the sequence
    sliced (or, for draws, of a sequence input of the formula)."""
    from ..lang import nodes as N

    if not (isinstance(hi_node, N.Var) and not hi_node.index):
        return index_fn(hi_node, b)
    return length_of(hi_node, (source,) if source is not None else tuple(sorted(b.checked.sequences)), b)


@builds(PrefixRef)
def build_prefix(ref: PrefixRef, b):
    """A slice of a sequence input, `seq[:, lo-1:hi]`, or the draws lo..hi stacked after the leading dims."""
    bounds = _range_fn(ref.lo, ref.hi, b, ref.var, ref.source)
    v, text, source = ref.var, b.text, ref.source

    def sliced(ctx):
        lo, hi = bounds(ctx)
        seq = ctx.inputs.get(source)
        if seq is None:
            raise FormulaInputError(f"no value for {source}: pass {source}=... ([batch, T, ...])", text, span_of(v))
        if not torch.is_tensor(seq) or seq.dim() < 2 or hi > seq.shape[1]:
            steps = seq.shape[1] if torch.is_tensor(seq) and seq.dim() >= 2 else "no"
            raise FormulaInputError(f"{var_text(v)} needs steps {lo}..{hi} of {source}, which has {steps} steps",
                                    text, span_of(v))
        return seq[:, lo - 1:hi]

    def drawn(ctx):
        lo, hi = bounds(ctx)
        if hi < lo:
            raise FormulaInputError(f"{var_text(v)} is empty here ({lo}..{hi}): declare the first level on its own "
                                    "or start the sum one level later", text, span_of(v))
        parts = []
        for k in range(lo, hi + 1):
            t = ctx.trace.get((v.name, (k,), v.mark, v.primes))
            if t is None:
                raise FormulaInputError(f"{var_text(v)} needs level {k}, which has not been drawn at this point",
                                        text, span_of(v))
            parts.append(t)
        return torch.stack(parts, ctx.lead)

    return sliced if source is not None else drawn


def slice_keyer(ref: PrefixRef, b):
    """What identifies a slice's value within a call (for the memo): its range and the versions of its draws."""
    if ref.source is not None:
        bounds = _range_fn(ref.lo, ref.hi, b, ref.var, ref.source)
        return lambda ctx: ("slice", ref.source, bounds(ctx))
    bounds, v = _range_fn(ref.lo, ref.hi, b, ref.var, None), ref.var

    def key(ctx):
        lo, hi = bounds(ctx)
        return ("slice", v.name, v.mark, v.primes,
                tuple(ctx.versions.get((v.name, (k,), v.mark, v.primes), 0) for k in range(lo, hi + 1)))

    return key


def _level_step(level: LevelDraw, b):
    """A closure drawing one element from this level's declaration (binding the level's index to k)."""
    d = level.bound.decl
    caps = b.capabilities(d)
    var = level.bound.factor.vars[0]
    if not caps.can_sample:
        raise b.error(f"{b.signature(level.bound.factor)} cannot be sampled from ({caps.label})", var)
    estimator = b.gradient_estimator(d)
    if estimator.needs_log_prob:
        raise b.error(f"{b.signature(level.bound.factor)} is drawn level by level, which needs reparameterised "
                      f"draws for now ({caps.label} has none)", var)
    b.note(P.DrawStep(var_text(var), b.signature(level.bound.factor), caps.label,
                      f"{estimator.label}, level by level"))
    cond, index = b.conditioned(level.bound), level.index

    def draw(ctx, k):
        dist = ctx.bind(index, k, cond) if index is not None else cond(ctx)
        return estimator.draw(dist, sample_shape(dist, ctx.n))

    return draw


@builds(PrefixExpectation)
def build_prefix_expectation(e: PrefixExpectation, b):
    """Draw the levels of the prefix not drawn yet in this call (each from its level's declaration), then the
    body: a hierarchy's levels are one ancestral draw per call, shared by every term that uses them."""
    v = e.var
    with b.step(P.ExpectationStep(f"E_{{{var_text(e.src.over.dists[0])}}}[...], level by level")):
        concrete = {lv.level: _level_step(lv, b) for lv in e.concrete}
        generic = _level_step(e.generic, b) if e.generic is not None else None
        body = b.build(e.body)
    bounds, text = _range_fn(e.lo, e.hi, b, v, None), b.text

    def prefix_expect(ctx):
        lo, hi = bounds(ctx)
        for k in range(lo, hi + 1):
            key = (v.name, (k,), v.mark, v.primes)
            if key in ctx.trace:
                continue
            draw = concrete.get(k, generic)
            if draw is None:
                raise FormulaInputError(f"no declaration draws level {k} of {var_text(v)} (declared levels: "
                                        f"{sorted(concrete)})", text, span_of(v))
            ctx.put(key, draw(ctx, k))
        return body(ctx)

    return prefix_expect


@builds(StepOfCall)
def build_step_of_call(node: StepOfCall, b):
    """`h_t`: the function's output over the whole sequence (memoised: one call per evaluation), step t."""
    whole, at, text, v = b.build(node.call), index_fn(node.index, b), b.text, node.src

    def step(ctx):
        out, t = whole(ctx), at(ctx)
        if not (torch.is_tensor(out) and out.dim() >= 2):
            raise FormulaInputError(f"{var_text(v)} is a step of {v.name}(...), whose value must be "
                                    f"[batch, T, ...]; got {list(getattr(out, 'shape', []))}", text, span_of(v))
        if t == VECTOR or not 1 <= t <= out.shape[1]:
            raise FormulaInputError(f"{var_text(v)} at step {t}, but {v.name}(...) has {out.shape[1]} steps",
                                    text, span_of(v))
        return out[:, t - 1]

    return step


__all__ = ["build_prefix", "build_prefix_expectation", "build_step_of_call", "slice_keyer"]
