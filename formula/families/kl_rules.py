"""Closed-form KL divergences that torch.distributions lacks for our families, registered with `register_kl`.

Importing this module (done by `formula.families.declarations`) adds:

* `Delta || anything`: `KL(delta_v || q) = -log q(v)`, the point mass taken to have log-density 0 (as in
  `formula.delta`); this is how a deterministic encoder's "KL" to a prior reads in MAP-style objectives.
* `Independent` wrappers with different reinterpreted dimensions, and an `Independent` against a bare
  elementwise distribution (`q(z|x)` with event shape (64,) against a scalar `N(0, 1)` prior): the base KL is
  taken elementwise (broadcast) and summed over the larger event. torch's own `Independent || Independent`
  raises `NotImplementedError` unless the dimensions agree; ours gives the same value where they do.

Pairs with no closed form (relaxed distributions, `Beta || Laplace`, `Gamma || Laplace`, which need incomplete
beta/gamma functions without gradients in torch) still raise `NotImplementedError`, so callers fall back to
Monte Carlo. `closed_form_known(P, Q)` says which way a pair of families goes, for the compiled plan, and
`closed_form(p, q)` the same for two distribution objects.
"""

from __future__ import annotations

import torch
import torch.distributions as D
from torch.distributions import Distribution, Independent, kl_divergence, register_kl
from torch.distributions.kl import _dispatch_kl, _kl_expfamily_expfamily, _kl_transformed_transformed
from torch.distributions.utils import _sum_rightmost

from .delta import Delta

__all__ = ["closed_form", "closed_form_known"]


def _unwrap(dist: Distribution) -> tuple[Distribution, int]:
    """The innermost base of nested `Independent`s and the total reinterpreted dimensions."""
    dims = 0
    while isinstance(dist, Independent):
        dims += dist.reinterpreted_batch_ndims
        dist = dist.base_dist
    return dist, dims


def _kl_delta(p: Distribution, q: Distribution) -> torch.Tensor:
    """`-log q(v)` for a point mass `p` at `v` (possibly `Independent`), summed over `p`'s event."""
    value = _unwrap(p)[0].value
    log_q = q.log_prob(value)
    extra = len(p.event_shape) - len(q.event_shape)  # p's event dims that q scored one by one
    return -_sum_rightmost(log_q, extra) if extra > 0 else -log_q


register_kl(Delta, Distribution)(_kl_delta)


@register_kl(Independent, Independent)
@register_kl(Independent, Distribution)
@register_kl(Distribution, Independent)
@register_kl(Delta, Independent)
def _kl_independent(p: Distribution, q: Distribution) -> torch.Tensor:
    """Elementwise base KL summed over the larger of the two events (see the module docstring)."""
    p_base, p_dims = _unwrap(p)
    if isinstance(p_base, Delta):
        return _kl_delta(p, q)
    q_base, q_dims = _unwrap(q)
    if p_dims == q_dims and p.event_shape == q.event_shape:  # torch's own case, without the shape checks
        kl = kl_divergence(p_base, q_base)
        return kl.sum(-1) if p_dims == 1 else _sum_rightmost(kl, p_dims)  # one event dim: no reshape first
    if p_base.event_shape != q_base.event_shape:
        raise NotImplementedError
    try:
        torch.broadcast_shapes(p.event_shape, q.event_shape)
    except RuntimeError:
        raise NotImplementedError from None
    return _sum_rightmost(kl_divergence(p_base, q_base), max(p_dims, q_dims))


def closed_form(p: Distribution, q: Distribution) -> bool:
    """Whether `KL(p || q)` has a closed form here: trying it is the only exact test for wrapped pairs."""
    if _dispatch_kl(type(p), type(q)) is NotImplemented:
        return False
    try:
        kl_divergence(p, q)
    except NotImplementedError:
        return False
    return True


# Transformed families whose KL torch computes from their base when both transforms agree.
_TRANSFORMED_BASE = {
    D.RelaxedBernoulli: D.relaxed_bernoulli.LogitRelaxedBernoulli,
    D.RelaxedOneHotCategorical: D.relaxed_categorical.ExpRelaxedCategorical,
    D.LogNormal: D.Normal,
}


def closed_form_known(p_family: type, q_family: type) -> bool:
    """Whether `KL(P || Q)` has a closed form for two families (torch classes), our registrations included.

    Unlike a bare registry look-up this sees through torch's `TransformedDistribution` rule, which matches
    every pair of relaxed distributions but then raises because their bases have no closed form, and through
    its generic exponential-family rule, which matches any two such families but only works for one family.
    """
    fn = _dispatch_kl(p_family, q_family)
    if fn is NotImplemented:
        return False
    if fn is _kl_expfamily_expfamily:
        return p_family is q_family
    if fn is _kl_transformed_transformed:
        base = _TRANSFORMED_BASE.get(p_family)
        return p_family is q_family and base is not None and closed_form_known(base, base)
    return True
