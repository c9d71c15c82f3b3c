"""Closed forms: which KLs and entropies torch (with `formula.families.kl_rules`) computes exactly."""

from __future__ import annotations

import torch
from torch.distributions import kl as _kl


def kl_known(p_family: type, q_family: type) -> bool:
    """Whether a closed-form KL exists for the pair of base families (torch's registry and our rules); when it does,
    torch's dispatch cache is filled now for the pair, bare and inside `Independent`: a traced `kl` is then a cache
    hit (torch.compile breaks the graph on a cold lookup, a `min` over a generator)."""
    from ..families.kl_rules import closed_form_known

    from ..families.summed import Summed

    known = closed_form_known(p_family, q_family)
    if known:
        wrappers = (torch.distributions.Independent, Summed)  # Summed: a declaration's event dims
        lefts, rights = (p_family,) + wrappers, (q_family,) + wrappers
        for pair in ((left, right) for left in lefts for right in rights):
            if pair not in _kl._KL_MEMOIZE:
                _kl._KL_MEMOIZE[pair] = _kl._dispatch_kl(*pair)
    return known


def entropy_known(family: type) -> bool:
    """Whether the family has a closed-form `entropy`: it overrides the base's NotImplementedError, and where it inherits
    the exponential family's formula it also defines the carrier measure that formula needs (Poisson does not)."""
    base = torch.distributions.Distribution
    if family.entropy is base.entropy:
        return False
    expfam = torch.distributions.ExponentialFamily
    return not (family.entropy is expfam.entropy
                and getattr(family, "_mean_carrier_measure", None) is expfam._mean_carrier_measure)


kl = _kl.kl_divergence  # KL(p || q), torch's own dispatch (an alias: one call fewer per KL)


__all__ = ["kl_known", "entropy_known", "kl"]
