"""Explicit families where a formula uses a distribution: drawn in an expectation (`E_{\\epsilon \\sim
\\mathcal{N}(0, I)}`), on either side of a KL, in an entropy. The log-density is in `densities`; the family table in
`family_dists`.

A draw is reparameterised where the torch family has `rsample` (Normal, Laplace, Uniform, Beta); a family with
constant parameters (`\\mathcal{U}\\{1, \\ldots, T\\}`, `\\mathrm{Bern}(0.5)`) is sampled plainly (no gradient is
needed); one whose parameters carry gradients and has no `rsample` gets the score-function estimator. The plan says
which, as it does for declared distributions.
"""

from __future__ import annotations

from torch.distributions import Distribution, ExponentialFamily

from ..check import resolved as R
from ..check.divergences import Needs
from ..errors import FormulaInputError
from ..estimators import closed_form, gradients
from ..estimators.draws import per_example, sample_shape
from ..families.protocol import capabilities_of
from ..text.printing import to_ascii as var_text
from . import divergences as dv
from . import plan as P
from .family_dists import family_build, family_dist
from .refs import key_fn, span_of
from .registry import builds


class Fixed(gradients.GradientEstimator):
    """Draws from a family whose parameters are constants: a plain sample, no gradient to estimate."""

    name, label = "fixed", "sampled (constant parameters: no gradient needed)"

    def draw(self, dist, shape):
        return dist.sample(shape)


FIXED = Fixed()
_LEARNED = (R.Call, R.DrawnRef, R.StepRef, R.Density, R.LogDensity, R.Expectation)


def carries_gradients(fam: R.ExplicitFamily) -> bool:
    """Whether a family's parameters can depend on learned parameters (a network call, a reparameterised draw)."""
    stack = list(fam.args)
    while stack:
        node = stack.pop()
        if isinstance(node, _LEARNED):
            return True
        if isinstance(node, R.Checked_):
            continue
        stack.extend(getattr(node, "children", lambda: ())())
    return False


def estimator_for(fam: R.ExplicitFamily, b) -> gradients.GradientEstimator:
    """Pathwise where the family has rsample; plain sampling for constant parameters; else the usual choice."""
    caps = capabilities_of(family_build(fam.family).torch_class)
    if not caps.reparameterised and not carries_gradients(fam):
        return FIXED
    return gradients.choose(caps, b.options.gradient)


def family_draw_step(d: R.FamilyDraw, b):
    """The closure drawing `d.var` from its explicit family into the trace; returns log q when scored."""
    from .expectations import _Step

    make = family_dist(d.family, b)
    estimator = estimator_for(d.family, b)
    like = b.build(d.like) if d.like is not None else None
    label = family_build(d.family.family).torch_class.__name__
    shape_from = f", shaped like {var_text(d.partner)}" if d.partner is not None else ""
    b.note(P.DrawStep(var_text(d.var), var_text(d.family.src), label, estimator.label + shape_from))
    key_of, needs_log_q = key_fn(d.var, b), estimator.needs_log_prob
    identity, text, src, name = d.family.identity, b.text, d.family.src, var_text(d.var)

    def step(ctx):
        dist = make(ctx, like(ctx) if like is not None else None)
        if identity and not dist.batch_shape:
            raise FormulaInputError(f"the shape of {name} ~ {var_text(src)} cannot be known: its parameters and "
                                    "what it is added to are scalars; give a parameter or partner of its shape",
                                    text, span_of(src))
        z = estimator.draw(dist, sample_shape(dist, ctx.n))
        ctx.put(key_of(ctx), z)
        return per_example(dist.log_prob(z)) if needs_log_q else None

    return _Step(step, estimator)


# --- KL with an explicit family on either side ---------------------------------------------------------------

_BUILTIN_KL = dv._DIVERGENCES["KL"]


def _side(side, b):
    """(make(ctx, like) -> distribution, torch class, text, estimator) of one side of a KL."""
    if isinstance(side, R.ExplicitFamily):
        make = family_dist(side, b)
        return make, family_build(side.family).torch_class, var_text(side.src), estimator_for(side, b), True
    bound = dv._only_factor(side, b, "KL")
    cond, caps = b.conditioned(bound), b.capabilities(bound.decl)
    return (lambda ctx, like=None, event_dims=None: cond(ctx)), caps.family, b.signature(bound.factor), \
        b.gradient_estimator(bound.decl), False


