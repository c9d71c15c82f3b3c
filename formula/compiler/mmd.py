"""`MMD(q(z|x) || p(z))`: the unbiased estimator of the squared maximum mean discrepancy between two sample sets.

The left set is the batch's draws from the left side, one per example: drawn from q(z|x) for each x of the batch,
they are draws from the aggregate posterior q(z) = E_{p_data(x)}[q(z|x)]. The right set is as many draws from the
right side (a declaration or an explicit family such as \\mathcal{N}(0, I)). The kernel is named by the subscript,
`\\mathrm{MMD}_{imq}`, kept by the parser as `Divergence.sub` (formula.compiler.mmd_kernels; the default is the
Gaussian RBF with the median heuristic).
The estimate is one number per batch; it is returned broadcast to [batch], so that the batch mean (what training
uses) is the estimate. Gradients flow through both sets where their draws are reparameterised.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..check import resolved as R
from ..check.kinds import DeclKind
from ..check.sample_divergences import MMD_NEEDS
from ..errors import FormulaInputError
from ..estimators.draws import sample_shape
from ..text.printing import to_ascii as var_text
from . import plan as P
from .densities import family_maker
from .divergences import register_divergence
from .mmd_kernels import Kernel, kernel_named, known, squared_distances
from .refs import span_of

def subscript(node) -> Optional[str]:
    """The kernel name of `\\mathrm{MMD}_{imq}(...)`: the parsed divergence's subscript (`Divergence.sub`), or None."""
    sub = getattr(node, "sub", None)
    return sub if sub else None


def unbiased_mmd2(a: torch.Tensor, b: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """The unbiased U-statistic of MMD^2 between sets `a` [n, D] and `b` [m, D] (n, m >= 2): the means of k over
    distinct pairs within each set, minus twice the mean over pairs across them."""
    n, m = a.shape[0], b.shape[0]
    pooled = torch.cat([a, b], 0)
    d2 = squared_distances(pooled, pooled)
    k = kernel.gram(d2, kernel.scale(d2, a.shape[1]))
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    within_a = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    within_b = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return within_a + within_b - 2.0 * kab.mean()


@register_divergence("MMD", **MMD_NEEDS)
def mmd(node: R.Divergence, b):
    """Draw the two sets and evaluate the unbiased MMD^2 with the subscript's kernel."""
    name = subscript(node.src)
    kernel = kernel_named(name)
    if kernel is None:
        raise b.error(f"no MMD kernel is named {name!r} (known: {known()}); register one with "
                      "formula.compiler.mmd_kernels.register_kernel", node)
    left, left_text, left_how = _left_side(node, b)
    right, right_text, right_how = _right_side(node, b)
    what = f"MMD({left_text} || {right_text})"
    b.note(P.MonteCarloStep(
        what, f"unbiased estimator of MMD^2 between the batch's draws from {left_text} (one per example: the "
              f"aggregate posterior; {left_how}) and as many draws from {right_text} ({right_how}); {kernel.label}; "
              "one number per batch, broadcast to [batch]"))
    text, src = b.text, node.src

    def mmd2(ctx):
        a = left(ctx)
        if a.dim() <= ctx.lead or ctx.lead != 1 or a.shape[0] < 2:
            raise FormulaInputError(f"{what} needs a batch of at least 2 examples, drawn once each (got draws of "
                                    f"shape {list(a.shape)})", text, span_of(src))
        c = right(ctx, a)
        value = unbiased_mmd2(a.flatten(1), c.flatten(1), kernel)
        return value.expand(a.shape[0])

    return mmd2


def _left_side(node: R.Divergence, b):
    """The closure drawing one value per example from the left side, its text, and how its gradient flows."""
    bound = _single(node.left, b)
    caps, cond = b.capabilities(bound.decl), b.conditioned(bound)
    estimator = b.gradient_estimator(bound.decl)
    if estimator.needs_log_prob:
        raise b.error(f"MMD needs reparameterised draws of {b.signature(bound.factor)} for its gradient, and "
                      f"{caps.label} has none ({estimator.label}): use a reparameterised family or a relaxation",
                      node.left)

    def draw(ctx):
        d = cond(ctx)
        return estimator.draw(d, sample_shape(d, ctx.n))

    return draw, b.signature(bound.factor), estimator.label


def _right_side(node: R.Divergence, b):
    """The closure drawing as many values as the left set from the right side, shaped like them."""
    if isinstance(node.right, R.ExplicitFamily):
        make = family_maker(node.right, b)
        return (lambda ctx, like: make(ctx, like, 0).rsample()), var_text(node.right.src), "reparameterised"
    bound = _single(node.right, b)
    cond, estimator = b.conditioned(bound), b.gradient_estimator(bound.decl)
    pathwise = not estimator.needs_log_prob

    def draw(ctx, like):
        d = cond(ctx)
        shape = sample_shape(d, like.shape[0])
        return estimator.draw(d, shape) if pathwise else d.sample(shape)

    how = estimator.label if pathwise else "not reparameterised: no gradient through these draws"
    return draw, b.signature(bound.factor), how


def _single(density, b) -> R.Bound:
    if not isinstance(density, R.Density) or len(density.factors) != 1:
        raise b.error("MMD between joints is not evaluated yet: one declared distribution on each side", density)
    bound = density.factors[0]
    if b.declaration(bound.decl).kind is DeclKind.DATA:
        raise b.error("MMD against the data's empirical distribution is not evaluated yet: declare both sides",
                      density)
    return bound


__all__ = ["unbiased_mmd2", "subscript"]
