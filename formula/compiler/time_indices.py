"""Builder of steps at a time index (formula.check.time_indices): `x_{t_2}` and `b_{t_1}` as a gather along time,
`seq[i, t[i] - 1]` for each example i, where the index is one step per example (a `[batch]` integer tensor: drawn,
defined or supplied) or one step for all (an int)."""

from __future__ import annotations

import torch

from ..check.time_indices import TimeGather
from ..errors import FormulaInputError
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR
from .refs import span_of
from .registry import builds


def _checkable(t: torch.Tensor) -> bool:
    """Data-dependent checks run in eager calls only (never on meta tensors or while torch.compile traces)."""
    return not t.is_meta and not torch.compiler.is_compiling()


def _steps(value, node: TimeGather, n: int, text: str):
    """The index as an int or a [batch] long tensor, or a FormulaInputError saying what it should be."""
    name, where = var_text(node.var.index[0]), span_of(node.var)
    if not torch.is_tensor(value):
        if value == VECTOR or isinstance(value, bool) or float(value) != int(value):
            raise FormulaInputError(f"{var_text(node.var)}: the step {name} must be an integer, got {value}", text,
                                    where)
        return int(value)
    if value.dim() == 0:
        value = value.reshape(1).expand(n)
    if value.shape != (n,):
        raise FormulaInputError(f"{var_text(node.var)}: the step {name} must be one integer per example ([{n}]) or "
                                f"a single integer, got shape {list(value.shape)}", text, where)
    if value.is_floating_point():
        if _checkable(value) and not bool((value == value.round()).all()):
            raise FormulaInputError(f"{var_text(node.var)}: the step {name} must be an integer, got "
                                    f"{value.reshape(-1)[0].item()}", text, where)
        value = value.round()
    return value.long()


def _check_range(steps, length: int, node: TimeGather, text: str, what: str) -> None:
    name = var_text(node.var.index[0])
    if isinstance(steps, int):
        bad = None if 1 <= steps <= length else (0, steps)
    else:
        if not _checkable(steps) or not steps.numel():
            return
        outside = (steps < 1) | (steps > length)
        bad = None if not bool(outside.any()) else (int(outside.nonzero()[0, 0]), int(steps[outside][0]))
    if bad is not None:
        example = f" of example {bad[0]}" if not isinstance(steps, int) else ""
        raise FormulaInputError(f"{var_text(node.var)} at {name} = {bad[1]}{example}, but {what} has {length} steps "
                                f"(steps are 1..{length})", text, span_of(node.var))


def _check_order(steps, earlier, node: TimeGather, text: str) -> None:
    name = var_text(node.var.index[0])
    for var, other in earlier:
        if isinstance(steps, int) and isinstance(other, int):
            bad = None if steps > other else (None, other, steps)
        else:  # one of them a [batch] tensor: the other, an int, as one like it (same device)
            like = steps if torch.is_tensor(steps) else other
            a = other.to(like.device) if torch.is_tensor(other) else torch.full_like(like, other)
            b = steps if torch.is_tensor(steps) else torch.full_like(like, steps)
            if not (_checkable(a) and _checkable(b)):
                continue
            wrong = b <= a
            bad = None if not bool(wrong.any()) else (int(wrong.nonzero()[0, 0]), int(a[wrong][0]), int(b[wrong][0]))
        if bad is not None:
            example = f"example {bad[0]} has " if bad[0] is not None else ""
            raise FormulaInputError(f"{name} must come after {var_text(var)} ({var_text(node.var)} is a later step): "
                                    f"{example}{var_text(var)} = {bad[1]}, {name} = {bad[2]}", text,
                                    span_of(node.var))


@builds(TimeGather)
def build_time_gather(node: TimeGather, b):
    """The sequence (an input, or the declared function's output: one call per evaluation), then step t of each
    example, checked to be inside the sequence and after the earlier indices of its letter (eager calls)."""
    index = b.build(node.index)
    whole = b.build(node.call) if node.call is not None else None
    earlier = [(var, b.build(ref)) for var, ref in node.earlier]
    source, text, v = node.source, b.text, node.var
    called = str(b.declaration(node.call.decl)) if node.call is not None else None
    what = f"the sequence {source}" if source is not None else f"the output of {called} over the sequence"
    if b.first_time(("time gather", var_text(v))):
        b.note(P.Note(f"{var_text(v)}: step {var_text(v.index[0])} of {what}, one step per example (a gather "
                      "along time)"))

    def gather(ctx):
        seq = whole(ctx) if whole is not None else ctx.inputs.get(source)
        if seq is None:
            raise FormulaInputError(f"no value for {source}: pass {source}=... ([batch, T, ...])", text, span_of(v))
        if not (torch.is_tensor(seq) and seq.dim() >= 2):
            raise FormulaInputError(f"{var_text(v)} is a step of {what}, which must be [batch, T, ...]; got "
                                    f"{list(getattr(seq, 'shape', []))}", text, span_of(v))
        steps = _steps(index(ctx), node, seq.shape[0], text)
        _check_range(steps, seq.shape[1], node, text, source or called)
        if earlier:
            n = seq.shape[0]
            _check_order(steps, [(var, _steps(f(ctx), node, n, text)) for var, f in earlier], node, text)
        if isinstance(steps, int):
            return seq[:, steps - 1]
        rows = torch.arange(seq.shape[0], device=seq.device)
        return seq[rows, steps.to(seq.device) - 1]

    return gather


__all__ = ["build_time_gather"]
