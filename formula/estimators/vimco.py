"""VIMCO (Mnih & Rezende 2016): the score-function estimator for multi-sample bounds log 1/K sum_k w_k over
discrete draws, with a per-draw learning signal L - L_{-k}, L_{-k} the bound with w_k replaced by the geometric
mean of the other weights. A single draw (no sampling set) gets the leave-one-out score function."""

from __future__ import annotations

import torch

from .draws import per_example
from .gradients import ScoreFunction, register_estimator, score_surrogate
from .own_draws import remember, state_of


class _SetScores:
    """The log q of sampling sets whose learning signal the log-sum-exp over their draws adds (`used`), and of
    single draws; a set that no log-sum-exp used falls back to the leave-one-out score function."""

    def __init__(self, parts):
        self.parts = parts  # [log q per draw [K, ...] with a `used` flag] or tensors (per example)

    def __add__(self, other):
        return _SetScores(self.parts + (other.parts if isinstance(other, _SetScores) else [other]))

    __radd__ = __add__

    def unused_log_q(self):
        parts = [per_example(p.log_q) if isinstance(p, _Set) else p for p in self.parts
                 if not (isinstance(p, _Set) and p.used)]
        return sum(parts[1:], parts[0]) if parts else None


class _Set:
    __slots__ = ("log_q", "used")

    def __init__(self, log_q):
        self.log_q, self.used = log_q, False


def learning_signals(log_w: torch.Tensor) -> torch.Tensor:
    """L - L_{-k} for each draw k (dim 0), L = logsumexp(log_w): w_k replaced by the others' geometric mean."""
    k = log_w.shape[0]
    log_w = log_w.detach()
    others = (log_w.sum(0, keepdim=True) - log_w) / (k - 1)
    replaced = log_w.unsqueeze(0).expand(k, *log_w.shape).clone()
    idx = torch.arange(k, device=log_w.device)
    replaced[idx, idx] = others
    return torch.logsumexp(log_w, 0) - torch.logsumexp(replaced, 1)


class VIMCO(ScoreFunction):
    """Score-function gradients for the draws of a sampling set with VIMCO's per-draw leave-one-out signals."""

    name = "vimco"
    label = "score function, VIMCO per-draw baselines (leave-one-out for a single draw)"
    keeps_draws = uses_log_weights = True

    def applies(self, capabilities) -> bool:
        return bool(capabilities.has_density) and not capabilities.reparameterised

    def keep(self, ctx, key, dist, z, is_set, decl):
        ctx.put(key, z)
        if not is_set:
            return per_example(dist.log_prob(z))
        state = _Set(dist.log_prob(z))
        remember(ctx, key, decl, self, state)
        return _SetScores([state])

    def log_weights(self, ctx, key, log_w, lse, error, power=1.0):
        state = state_of(ctx, key)
        if not isinstance(state, _Set):
            return lse
        if log_w.shape[0] < 2:
            raise error("gradient='vimco' needs K >= 2 draws (its baselines leave one draw out)")
        state.used = True
        log_q = state.log_q
        while log_q.dim() > log_w.dim():
            log_q = log_q.sum(-1)
        return lse + (learning_signals(log_w) * (log_q - log_q.detach())).sum(0)

    def surrogate(self, value, log_q):
        if isinstance(log_q, _SetScores):
            log_q = log_q.unused_log_q()
        return score_surrogate(value, log_q)


VIMCO_ESTIMATOR = register_estimator(VIMCO())

__all__ = ["VIMCO", "VIMCO_ESTIMATOR", "learning_signals"]
