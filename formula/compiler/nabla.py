"""`\\nabla_{x} f(x)` through autograd with `create_graph=True`: the gradient is itself differentiable, so a penalty
on it trains the networks of `f` (WGAN-GP's critic) and a score `\\nabla_x \\log p(x)` is the same machinery.

With respect to an input, the input is made a leaf that requires grad for the argument's evaluation (in a fresh
memo, so a value of `f` computed earlier in the call from the plain input is not reused) and restored after. With
respect to a draw, a reparameterised draw is differentiated where it is (the gradient keeps its dependence on the
encoder); a draw without gradient is replaced in the trace by a leaf for the evaluation and restored after.
"""

from __future__ import annotations

import torch

from ..check import resolved as R
from ..check.nabla import Gradient
from ..errors import FormulaInputError
from ..text.printing import to_ascii as var_text
from . import plan as P
from .refs import key_fn, span_of
from .registry import builds


@builds(Gradient)
def build_gradient(node: Gradient, b):
    arg = b.build(node.arg)
    wrt_text, what = var_text(node.wrt.src), var_text(node.src.arg)
    b.note(P.Note(f"gradient of {what} with respect to {wrt_text} (autograd, create_graph: differentiable again)"))
    text, src = b.text, node.src

    def differentiate(ctx, x):
        value = arg(ctx)
        if not torch.is_tensor(value) or not value.requires_grad:
            return torch.zeros_like(x)  # the argument does not depend on x through anything differentiable
        if value.dim() > ctx.lead:
            raise FormulaInputError(f"\\nabla_{{{wrt_text}}} of a value of shape {list(value.shape)}: the gradient "
                                    "is taken of one number per example (reduce it first, e.g. with a sum or a "
                                    "norm)", text, span_of(src))
        (g,) = torch.autograd.grad(value.sum(), x, create_graph=True, allow_unused=True)
        return torch.zeros_like(x) if g is None else g

    if isinstance(node.wrt, R.InputRef):
        return _with_respect_to_input(node.wrt.name, differentiate, text, src)
    return _with_respect_to_draw(key_fn(node.wrt.var, b), differentiate)


def _with_respect_to_input(name, differentiate, text, src):
    def grad_input(ctx):
        x = ctx.inputs.get(name)
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise FormulaInputError(f"a gradient with respect to {name} needs a floating-point tensor {name}=...",
                                    text, span_of(src))
        leaf = x if x.requires_grad else x.detach().requires_grad_(True)
        inputs, memo = ctx.inputs, ctx.memo
        ctx.inputs, ctx.memo = {**inputs, name: leaf}, {}
        try:
            return differentiate(ctx, leaf)
        finally:
            ctx.inputs, ctx.memo = inputs, memo

    return grad_input


def _with_respect_to_draw(key_of, differentiate):
    def grad_draw(ctx):
        key = key_of(ctx)
        z = ctx.trace[key]
        if z.requires_grad:
            return differentiate(ctx, z)
        ctx.put(key, z.detach().requires_grad_(True))  # a new version: memoised uses of the old value expire
        try:
            return differentiate(ctx, ctx.trace[key])
        finally:
            ctx.put(key, z)

    return grad_draw


__all__ = ["build_gradient"]
