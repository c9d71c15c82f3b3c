"""Estimators: how an expectation, a KL or an entropy becomes a differentiable tensor.

Each choice is made once, when an objective is compiled, from the declared families (reparameterised or not,
closed-form KL registered or not), and recorded so that `explain()` can show it.
"""

from __future__ import annotations

import torch
from torch.distributions import kl as _kl


def score_surrogate(value: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """`value` unchanged, with the score-function (REINFORCE) gradient of E_q[value] added.

    The surrogate is `value + (value - b).detach() * (log_q - log_q.detach())`: its forward value is `value`, its
    gradient is the pathwise part plus `(f - b) * grad log q`, unbiased because the baseline `b` of example i is
    the mean of the other examples' values (leave-one-out), which does not depend on example i's draw.
    """
    if not log_q.requires_grad:
        return value
    f = value.detach()
    n = f.shape[-1] if f.dim() else 1
    if n > 1:
        baseline = (f.sum(-1, keepdim=True) - f) / (n - 1)
    else:
        baseline = torch.zeros_like(f)
    score = log_q - log_q.detach()
    return value + (f - baseline) * score


def closed_form_kl_known(p_family: type, q_family: type) -> bool:
    """Whether a closed-form KL exists for the pair of base families (torch's registry and `formula.families.kl_rules`)."""
    from ..families.kl_rules import closed_form_known

    return closed_form_known(p_family, q_family)


def closed_form_entropy_known(family: type) -> bool:
    """Whether the family overrides `entropy` (closed form) instead of inheriting the base's NotImplementedError."""
    return family.entropy is not torch.distributions.Distribution.entropy


def kl_closed(p: torch.distributions.Distribution, q: torch.distributions.Distribution) -> torch.Tensor:
    return _kl.kl_divergence(p, q)


def draw(dist: torch.distributions.Distribution, sample_shape, reparameterised: bool) -> torch.Tensor:
    """A draw with a pathwise gradient where the family has one; otherwise a plain (detached) sample."""
    if reparameterised:
        return dist.rsample(sample_shape)
    return dist.sample(sample_shape)


__all__ = ["score_surrogate", "closed_form_kl_known", "closed_form_entropy_known", "kl_closed", "draw"]
