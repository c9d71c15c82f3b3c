"""Builders of definitions (formula.check.definitions): a defined variable bound by an expectation, a use of one
elsewhere (its definition evaluated once per trace of what it depends on), and the permuted-dimensions draw."""

from __future__ import annotations

import torch

from ..check import definitions as defs
from ..check import resolved as R
from ..check.uses import children
from ..lang import nodes as N
from ..errors import FormulaInputError
from ..text.printing import to_ascii as var_text
from . import plan as P
from .memo import FIXED, KEYERS, keyer
from .refs import key_fn, span_of
from .registry import builds


@builds(defs.Let)
def build_let(node: defs.Let, b):
    """Evaluate the definition, write it into the trace as the variable's draw, then the body."""
    if not isinstance(node.value, defs.PermuteDims):  # a permuted draw says what it is itself
        b.note(P.Note(f"bind {var_text(node.var)} = {var_text(node.src)} (a definition)"))
    value, body, key_of = b.build(node.value), b.build(node.body), key_fn(node.var, b)

    def let(ctx):
        ctx.put(key_of(ctx), value(ctx))
        return body(ctx)

    return let


@builds(defs.DefinedRef)
def build_defined(node: defs.DefinedRef, b):
    """The definition's value, memoised per call on the versions of the draws it reads."""
    value = b.build(node.value)
    keyers = [keyer(ref, b) for ref in _references(node.value)]
    if any(k is None for k in keyers):
        return value
    varying = [k for k in keyers if k is not FIXED]
    tag = ("defined", var_text(node.var))  # one value per definition, whichever use asks first (r in q and p)

    def defined(ctx):
        key = tag + (ctx.outer,) + tuple(k(ctx) for k in varying)
        out = ctx.memo.get(key)
        if out is None:
            out = ctx.memo[key] = value(ctx)
        return out

    return defined


def _references(node) -> list:
    """The references (draws, inputs, indices, steps) a checked expression reads from outside it: a reference that
    uses the index of a sum inside the expression (`x_i` in `\\sum_{i=1}^{N} f(x_i, v_i)`) is bound by that sum,
    not by the call, and does not key the memo."""
    found, stack = [], [(node, frozenset())]
    while stack:
        n, bound = stack.pop()
        if isinstance(n, (R.DrawnRef, R.InputRef, R.IndexRef, R.StepRef, R.SliceRef)) or type(n) in KEYERS:
            if not (bound and _uses_any(n, bound)):  # KEYERS: references registered elsewhere (a state at a step)
                found.append(n)
            continue
        index = getattr(n, "index", None)
        if isinstance(index, str) and not isinstance(n, N.Node):  # a checked sum binds its index in its body
            bound = bound | {index}
        stack.extend((c, bound) for c in children(n))
    return found


def _uses_any(ref, names) -> bool:
    """Whether a reference's variable (or an index name) mentions one of `names`."""
    if isinstance(ref, R.IndexRef):
        return ref.name in names
    var = getattr(ref, "var", None) or ref.src
    return any(isinstance(w, N.Var) and w.name in names for item in getattr(var, "index", ()) if isinstance(
        item, N.Node) for w in item.walk())


@builds(defs.PermuteDims)
def build_permute(node: defs.PermuteDims, b):
    """Each dimension of the batch of draws permuted independently across the batch (FactorVAE's \\bar q(z))."""
    arg, text, src = b.build(node.arg), b.text, node.src
    b.note(P.Note(f"draw from {var_text(src)}: the batch of draws of {var_text(node.arg.src)}, each dimension "
                  "permuted independently across the batch"))

    def permute(ctx):
        z = arg(ctx)
        if ctx.lead != 1 or z.dim() < 2 or z.shape[0] < 2:
            raise FormulaInputError(f"{var_text(src)} permutes a batch of at least 2 draws, one per example, over "
                                    f"[batch, dims]; got draws of shape {list(z.shape)}", text, span_of(src))
        flat = z.reshape(z.shape[0], -1)
        order = torch.rand(flat.shape, device=z.device, dtype=torch.float32).argsort(0)
        return flat.gather(0, order).reshape(z.shape)

    return permute


__all__ = ["build_let", "build_defined", "build_permute"]
