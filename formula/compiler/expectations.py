"""Builder of expectations: draw each factor of the sampling distribution in order, then evaluate the body; a
factor without pathwise gradients adds its estimator's surrogate (the score function) around the body's value."""

from __future__ import annotations

from ..check import resolved as R
from ..lang import nodes as N
from ..estimators.draws import per_example, sample_shape
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR
from .refs import index_fn, key_fn, span_of
from ..errors import FormulaInputError
from .registry import builds
from .explicit_families import family_draw_step  # noqa: E402  (also registers KL and H of explicit families)


def _over(e: R.Expectation) -> str:
    over = e.src.over
    if over is None:
        return "E[...]"
    if any(isinstance(d, N.Family) for d in over.dists) or not over.dists:
        return "E_{" + ", ".join(var_text(d.var) for d in e.draws) + "}[...]"
    return "E_{" + " ".join(var_text(d) for d in over.dists) + "}[...]"


def expectation_parts(e: R.Expectation, b):
    """The draw steps of an expectation, its body's closure and its plan step (the draws' steps its children)."""
    with b.step(P.ExpectationStep(_over(e))) as record:
        steps = [family_draw_step(d, b) if isinstance(d, R.FamilyDraw) else data_step(d, b) if d.data else
                 draw_step(d, b) for d in e.draws]
        body = b.build(e.body)
    return steps, body, record


@builds(R.Expectation)
def build_expectation(e: R.Expectation, b):
    steps, body, _ = expectation_parts(e, b)
    scored = any(s.scored for s in steps)
    if not scored:
        fns = [s.fn for s in steps]  # the steps' closures themselves: no __call__ in between
        if len(fns) == 1:
            (s,) = fns

            def expect(ctx):
                s(ctx)
                return body(ctx)

            return expect

        def expect_n(ctx):
            for s in fns:
                s(ctx)
            return body(ctx)

        return expect_n
    surrogates = [s.estimator for s in steps if s.scored]

    def expect_scored(ctx):
        log_q = None
        for s in steps:
            lq = s(ctx)
            if lq is not None:
                log_q = lq if log_q is None else log_q + lq
        return surrogates[0].surrogate(body(ctx), log_q)

    return expect_scored


class _Step:
    """A closure writing one factor's draw into the trace; returns log q of the draw when its estimator needs it."""

    def __init__(self, fn, estimator=None):
        self.fn, self.estimator = fn, estimator
        self.scored = estimator is not None and estimator.needs_log_prob

    def __call__(self, ctx):
        return self.fn(ctx)


def data_step(d: R.Draw, b) -> _Step:
    var = d.var
    b.note(P.DataStep(var_text(var), b.signature(d.bound.factor)))
    (value,) = [b.build(v) for v in d.bound.values]
    key_of = key_fn(var, b)

    def data(ctx):
        ctx.put(key_of(ctx), value(ctx))

    return _Step(data)


def draw_step(d: R.Draw, b) -> _Step:
    var, i = d.var, d.bound.decl
    caps = b.capabilities(i)
    if not caps.can_sample:
        raise b.error(f"{b.signature(d.bound.factor)} cannot be sampled from ({caps.label})", var)
    estimator = b.gradient_estimator(i)
    cond = b.conditioned(d.bound)
    size = index_fn(d.set_size, b) if d.set_size is not None else None
    b.note(P.DrawStep(var_text(var), b.signature(d.bound.factor), caps.label, estimator.label,
                      var_text(d.set_size) if size else None))
    if size is not None:
        set_key = (var.name, (VECTOR,), var.mark, var.primes)
        key_of = lambda ctx: set_key  # noqa: E731
    else:
        key_of = key_fn(var, b)
    needs_log_q = estimator.needs_log_prob

    count = _set_size(size, d, b) if size is not None else None
    if estimator.keeps_draws:  # STL, DReG, VIMCO: the estimator writes the draw and remembers it
        def step_kept(ctx):
            dist = cond(ctx)
            z = estimator.draw(dist, sample_shape(dist, ctx.n, count(ctx) if count is not None else None))
            return estimator.keep(ctx, key_of(ctx), dist, z, count is not None, i)

        return _Step(step_kept, estimator)

    def step(ctx):
        dist = cond(ctx)
        z = estimator.draw(dist, sample_shape(dist, ctx.n, count(ctx) if count is not None else None))
        ctx.put(key_of(ctx), z)
        return per_example(dist.log_prob(z)) if needs_log_q else None

    return _Step(step, estimator)


def _set_size(size, d: R.Draw, b):
    """The number of draws of a sampling set, at least 1."""
    text, node, name = b.text, d.set_size, var_text(d.set_size)

    def count(ctx) -> int:
        k = size(ctx)
        if k == VECTOR or int(k) != k or k < 1:
            raise FormulaInputError(f"{name} draws of {var_text(d.var)}: {name} must be a positive integer, "
                                    f"got {k}", text, span_of(node))
        return int(k)

    return count


__all__ = ["build_expectation", "expectation_parts"]
