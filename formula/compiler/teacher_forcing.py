"""The teacher-forced sum: `\\sum_{t=1}^{T} \\log p(x_t | z, x_{<t})` of a `fm.SequenceDecoder` in ONE net call.

The sum's body is one log-density of a teacher-forced declaration (its capabilities a `SequenceCapabilities`),
at step t of a sequence input x, conditioned on the prefix `x_{<t}` of the same x and on values that do not
depend on t. It is evaluated as the declaration's `sequence_log_prob(x)` (the net on x shifted right behind the
start token, logits `[batch, T, V]`), its steps lo..hi summed, masked past each example's length (`T=` a `[batch]`
tensor of lengths) and at padding tokens (`pad=`); along a sampling set's draws (`z_k`) the tokens are expanded
to the draws. A teacher-forced declaration anywhere else (outside a sum over its step, or beside other terms in
the sum's body) is a check error at the use.

Registered over the step-by-step sum and the density builders (formula.compiler.sums, .densities): every other
sum and density is built as before.
"""

from __future__ import annotations

import torch

from ..check import resolved as R
from ..check.sequences import PrefixRef
from ..errors import FormulaInputError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import densities, sums  # noqa: F401  (their builders are registered first, and wrapped here)
from . import plan as P
from .context import VECTOR
from .memo import lifted
from .refs import index_fn, span_of
from .registry import _BUILDERS, _LOG_BUILDERS, builds

_LOOP_SUM = _BUILDERS[R.LoopSum]
_DENSITY, _LOG_DENSITY, _LOG_OF_DENSITY = _BUILDERS[R.Density], _BUILDERS[R.LogDensity], _LOG_BUILDERS[R.Density]


def _teacher_forced(caps) -> bool:
    from ..families.sequence_decoder import SequenceCapabilities

    return isinstance(caps, SequenceCapabilities)


def _forced_factor(density: R.Density, b):
    return next((f for f in density.factors if _teacher_forced(b.capabilities(f.decl))), None)


def _refuse(node, density: R.Density, b):
    """A teacher-forced density built on its own (not as the whole body of a sum over its step)."""
    f = _forced_factor(density, b)
    if f is None:
        return
    sig, step, declared = b.signature(f.factor), b.capabilities(f.decl).step, b.declaration(f.decl)
    raise b.error(f"{sig} is teacher-forced (fm.SequenceDecoder): it is evaluated for every step at once, as a "
                  f"whole sum over its step on its own, \\sum_{{{step}=1}}^{{T}} \\log {declared}; write other "
                  "per-step "
                  "terms in a sum of their own (or declare it as a per-step family, fm.Categorical, to score one "
                  "prefix at a time)", node)


@builds(R.Density)
def build_density(node: R.Density, b):
    _refuse(node, node, b)
    return _DENSITY(node, b)


@builds(R.LogDensity)
def build_log_density(node: R.LogDensity, b):
    _refuse(node, node.density, b)
    return _LOG_DENSITY(node, b)


@builds(R.Density, log=True)
def build_log_of_density(node: R.Density, b):
    _refuse(node, node, b)
    return _LOG_OF_DENSITY(node, b)


def _uses(node: N.Node, name: str) -> bool:
    return any(isinstance(n, N.Var) and n.name == name for n in node.walk())


def _parts(node: R.LoopSum, b):
    """(bound factor, the sequence's name, the other conditions) of a teacher-forced sum's body, or None when the
    body is not one teacher-forced log-density; a check error where it is one used other than at step t of x."""
    body = node.body
    if not (isinstance(body, R.LogDensity) and len(body.density.factors) == 1):
        return None
    bound = body.density.factors[0]
    caps = b.capabilities(bound.decl)
    if not _teacher_forced(caps):
        return None
    sig, t = b.signature(bound.factor), node.index
    value = bound.values[0]
    var = getattr(value, "var", None)
    if not (isinstance(value, R.StepRef) and var.index == (N.Var(t),)):
        raise b.error(f"{sig} is teacher-forced: its variable is step {t} of a sequence input, "
                      f"{var_text(N.Var(getattr(var, 'name', 'x'), (N.Var(t),)))}, in a sum over {t}", body)
    prefix = bound.given[caps.history]
    want = N.Var(var.name, (N.Before(N.Var(t)),), var.mark, var.primes)
    if not (isinstance(prefix, PrefixRef) and prefix.source == value.sequence and prefix.var.index == want.index):
        raise b.error(f"{sig} is teacher-forced: it conditions on the steps before, {var_text(want)}, of the same "
                      "sequence", getattr(prefix, "src", body))
    others = [g for i, g in enumerate(bound.given) if i != caps.history]
    for g in others:
        if _uses(g.src, t):
            raise b.error(f"{var_text(g.src)} depends on the step {t}, but a teacher-forced decoder scores every "
                          f"step in one call: its other conditions are the same at every step (pass per-step "
                          "features to the net as a whole sequence)", g.src)
    return bound, value.sequence, others


