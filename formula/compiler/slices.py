"""Builders of slices and prefix draws (formula.check.sequences): `x_{<t}` as `[batch, length, ...]`, and
`E_{q(z_{<l}|x)}[...]` drawing z_1, z_2, ... one level at a time, each from its level's network."""

from __future__ import annotations

import torch

from ..check.sequences import LevelDraw, PrefixExpectation, PrefixRef, StepOfCall
from ..errors import FormulaInputError
from ..estimators.draws import sample_shape
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR
from .refs import index_fn, length_of, span_of
from .registry import builds


def _range_fn(lo_node, hi_node, b, node, source):
    """(lo, hi) of a slice at this point; a bare `T` nobody supplies is the sequence's length."""
    lo = index_fn(lo_node, b)
    hi = _upper_fn(hi_node, b, source)
    if source is None and isinstance(node.index[0], N.After):
        hi = _suffix_end(node, hi_node, hi, b)
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
    if not (isinstance(hi_node, N.Var) and not hi_node.index):
        return index_fn(hi_node, b)
    return length_of(hi_node, (source,) if source is not None else tuple(sorted(b.checked.sequences)), b)


def _suffix_end(v, hi_node, upper, b):
    """The last element of a suffix of draws (`z_{\\geq t}`, `z_{>t}`): `T` where it is given (a bound index, an
    input, a sequence's length), else the last level drawn so far in this call."""
    name, iname, seqs = hi_node.name, var_text(hi_node), tuple(sorted(b.checked.sequences))

    def end(ctx):
        if name in ctx.env or iname in ctx.inputs or any(torch.is_tensor(ctx.inputs.get(s)) for s in seqs):
            return upper(ctx)
        k = 0
        while (v.name, (k + 1,), v.mark, v.primes) in ctx.trace:
            k += 1
        return k

    return end


def _empty_draws(v, b):
    """An empty slice of draws (`z_{<1}` at the first level, `z_{>T}` at the last): `[batch, 0, *event]`, the
    event shape that of a draw of the letter already made in this call, else the `shape=` of a declaration over
    the letter; without either, an input error that says to pass one."""
    letters = [i for i, d in enumerate(b.checked.decls)
               if any(isinstance(w, N.Var) and (w.name, w.mark, w.primes) == (v.name, v.mark, v.primes)
                      for w in getattr(d, "vars", ()))]
    text = b.text

    def like(ctx):
        for (name, index, mark, primes), value in ctx.trace.items():
            if (name, mark, primes) == (v.name, v.mark, v.primes) and len(index) == 1 and torch.is_tensor(value):
                return value.shape[ctx.lead:], value
        event = next((ctx.decls[i].shape for i in letters if getattr(ctx.decls[i], "shape", None) is not None), None)
        ref = next((t for t in ctx.inputs.values() if torch.is_tensor(t) and t.is_floating_point()), None)
        if event is None or ref is None:
            return None, None
        return event, ref

    def empty(ctx, lo, hi):
        event, ref = like(ctx)
        if event is None or ctx.lead != 1 or ctx.outer:
            raise FormulaInputError(f"{var_text(v)} is empty here ({lo}..{hi}) and nothing gives the size of one "
                                    f"level: pass shape=(...) to the declaration over {v.name} (an empty prefix is "
                                    "[batch, 0, *shape]), or declare the first level on its own", text, span_of(v))
        return torch.zeros((ctx.n, 0, *event), device=ref.device, dtype=ref.dtype)

    return empty


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

    empty = _empty_draws(v, b)

    def drawn(ctx):
        lo, hi = bounds(ctx)
        if hi < lo:
            return empty(ctx, lo, hi)
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
