"""Closed forms: which KLs and entropies torch (with `formula.families.kl_rules`) computes exactly."""

from __future__ import annotations

import torch
from torch.distributions import kl as _kl


def kl_known(p_family: type, q_family: type) -> bool:
    """Whether a closed-form KL exists for the pair of base families (torch's registry and our rules)."""
    from ..families.kl_rules import closed_form_known

    return closed_form_known(p_family, q_family)


def entropy_known(family: type) -> bool:
    """Whether the family overrides `entropy` (closed form) instead of inheriting the base's NotImplementedError."""
    return family.entropy is not torch.distributions.Distribution.entropy


def kl(p: torch.distributions.Distribution, q: torch.distributions.Distribution) -> torch.Tensor:
    return _kl.kl_divergence(p, q)


__all__ = ["kl_known", "entropy_known", "kl"]
