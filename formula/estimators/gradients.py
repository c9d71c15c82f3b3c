"""Gradient estimators for expectations: each owns draw -> value -> gradient surrogate, and names itself in the plan.

The compiler asks `choose(capabilities, preferred)` once per draw when an objective is compiled. A new estimator
(DReG, STL, VIMCO, a learned baseline) is a subclass registered with `register_estimator`, chosen by name through
`fm.compile(..., gradient=NAME)`.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from ..errors import FormulaError


class GradientEstimator:
    """How E_q[f] gets a gradient with respect to q's parameters."""

    name = "abstract"
    label = "abstract"  # what explain() prints
    needs_log_prob = False  # whether `surrogate` needs log q(z) of the draw

    def applies(self, capabilities) -> bool:
        """Whether this estimator can be used for a draw from a declaration with these capabilities."""
        return True

    def draw(self, dist: torch.distributions.Distribution, shape) -> torch.Tensor:
        raise NotImplementedError

    def surrogate(self, value: torch.Tensor, log_q: Optional[torch.Tensor]) -> torch.Tensor:
        """`value` unchanged in the forward pass, with the estimator's gradient."""
        return value

    # Hooks for estimators that see more than one draw (STL, DReG, VIMCO); the compiler calls them only where the
    # flag is set, so the default path pays nothing.
    keeps_draws = False  # the draw step calls `keep` instead of writing the draw itself
    stops_own_score = False  # log q at its own draw is evaluated by `own_log_prob` (q's parameters stopped)
    uses_log_weights = False  # a log-sum-exp over a sampling set's draws calls `log_weights`

    def keep(self, ctx, key, dist, z, is_set: bool, decl: int):
        """Write draw `z` of `dist` (declaration `decl`) into the trace under `key`; return log q for `surrogate`
        (or None)."""
        ctx.put(key, z)
        return None

    def own_log_prob(self, dist, z) -> torch.Tensor:
        """log q(z) where z is this estimator's own draw from `dist`."""
        return dist.log_prob(z)

    def log_weights(self, ctx, key, log_w: torch.Tensor, lse: torch.Tensor, error, power=1.0) -> torch.Tensor:
        """`lse` (logsumexp of `log_w` over the set's draws, dim 0) with this estimator's gradient; `log_w` is
        `power` times the log importance weights (1 - alpha in the VR bound); `error(msg)` makes a FormulaError
        with a caret at the sum."""
        return lse


class Reparameterised(GradientEstimator):
    """Pathwise gradients through `rsample` (the reparameterisation trick)."""

    name, label = "reparam", "reparameterised"

    def applies(self, capabilities) -> bool:
        return bool(capabilities.reparameterised)

    def draw(self, dist, shape):
        return dist.rsample(shape)


class ScoreFunction(GradientEstimator):
    """REINFORCE with a leave-one-out baseline: unbiased for any family that can be sampled and has a density."""

    name, label = "score", "score-function surrogate (leave-one-out baseline)"
    needs_log_prob = True

    def applies(self, capabilities) -> bool:
        return bool(capabilities.has_density)

    def draw(self, dist, shape):
        return dist.sample(shape)

    def surrogate(self, value, log_q):
        return score_surrogate(value, log_q)


def score_surrogate(value: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """`value` unchanged, with the score-function (REINFORCE) gradient of E_q[value] added.

    The surrogate is `value + (value - b).detach() * (log_q - log_q.detach())`: its forward value is `value`, its
    gradient is the pathwise part plus `(f - b) * grad log q`, unbiased because the baseline `b` of example i is
    the mean of the other examples' values (leave-one-out), which does not depend on example i's draw.
    """
    if log_q is None or not log_q.requires_grad or not torch.is_tensor(value):
        return value  # a constant: (f - b) is zero under the leave-one-out baseline
    f = value.detach()
    n = f.shape[-1] if f.dim() else 1
    baseline = (f.sum(-1, keepdim=True) - f) / (n - 1) if n > 1 else torch.zeros_like(f)
    return value + (f - baseline) * (log_q - log_q.detach())


_ESTIMATORS: Dict[str, GradientEstimator] = {}
_DEFAULT_ORDER = ("reparam", "score")


def register_estimator(estimator: GradientEstimator) -> GradientEstimator:
    """Make `estimator` choosable by its name: `fm.compile(..., gradient=estimator.name)`."""
    _ESTIMATORS[estimator.name] = estimator
    return estimator


def choose(capabilities, preferred: Optional[str] = None) -> GradientEstimator:
    """The estimator for a draw: `preferred` where it applies, else pathwise where the family allows, else score."""
    if preferred is not None:
        est = _ESTIMATORS.get(preferred)
        if est is None:
            raise FormulaError(f"no gradient estimator {preferred!r}; known: {', '.join(sorted(_ESTIMATORS))}")
        if est.applies(capabilities):
            return est
    for name in _DEFAULT_ORDER:
        if _ESTIMATORS[name].applies(capabilities):
            return _ESTIMATORS[name]
    raise FormulaError(f"no gradient estimator applies to a {capabilities.label} (it has no density and no rsample)")


def known() -> tuple:
    return tuple(sorted(_ESTIMATORS))


def named(name: Optional[str]) -> Optional[GradientEstimator]:
    """The registered estimator called `name` (None for None or an unknown name)."""
    return _ESTIMATORS.get(name) if name is not None else None


register_estimator(Reparameterised())
register_estimator(ScoreFunction())

__all__ = ["GradientEstimator", "Reparameterised", "ScoreFunction", "score_surrogate", "register_estimator",
           "choose", "known", "named"]
