"""What an estimator remembers of its draws within one call: which declaration drew the trace entry (so a
log-density at that draw can be told to be q's own), and per-estimator state such as a set's per-draw log q."""

from __future__ import annotations

import torch

_DRAWN = "drawn by"  # memo tag: trace key -> (write version, declaration, estimator, state)


def remember(ctx, key, decl: int, estimator, state=None) -> None:
    """Record that the trace entry `key`, just written, is `estimator`'s draw from declaration `decl`."""
    ctx.memo[(_DRAWN, key)] = (ctx.versions.get(key, 0), decl, estimator, state)


def drawn_by(ctx, key, decl: int):
    """(estimator, state) when the current trace entry `key` was drawn from declaration `decl`, else None."""
    entry = ctx.memo.get((_DRAWN, key))
    if entry is None or entry[0] != ctx.versions.get(key, 0) or entry[1] != decl:
        return None
    return entry[2], entry[3]


def state_of(ctx, key):
    """The state an estimator kept with the current draw under `key` (None if none)."""
    entry = ctx.memo.get((_DRAWN, key))
    if entry is None or entry[0] != ctx.versions.get(key, 0):
        return None
    return entry[3]


def estimator_of(ctx, key):
    """The estimator that drew the current trace entry `key` and remembered it (None if none)."""
    entry = ctx.memo.get((_DRAWN, key))
    return entry[2] if entry is not None and entry[0] == ctx.versions.get(key, 0) else None


def stopped_log_prob(dist, z: torch.Tensor) -> torch.Tensor:
    """log q(z) with the gradient through q's parameters removed and the one through z kept, for any family:
    log q(z) - log q(sg z) + sg log q(sg z) (the score term of the total derivative cancels)."""
    lq = dist.log_prob(z)
    if not torch.is_grad_enabled() or not z.requires_grad:
        return lq.detach() if torch.is_grad_enabled() else lq
    at_fixed = dist.log_prob(z.detach())
    return lq - at_fixed + at_fixed.detach()


__all__ = ["remember", "drawn_by", "state_of", "estimator_of", "stopped_log_prob"]
