"""Builders of sums: over a sampling set's draws (vectorised), over a discrete support (enumerated), or step by
step over an integer range (a Python loop whose draws see the previous steps)."""

from __future__ import annotations

import math

import torch

from ..check import resolved as R
from ..errors import FormulaInputError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR
from .batched_steps import batched_loop
from .refs import index_fn, length_of, span_of
from .registry import builds
from ..estimators import gradients


def _vector_sum(node: R.VectorSum, b, log_space: bool):
    record = P.LogSumExpStep if log_space else P.VectorSumStep
    with b.step(record(node.index, var_text(node.set_var))):
        body = _body(node.body, b, log_space)
    name = node.index
    if log_space and getattr(gradients.named(b.options.gradient), "uses_log_weights", False):
        return _weighted_log_sum(node, body, b)

    def vector_sum(ctx):
        value = _along_set(ctx, name, body)
        return torch.logsumexp(value, 0) if log_space else value.sum(0)

    return vector_sum


def _along_set(ctx, name: str, body):
    """The body's values for every draw of a sampling set at once, the draws along a new leading dimension."""
    ctx.lead += 1
    try:
        return ctx.bind(name, VECTOR, body)
    finally:
        ctx.lead -= 1


def _weighted_log_sum(node: R.VectorSum, body, b):
    """The log-sum-exp over a sampling set's draws, handed to the set's estimator with the log-weights (DReG
    rescales the draws' gradients, VIMCO adds its per-draw learning signals)."""
    from ..estimators.own_draws import estimator_of

    v, name, text, span = node.set_var, node.index, b.text, span_of(node)
    key = (v.name, (VECTOR,), v.mark, v.primes)

    power = b.build(node.body.exp) if isinstance(node.body, N.Pow) else None  # the VR bound's w^(1-alpha)

    def error(msg):
        return FormulaInputError(msg, text, span)

    def log_sum(ctx):
        log_w = _along_set(ctx, name, body)
        lse = torch.logsumexp(log_w, 0)
        estimator = estimator_of(ctx, key)
        if estimator is None:
            return lse
        return estimator.log_weights(ctx, key, log_w, lse, error, power(ctx) if power is not None else 1.0)

    return log_sum


def _support_sum(node: R.SupportSum, b, log_space: bool):
    i = node.bound.decl
    caps = b.capabilities(i)
    if not caps.enumerable:
        raise b.error(f"a sum over {var_text(node.index)} without bounds enumerates its values, but "
                      f"{b.declaration(i)} is not a discrete family with an enumerable support", node)
    with b.step(P.EnumerationStep(var_text(node.index), str(b.declaration(i)), log_space)):
        body = _body(node.body, b, log_space)
    given = [b.build(g) for g in node.bound.given]
    key = (node.index.name, (), node.index.mark, node.index.primes)

    def support_sum(ctx):
        values = ctx.decls[i].enumerate_support(*[g(ctx) for g in given], expand=True)
        saved, outer = ctx.trace.get(key), ctx.outer
        ctx.lead += 1
        ctx.outer = (values.shape[0],) + outer  # the nets inside see the other inputs expanded to the values
        ctx.put(key, values)
        try:
            value = body(ctx)
        finally:
            ctx.lead -= 1
            ctx.outer = outer
            ctx.drop(key, saved)
        return torch.logsumexp(value, 0) if log_space else value.sum(0)

    return support_sum


def _body(node, b, log_space: bool):
    if not log_space:
        return b.build(node)
    from .densities import log_of

    return log_of(node, b)


# A vectorised or enumerated sum has a value and a log-space form (log-sum-exp), from one builder each.
for _type, _build in ((R.VectorSum, _vector_sum), (R.SupportSum, _support_sum)):
    builds(_type)(lambda node, b, _build=_build: _build(node, b, False))
    builds(_type, log=True)(lambda node, b, _build=_build: _build(node, b, True))


@builds(R.LoopSum)
def build_loop_sum(node: R.LoopSum, b):
    count = _range_of(node, b)
    record = P.LoopStep if node.uses_index else P.RepeatStep
    with b.step(record(node.index, var_text(node.lower), var_text(node.upper))):
        batched = batched_loop(node, count, b)  # expectations' bodies for every step at once, where they allow
        if batched is not None:
            return batched
        body = b.build(node.body)
    name = node.index

    if not node.uses_index:
        def repeated(ctx):
            lo, hi = count(ctx)
            return (hi - lo + 1) * body(ctx)

        return repeated

    def loop_sum(ctx):
        lo, hi = count(ctx)
        acc = 0.0
        for t in range(lo, hi + 1):
            acc = acc + ctx.bind(name, t, body)
        return acc

    return loop_sum


@builds(R.LoopSum, log=True)
def build_log_loop_sum(node: R.LoopSum, b):
    """`log \\sum_{k=1}^{K} w_k p_k(x)` in log space: the log-sum-exp over the steps of each step's log-value, so a
    mixture written in the formula stays finite where every component's density underflows."""
    from .densities import log_of

    count = _range_of(node, b)
    with b.step(P.LoopLogSumExpStep(node.index, var_text(node.lower), var_text(node.upper))):
        body = log_of(node.body, b)
    name = node.index

    def log_loop_sum(ctx):
        lo, hi = count(ctx)
        if not node.uses_index:
            return body(ctx) + math.log(hi - lo + 1)
        steps = [ctx.bind(name, t, body) for t in range(lo, hi + 1)]
        if not any(torch.is_tensor(v) for v in steps):  # numbers only
            top = max(steps)
            return top + math.log(sum(math.exp(v - top) for v in steps)) if top > -math.inf else top
        like = next(v for v in steps if torch.is_tensor(v))
        steps = [v if torch.is_tensor(v) else like.new_full((), v) for v in steps]
        return torch.logsumexp(torch.stack(torch.broadcast_tensors(*steps)), 0)

    return log_loop_sum


def _range_of(node: R.LoopSum, b):
    """`ctx -> (lo, hi)`: a step-by-step sum's bounds at run time; an empty range is an input error at the sum."""
    lower, upper = index_fn(node.lower, b), upper_bound(node, b)
    name, text, src = node.index, b.text, node.src

    def count(ctx):
        lo, hi = lower(ctx), upper(ctx)
        if hi < lo:
            raise FormulaInputError(f"this sum runs over {name} = {lo}..{hi}: an empty range", text, span_of(src))
        return lo, hi

    return count


def upper_bound(node: R.LoopSum, b):
    """An upper bound: an input scalar, or the length of a sequence input (`T` from `x_{1:T}`)."""
    bound = node.upper
    if not (isinstance(bound, N.Var) and not bound.index):
        return index_fn(bound, b)
    return length_of(bound, node.sequences, b)


__all__ = ["upper_bound"]
