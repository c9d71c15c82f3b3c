"""`\\log |\\det \\partial f(z) / \\partial z|` evaluated: the declared transform's own log-determinant.

An `fm.Transform` gives it (zuko's `call_and_ladj`, a torch transform's `log_abs_det_jacobian`, an autograd
Jacobian for a small plain network); a plain `fm.Function` of a small variable gets the autograd Jacobian. Memoised
per call like a function call, on the trace key of its argument.
"""

from __future__ import annotations

import torch

from ..check.jacobian import LogAbsDetJacobian
from ..errors import FormulaError, FormulaInputError
from ..families.transform import Transform, autograd_log_abs_det
from ..text.printing import to_ascii as var_text
from . import plan as P
from .memo import memoised
from .refs import span_of
from .registry import builds


@builds(LogAbsDetJacobian)
def build_log_abs_det_jacobian(node: LogAbsDetJacobian, b):
    i = node.decl
    name = str(b.declaration(i))
    b.note(P.Note(f"log |det ∂{name}/∂{var_text(node.arg.src)}|: the declared transform's log-determinant "
                  "(by autograd for a plain function)"))
    text, src = b.text, node.src

    def ladj(ctx, values):
        (z,) = values
        decl = ctx.decls[i]
        if not torch.is_tensor(z) or not z.is_floating_point():
            raise FormulaInputError(f"the Jacobian of {name} needs a floating-point tensor argument, got "
                                    f"{type(z).__name__}", text, span_of(src))
        try:
            if isinstance(decl, Transform):
                return decl.log_abs_det_jacobian(z, ctx.lead)
            return autograd_log_abs_det(decl, z, ctx.lead)
        except FormulaError:
            raise
        except (RuntimeError, ValueError) as error:
            raise FormulaInputError(f"the log-determinant of {name} at {var_text(node.arg.src)} of shape "
                                    f"{list(z.shape)} failed: {str(error).splitlines()[0]}", text,
                                    span_of(src)) from None

    return memoised(("log|det J|", i), [node.arg], b, ladj)
