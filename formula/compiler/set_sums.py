"""The builder of a sum over a set of inputs (formula.check.set_sums): every element in one vectorised pass.

Each set input `[batch, N_max, ...]` is bound, for the body, as its elements along a new leading dimension
(`[M, batch, ...]`, M the elements lo..hi), so a net in the body is called once on all elements, the way the draws
of a sampling set reach it; other inputs reach a net expanded to `[M, batch, ...]`. The upper bound is a number,
an input `N=` (an integer, or a `[batch]` tensor of counts: example b sums its elements lo..N[b], the padding
after them is masked out with `torch.where`, so it adds nothing and gets no gradient), or the set's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..check.set_sums import SetSum
from ..errors import FormulaInputError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import VECTOR
from .refs import as_int, span_of
from .registry import builds


@dataclass
class SetSumStep(P.Step):
    index: str
    lower: int
    upper: str
    sets: str
    log_space: bool = False

    def line(self):
        return (f"sum over {self.index} = {self.lower}..{self.upper}: over the elements of the set "
                f"{self.sets} [batch, N_max, ...], in one vectorised pass (masked by {self.upper} when it is a "
                "[batch] tensor of counts)" + (" (log-sum-exp)" if self.log_space else ""))


def build_set_sum(node: SetSum, b, log_space: bool):
    """The sum's closure: the body over every element at once, masked, summed (or log-sum-exp'd: `\\log
    \\sum_i p(y|x_i)`, finite where every element's density underflows)."""
    record = SetSumStep(node.index, node.lower, var_text(node.upper), ", ".join(node.sets), log_space)
    with b.step(record):
        if log_space:
            from .densities import log_of

            body = log_of(node.body, b)
        else:
            body = b.build(node.body)
    keys = tuple((v.name, (VECTOR,), v.mark, v.primes) for v in node.items)
    sets = tuple(var_text(v.base) for v in node.items)
    name, lo, upper, text, span = node.index, node.lower, node.upper, b.text, span_of(node.src)
    iname = var_text(upper)  # printed once here: nothing of the text layer runs inside a call

    def error(msg):
        return FormulaInputError(msg, text, span)

    def count(ctx, length: int):
        """The upper bound: an int, or a [batch] tensor of per-example counts."""
        if isinstance(upper, N.Num):
            return int(upper.value)
        value = ctx.inputs.get(iname)
        if value is None:
            return length
        if torch.is_tensor(value) and value.dim() == 1:
            return value
        return as_int(ctx.inputs, iname, upper, text)

    def set_sum(ctx):
        length, batch = _set_shape(ctx, sets, name, error)
        hi, mask = _elements(count(ctx, length), lo, length, batch, name, iname, error)
        m = hi - lo + 1
        value, lead = _over_elements(ctx, keys, sets, lo, hi, name, body)
        if mask is not None:
            value = _masked(value, mask, m, lead, batch, log_space, error)
        return torch.logsumexp(value, 0) if log_space else value.sum(0)

    return set_sum


def _set_shape(ctx, sets, name, error):
    """(N_max, batch) of the sets, which must be `[batch, N_max, ...]` tensors of one length."""
    seqs = [ctx.inputs.get(s) for s in sets]
    for s, seq in zip(sets, seqs):
        if not (torch.is_tensor(seq) and seq.dim() >= 2):
            raise error(f"the set {s} must be a tensor [batch, N_max, ...]")
    length, batch = seqs[0].shape[1], seqs[0].shape[0]
    for s, seq in zip(sets, seqs):
        if seq.shape[1] != length:
            raise error(f"the sets {sets[0]} and {s} have {length} and {seq.shape[1]} elements: a sum over "
                        f"{name} reads the same elements of each")
    return length, batch


def _elements(n, lo, length, batch, name, iname, error):
    """(the last element summed, the [M, batch] mask of per-example counts or None) for an upper bound `n`."""
    if not torch.is_tensor(n):
        if not lo - 1 <= n <= length:
            raise error(f"this sum runs over {name} = {lo}..{n}, but the sets have {length} elements")
        return n, None
    if n.shape[0] != batch:
        raise error(f"{iname} has {n.shape[0]} counts for a batch of {batch}")
    checkable = n.device.type != "meta" and not torch.compiler.is_compiling()  # data-dependent checks
    if checkable and n.is_floating_point() and bool((n != n.round()).any()):
        raise error(f"{iname} must hold whole numbers of elements")
    if checkable and bool(((n < lo - 1) | (n > length)).any()):
        raise error(f"{iname} must count {lo - 1}..{length} elements per example (the sets have "
                    f"{length}); got {n.min().item()}..{n.max().item()}")
    at = torch.arange(lo, length + 1, device=n.device)
    return length, at[:, None] <= n[None, :]


def _over_elements(ctx, keys, sets, lo, hi, name, body):
    """The body with each set bound as its elements lo..hi along a new leading dimension `[M, batch, ...]`
    (inside an enumerated sum, `[M, C, batch, ...]`), and the number of leading dimensions after the sum."""
    outer, m = ctx.outer, hi - lo + 1
    saved = [ctx.trace.get(k) for k in keys]
    ctx.lead += 1
    ctx.outer = (m,) + outer
    try:
        for key, s in zip(keys, sets):
            views = ctx.inputs[s][:, lo - 1:hi].movedim(1, 0)  # [M, batch, ...]
            if outer:  # inside an enumerated sum: the elements meet its values [M, C, batch, ...]
                views = views.reshape(m, *(1,) * len(outer), *views.shape[1:]).expand(m, *outer, *views.shape[1:])
            ctx.put(key, views)
        value = ctx.bind(name, VECTOR, body)
    finally:
        lead = ctx.lead = ctx.lead - 1
        ctx.outer = outer
        for key, old in zip(keys, saved):
            ctx.drop(key, old)
    return value, lead


def _masked(value, mask, m, lead, batch, log_space, error):
    """The elements past each example's count replaced by what adds nothing (0, or -inf in log space)."""
    if value.dim() < lead + 1:
        raise error(f"the body of this sum has shape {list(value.shape)}: a value per element and example, "
                    f"[{m}, ..., batch, ...], was expected")
    shape = (m,) + (1,) * (lead - 1) + (batch,) + (1,) * (value.dim() - lead - 1)
    nothing = -math.inf if log_space else 0.0
    return torch.where(mask.reshape(shape), value, torch.full((), nothing, dtype=value.dtype, device=value.device))


builds(SetSum)(lambda node, b: build_set_sum(node, b, False))
builds(SetSum, log=True)(lambda node, b: build_set_sum(node, b, True))


__all__ = ["SetSumStep", "build_set_sum"]