@dv.register_divergence("KL", left=Needs.DENSITY | Needs.SAMPLES | Needs.FAMILY, right=Needs.DENSITY | Needs.FAMILY)
def kl_with_families(node: R.Divergence, b):
    """KL(p || q) where either side may be an explicit family (`KL(\\mathcal{N}(\\mu, \\sigma^2 I) || p(z))`): closed
    form where torch's registry has the pair, else Monte Carlo with one draw from the left; declared pairs as before."""
    if not isinstance(node.left, R.ExplicitFamily) and not isinstance(node.right, R.ExplicitFamily):
        return _BUILTIN_KL(node, b)
    left, lcls, ltext, estimator, left_family = _side(node.left, b)
    right, rcls, rtext, _, right_family = _side(node.right, b)
    what = f"KL({ltext} || {rtext})"

    def pair(ctx):
        """Both sides; a family takes the shape and event of the declared side, or of the other family."""
        if not left_family:
            p = left(ctx)
            return p, right(ctx, _like(p), len(p.event_shape))
        if not right_family:
            q = right(ctx)
            return left(ctx, _like(q), len(q.event_shape)), q
        p = left(ctx)
        if p.batch_shape or p.event_shape:
            return p, right(ctx, _like(p), len(p.event_shape))
        q = right(ctx)
        return (left(ctx, _like(q), len(q.event_shape)), q) if q.batch_shape or q.event_shape else (p, q)

    if b.options.analytic_kl and lcls is not None and rcls is not None and closed_form.kl_known(lcls, rcls):
        b.note(P.ClosedFormStep(what, f"{lcls.__name__} || {rcls.__name__}"))
        return lambda ctx: closed_form.kl(*pair(ctx))
    reason = "analytic_kl=False" if not b.options.analytic_kl else "no closed form registered"
    b.note(P.MonteCarloStep(what, f"one draw from {ltext} ({reason}; {estimator.label})"))

    def kl_mc(ctx):
        p, q = pair(ctx)
        return one_draw(p, ctx.n, estimator, lambda z, log_p: log_p - q.log_prob(z))

    return kl_mc


def _own_entropy(cls: type) -> bool:
    """Whether a family computes its entropy itself (Poisson inherits ExponentialFamily's, which raises)."""
    return any("entropy" in vars(k) for k in cls.__mro__ if k not in (ExponentialFamily, Distribution))


def one_draw(p, n: int, estimator, value_of):
    """`value_of(z, log p(z))` at one draw z per example from `p`, with the estimator's gradient surrogate."""
    z = estimator.draw(p, sample_shape(p, n))
    log_p = p.log_prob(z)
    return estimator.surrogate(value_of(z, log_p), log_p)


def _like(dist):
    """A tensor of a distribution's batch and event shape, for the other side of a KL to take it."""
    if not dist.batch_shape and not dist.event_shape:
        return None
    try:
        return dist.mean
    except NotImplementedError:
        return dist.sample()


@builds(R.FamilyEntropy)
def build_family_entropy(node: R.FamilyEntropy, b):
    """`H[\\mathcal{N}(\\mu, \\sigma^2 I)]`: closed form where torch has it, else -log p at one draw."""
    make, fam = family_dist(node.family, b), node.family
    cls = family_build(fam.family).torch_class
    what = f"H[{var_text(fam.src)}]"
    if closed_form.entropy_known(cls) and _own_entropy(cls):
        b.note(P.ClosedFormStep(what, cls.__name__))
        return lambda ctx: make(ctx).entropy()
    estimator = estimator_for(fam, b)
    b.note(P.MonteCarloStep(what, f"-log p at one draw ({estimator.label})"))

    return lambda ctx: one_draw(make(ctx), ctx.n, estimator, lambda z, log_p: -log_p)


__all__ = ["family_draw_step", "kl_with_families", "build_family_entropy", "estimator_for", "Fixed"]
