"""`\\log |\\det \\partial f(z) / \\partial z|` evaluated: the declared transform's own log-determinant.

An `fm.Transform` gives it (zuko's `call_and_ladj`, a torch transform's `log_abs_det_jacobian`, an autograd
Jacobian for a small plain network); a plain `fm.Function` of a small variable gets the autograd Jacobian. Memoised
per call like a function call, on the trace key of its argument.
"""

from __future__ import annotations

import torch

from ..check import resolved as R
from ..check.jacobian import LogAbsDetJacobian
from ..check.uses import children
from ..errors import FormulaError, FormulaInputError
from ..families.transform import Transform, autograd_log_abs_det
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import Fn
from .memo import memoised
from .refs import span_of
from .registry import builds


@builds(LogAbsDetJacobian)
def build_log_abs_det_jacobian(node: LogAbsDetJacobian, b):
    i = node.decl
    b.note(P.Note(f"log |det ∂{b.declaration(i)}/∂{var_text(node.arg.src)}|: the declared transform's "
                  "log-determinant (by autograd for a plain function)"))
    both = memoised(_BOTH + (i,), [node.arg], b, _pair_maker(node, b))
    return lambda ctx: both(ctx)[1]


_BOTH = ("f(z) and log|det J|",)  # the memo tag shared by a transform's value and its log-determinant


def _pair_maker(node: LogAbsDetJacobian, b):
    """`(f(z), log|det ∂f/∂z|)` from one `call_and_ladj` of an `fm.Transform`; `(None, autograd's)` for a plain
    function, whose value its call computes."""
    i, name, text, src = node.decl, str(b.declaration(node.decl)), b.text, node.src

    def pair(ctx, values):
        (z,) = values
        decl = ctx.decls[i]
        if not torch.is_tensor(z) or not z.is_floating_point():
            raise FormulaInputError(f"the Jacobian of {name} needs a floating-point tensor argument, got "
                                    f"{type(z).__name__}", text, span_of(src))
        try:
            if isinstance(decl, Transform):
                return decl.call_and_ladj(z, ctx.lead)
            return None, autograd_log_abs_det(decl, z, ctx.lead)
        except FormulaError:
            raise
        except (RuntimeError, ValueError) as error:
            raise FormulaInputError(f"the log-determinant of {name} at {var_text(node.arg.src)} of shape "
                                    f"{list(z.shape)} failed: {str(error).splitlines()[0]}", text,
                                    span_of(src)) from None

    return pair


def with_log_det(node: R.Call, b, value: Fn, shaped) -> Fn:
    """`f(z)` where the formula also takes `\\log|\\det \\partial f(z)/\\partial z|`: an `fm.Transform`'s value
    comes from the same `call_and_ladj` as the log-determinant (memoised together), so a flow runs once per z, not
    twice. `value` is the plain call, kept for other declarations; `shaped(ctx, out)` is the call's output rule."""
    i = node.decl
    if len(node.args) != 1 or not _log_det_taken(b.checked.terms, i):
        return value
    both = memoised(_BOTH + (i,), [node.args[0]], b, _pair_maker(LogAbsDetJacobian(node.src, i, node.args[0]), b))

    def call(ctx):
        if isinstance(ctx.decls[i], Transform):
            return shaped(ctx, both(ctx)[0])
        return value(ctx)

    return call


def _log_det_taken(terms, i: int) -> bool:
    """Whether any term takes the log-determinant of declaration i."""
    stack, seen = list(terms), set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, LogAbsDetJacobian) and node.decl == i:
            return True
        stack.extend(children(node))
    return False