def _lengths_fn(node: R.LoopSum, b):
    """`ctx -> (hi, lengths or None)`: the last step, and the per-example lengths when the upper bound (`T`) is
    given as a `[batch]` tensor (then hi is the sequence's length and steps past each length are masked)."""
    upper = node.upper
    plain = sums.upper_bound(node, b)
    if not (isinstance(upper, N.Var) and not upper.index):
        return lambda ctx: (plain(ctx), None)
    name, iname = upper.name, var_text(upper)

    def bounds(ctx):
        value = ctx.inputs.get(iname)
        if name not in ctx.env and torch.is_tensor(value) and value.dim() == 1:
            return None, value
        return plain(ctx), None

    return bounds


def _mask_of(lengths, x, node, text):
    """`[batch, T]` True where step t <= the example's length; an input error naming the bound otherwise."""
    at = span_of(node.upper)
    name = var_text(node.upper)
    if lengths.shape != x.shape[-2:-1]:
        raise FormulaInputError(f"{name} holds the lengths of the sequences, one per example: shape "
                                f"[{x.shape[-2]}], got {list(lengths.shape)}", text, at)
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise FormulaInputError(f"{name} holds the lengths of the sequences: integers, got {lengths.dtype}",
                                text, at)
    if lengths.device.type != "meta" and bool(((lengths < 0) | (lengths > x.shape[-1])).any()):
        raise FormulaInputError(f"{name} holds lengths in 0..{x.shape[-1]} (the sequence's steps), got "
                                f"{lengths.min().item()}..{lengths.max().item()}", text, at)
    steps = torch.arange(1, x.shape[-1] + 1, device=x.device)
    return steps <= lengths.to(x.device)[:, None]


def _forced_sum(node: R.LoopSum, parts, b):
    bound, source, others = parts
    d = bound.decl
    sig = b.signature(bound.factor)
    text = b.text
    lower, last = index_fn(node.lower, b), _lengths_fn(node, b)
    given = [lifted(g, b.build(g), b) for g in others]
    drawn = [isinstance(g, (R.DrawnRef, R.StepRef)) for g in others]
    b.note(P.Note(f"sum over {node.index} = {var_text(node.lower)}..{var_text(node.upper)}, teacher-forced: one "
                  f"call of {sig}'s net on {source} shifted right behind the start token, every step's "
                  "log-density at once (steps past a sequence's length or at its padding contribute 0)"))

    def forced_sum(ctx):
        x = ctx.inputs.get(source)
        if not (torch.is_tensor(x) and x.dim() == 2):
            got = list(x.shape) if torch.is_tensor(x) else "nothing"
            raise FormulaInputError(f"{sig} scores the token sequence {source}: pass {source}=... as [batch, T] "
                                    f"integer tokens, got {got}", text, span_of(node.src))
        if ctx.lead != 1 and ctx.outer:
            raise FormulaInputError("a teacher-forced sum along a sampling set's draws inside an enumerated sum "
                                    "is not evaluated yet", text, span_of(node.src))
        lo, (hi, lengths) = lower(ctx), last(ctx)
        if lo == VECTOR or hi == VECTOR or lo < 1:
            raise FormulaInputError(f"this sum runs over {node.index} from {lo}: a teacher-forced sum starts at 1 "
                                    "or later", text, span_of(node.src))
        mask = _mask_of(lengths, x, node, text) if lengths is not None else None
        hi = x.shape[1] if hi is None else hi
        if hi > x.shape[1]:
            raise FormulaInputError(f"this sum runs to {node.index} = {hi}, but {source} has {x.shape[1]} steps",
                                    text, span_of(node.upper))
        x = x[:, :hi]
        decl = ctx.decls[d]
        if ctx.validate:
            decl.validate_value(decl.var_names[0], x)
        pad = decl.pad_mask(x)
        mask = pad if mask is None else mask[:, :hi] if pad is None else mask[:, :hi] & pad
        if ctx.outer:
            x = x.expand(*ctx.outer, *x.shape)
        values = [g(ctx) for g in given]
        if ctx.lead != 1:  # along a sampling set's draws (IWAE's z_k): the tokens expanded to the draws
            x = x.expand(*_set_dims(values, drawn, ctx.lead, x, node, text), x.shape[-1])
        logp = decl.sequence_log_prob(x, values, validate=ctx.validate)
        if mask is not None:
            logp = torch.where(mask, logp, torch.zeros((), dtype=logp.dtype, device=logp.device))
        return logp[..., lo - 1:].sum(-1)

    return forced_sum


def _set_dims(values, drawn, lead: int, x, node, text):
    """The leading dimensions `[K, batch]` of the draws of a sampling set among the conditions (`z_k`)."""
    for v, d in zip(values, drawn):
        if d and torch.is_tensor(v) and v.dim() >= lead and v.shape[lead - 1] == x.shape[0]:
            return v.shape[:lead]
    raise FormulaInputError("a teacher-forced sum along a sampling set's draws needs a condition drawn from the "
                            "set (p(x_t|z_k, x_{<t})); none of its conditions is", text, span_of(node.src))


@builds(R.LoopSum)
def build_loop_sum(node: R.LoopSum, b):
    """A teacher-forced sum in one call where the body is one; any other step-by-step sum as before."""
    parts = _parts(node, b)
    if parts is None:
        return _LOOP_SUM(node, b)
    return _forced_sum(node, parts, b)


__all__ = ["build_loop_sum"]
