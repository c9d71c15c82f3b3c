"""Divergences by name, and the entropy. `register_divergence` declares what a divergence needs of its arguments
(for the checker) and how it is estimated (a builder), in one registration: KL is the first entry, MMD, JS and
Wasserstein are the next ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

import torch

from ..check import divergences as spec
from ..check import resolved as R
from ..check.divergences import Needs
from ..errors import FormulaInputError
from ..estimators import closed_form
from ..estimators.draws import sample_shape
from ..text.printing import to_ascii as var_text
from . import definitions, divergences_critic  # noqa: F401  (register their builders)
from . import plan as P
from .densities import family_maker
from .registry import builds

_DIVERGENCES: Dict[str, Callable] = {}


def register_divergence(name: str, *, left: Needs = Needs.DENSITY | Needs.SAMPLES, right: Needs = Needs.DENSITY):
    """Register the builder `(node: resolved.Divergence, b: BuildContext) -> closure` of divergence `name`, and
    what its arguments must be: `Needs.DENSITY` (a log-density is evaluated), `Needs.SAMPLES` (it is drawn from),
    `Needs.FAMILY` (an explicit family such as \\mathcal{N}(0, I) may be written)."""

    def deco(fn):
        spec.register_spec(name, left, right)
        _DIVERGENCES[name.upper()] = fn
        return fn

    return deco


@builds(R.Divergence)
def build_divergence(node: R.Divergence, b):
    builder = _DIVERGENCES.get(node.kind)
    if builder is None:
        raise b.error(f"the {node.kind} divergence has no registered estimator", node)
    return builder(node, b)


def _only_factor(density: R.Density, b, what: str) -> R.Bound:
    if len(density.factors) != 1:
        raise b.error(f"{what} between joints is not evaluated yet: write it as an expectation of log-ratios",
                      density)
    return density.factors[0]


@dataclass(frozen=True)
class ClosedFormKL:
    """A closed-form KL between declared families taken apart: the left side's (memoised) distribution, the right
    side's declaration and its conditions' values, and the event-shape check (`formula.compiler.batched_steps`)."""

    left: Callable
    right_decl: int
    right_given: tuple
    check: Callable


@register_divergence("KL", left=Needs.DENSITY | Needs.SAMPLES, right=Needs.DENSITY | Needs.FAMILY)
def kl(node: R.Divergence, b):
    """Closed form where torch (or formula.families.kl_rules) has one and `analytic_kl` allows; else Monte Carlo
    with one draw per example from the left side, with the left family's gradient estimator."""
    lf = _only_factor(node.left, b, "KL")
    left, cl = b.conditioned(lf), b.capabilities(lf.decl)
    if isinstance(node.right, R.ExplicitFamily):
        right_family, label = torch.distributions.Normal, "Normal"
        make = family_maker(node.right, b)
        right = lambda ctx, p, like: make(ctx, p.mean if like is None else like, len(p.event_shape))  # noqa: E731
        right_text = var_text(node.right.src)
    else:
        rf = _only_factor(node.right, b, "KL")
        cr, cond_r = b.capabilities(rf.decl), b.conditioned(rf)
        right_family, label = cr.family, cr.label
        right = lambda ctx, p, like: cond_r(ctx)  # noqa: E731
        right_text = b.signature(rf.factor)
    what = f"KL({b.signature(lf.factor)} || {right_text})"
    if b.options.analytic_kl and cl.family is not None and right_family is not None and closed_form.kl_known(
            cl.family, right_family):
        b.note(P.ClosedFormStep(what, f"{cl.label} || {label}"))

        text, src, kl_of = b.text, node.src, closed_form.kl

        def check(p, q):
            if p.event_shape != q.event_shape:
                raise _shapes_differ(what, p, q, text, src)

        def kl_closed(ctx):
            p = left(ctx)
            q = right(ctx, p, None)  # a declared right side ignores `like`; an explicit family's is p's shape
            if p.event_shape != q.event_shape:
                check(p, q)
            return kl_of(p, q)

        if not isinstance(node.right, R.ExplicitFamily):  # what a step-by-step sum needs to batch it over steps
            kl_closed.parts = ClosedFormKL(left, rf.decl, tuple(b.build(g) for g in rf.given), check)
        return kl_closed
    estimator = b.gradient_estimator(lf.decl)
    reason = "analytic_kl=False" if not b.options.analytic_kl else "no closed form registered"
    b.note(P.MonteCarloStep(what, f"one draw from {b.signature(lf.factor)} ({reason}; {estimator.label})"))

    def kl_mc(ctx):
        p = left(ctx)
        z = estimator.draw(p, sample_shape(p, ctx.n))
        log_p = p.log_prob(z)  # the score for a score-function surrogate; the value's own term may stop it (STL)
        own = estimator.own_log_prob(p, z) if estimator.stops_own_score else log_p
        return estimator.surrogate(own - right(ctx, p, z).log_prob(z), log_p)

    return kl_mc


def _shapes_differ(what: str, p, q, text, src) -> FormulaInputError:
    span = (src.span.start, src.span.end) if src.span is not None else None
    return FormulaInputError(
        f"{what}: the left side has event shape {list(p.event_shape)} (batch {list(p.batch_shape)}), the right "
        f"side {list(q.event_shape)} (batch {list(q.batch_shape)}); both must be over the same variable shape "
        "(check shape= of a fixed-parameter declaration against the network's output)", text, span)


@builds(R.Entropy)
def build_entropy(node: R.Entropy, b):
    f = _only_factor(node.density, b, "the entropy")
    caps, cond = b.capabilities(f.decl), b.conditioned(f)
    what = f"H[{b.signature(f.factor)}]"
    if caps.family is not None and closed_form.entropy_known(caps.family):
        b.note(P.ClosedFormStep(what, caps.label))
        return lambda ctx: cond(ctx).entropy()
    estimator = b.gradient_estimator(f.decl)
    b.note(P.MonteCarloStep(what, "-log q at one draw"))

    def entropy_mc(ctx):
        d = cond(ctx)
        z = estimator.draw(d, sample_shape(d, ctx.n))
        log_q = d.log_prob(z)
        own = estimator.own_log_prob(d, z) if estimator.stops_own_score else log_q
        return estimator.surrogate(-own, log_q)

    return entropy_mc


__all__ = ["register_divergence", "Needs"]
