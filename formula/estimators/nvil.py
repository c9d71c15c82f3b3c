"""NVIL's learned baseline (Mnih & Gregor 2014) for the score-function estimator: `gradient="nvil"` subtracts
b(conditions), a network declared as `Baseline("b(x)", net=...)` among the objective's distributions (so its
parameters are the objective's), trained by the same step to regress the learning signal."""

from __future__ import annotations

import torch

from ..errors import FormulaInputError
from ..families.declarations import Function
from .draws import per_example
from .gradients import ScoreFunction, register_estimator


class Baseline(Function):
    """The baseline network of NVIL: `Baseline("b(x)", net=nn.Linear(D, 1))`, a function of inputs [batch, ...]
    returning [batch] or [batch, 1]."""


class _Regress(torch.autograd.Function):
    """Zero forward; backward moves b towards f (the gradient of (b - f)^2) whichever way the objective is
    optimised (the incoming gradient's sign is dropped), so the baseline regresses the signal in one step."""

    @staticmethod
    def forward(ctx, b, f):
        ctx.save_for_backward(b, f)
        return torch.zeros_like(b)

    @staticmethod
    def backward(ctx, grad):
        b, f = ctx.saved_tensors
        return 2 * (b - f) * grad.abs(), None


class _Scored:
    """log q of a draw with the baseline of its example."""

    __slots__ = ("log_q", "baseline")

    def __init__(self, log_q, baseline):
        self.log_q, self.baseline = log_q, baseline

    def __add__(self, other):
        if isinstance(other, _Scored):
            return _Scored(self.log_q + other.log_q, self.baseline)
        return _Scored(self.log_q + other, self.baseline)

    __radd__ = __add__


def baseline_value(ctx) -> torch.Tensor:
    """The declared Baseline's value at the call's inputs, one per example."""
    found = [d for d in ctx.decls if isinstance(d, Baseline)]
    if not found:
        raise FormulaInputError("gradient='nvil' needs a Baseline among the distributions: "
                                "formula.estimators.nvil.Baseline(\"b(x)\", net=...)")
    decl = found[0]
    missing = [n for n in decl.arg_names if n not in ctx.inputs]
    if missing:
        raise FormulaInputError(f"the NVIL baseline {decl.signature_text} takes inputs of the call; "
                                f"no input {', '.join(missing)}")
    b = decl(*[ctx.inputs[n] for n in decl.arg_names])
    return b.squeeze(-1) if b.dim() > 1 and b.shape[-1] == 1 else b


class NVIL(ScoreFunction):
    """REINFORCE with a learned, input-dependent baseline b(x), regressed onto the learning signal."""

    name = "nvil"
    label = "score-function surrogate (learned NVIL baseline b(x))"
    keeps_draws = True

    def keep(self, ctx, key, dist, z, is_set, decl):
        ctx.put(key, z)
        return _Scored(per_example(dist.log_prob(z)), baseline_value(ctx))

    def surrogate(self, value, log_q):
        if not isinstance(log_q, _Scored) or not log_q.log_q.requires_grad:
            return value
        f, b, lq = value.detach(), log_q.baseline, log_q.log_q
        return value + (f - b.detach()) * (lq - lq.detach()) + _Regress.apply(b, f)


NVIL_ESTIMATOR = register_estimator(NVIL())

__all__ = ["NVIL", "NVIL_ESTIMATOR", "Baseline"]
