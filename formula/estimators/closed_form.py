"""Closed forms: which KLs and entropies torch (with `formula.families.kl_rules`) computes exactly."""

from __future__ import annotations

import torch
from torch.distributions import kl as _kl


def kl_known(p_family: type, q_family: type) -> bool:
    """Whether a closed-form KL exists for the pair of base families (torch's registry and our rules); when it does,
    the KL functions of the pair (bare and inside `Independent`) are looked up now, once, for `kl` to call."""
    from ..families.kl_rules import closed_form_known

    known = closed_form_known(p_family, q_family)
    if known:
        wrapped = torch.distributions.Independent
        for pair in ((p_family, q_family), (wrapped, wrapped), (wrapped, q_family), (p_family, wrapped)):
            _dispatch(*pair)
    return known


_DISPATCH = {}  # (type of p, type of q) -> the KL function torch's registry gives (NotImplemented: none)


def _dispatch(p_type: type, q_type: type):
    fn = _DISPATCH.get((p_type, q_type))
    if fn is None:
        fn = _DISPATCH[(p_type, q_type)] = _kl._dispatch_kl(p_type, q_type)
    _kl._KL_MEMOIZE.setdefault((p_type, q_type), fn)  # torch's own cache, for the KLs that recurse (Independent)
    return fn


def entropy_known(family: type) -> bool:
    """Whether the family has a closed-form `entropy`: it overrides the base's NotImplementedError, and where it inherits
    the exponential family's formula it also defines the carrier measure that formula needs (Poisson does not)."""
    base = torch.distributions.Distribution
    if family.entropy is base.entropy:
        return False
    expfam = torch.distributions.ExponentialFamily
    return not (family.entropy is expfam.entropy
                and getattr(family, "_mean_carrier_measure", None) is expfam._mean_carrier_measure)


def kl(p: torch.distributions.Distribution, q: torch.distributions.Distribution) -> torch.Tensor:
    """`kl_divergence(p, q)` through the functions looked up when the plan was built: a dictionary hit that
    torch.compile traces, where torch's own lookup (a `min` over a generator on a cold cache) breaks the graph."""
    fn = _DISPATCH.get((type(p), type(q)))
    if fn is None or fn is NotImplemented:
        return _kl.kl_divergence(p, q)
    return fn(p, q)


__all__ = ["kl_known", "entropy_known", "kl"]
