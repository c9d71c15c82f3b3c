"""`\\nabla_{x} f`: the gradient of a checked expression with respect to an input or a drawn variable.

Checked here (torch-free) into a `Gradient` node; `formula.compiler.nabla` evaluates it through autograd with
`create_graph=True`, so a penalty on it (`\\|\\nabla_{\\hat x} D(\\hat x)\\|_2`) trains the networks inside `f`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import resolved as R
from .checker import register_check
from .resolver import free_vars


@dataclass(frozen=True, eq=False)
class Gradient(R.Checked_):
    """`\\nabla_{wrt} arg`: `wrt` is the checked reference (`InputRef` or `DrawnRef`) of the variable."""

    wrt: object
    arg: object


@register_check(N.Grad)
def check_gradient(node: N.Grad, checker, scope) -> Gradient:
    """One variable, used in the argument, that is an input or drawn here (never a parameter: training takes
    those gradients)."""
    if len(node.wrt) != 1:
        raise checker.error("a gradient with respect to several variables is not evaluated yet: write one "
                            "\\nabla per variable", node)
    (wrt,) = node.wrt
    if not isinstance(wrt, N.Var):
        raise checker.error("a gradient is taken with respect to a variable", wrt)
    if wrt not in free_vars(node.arg):
        raise checker.error(f"{var_text(wrt)} does not appear in what is differentiated; gradients with respect to "
                            "parameters are what training computes, not part of a formula", wrt)
    ref = checker.ref(wrt, scope)
    if not isinstance(ref, (R.InputRef, R.DrawnRef)):
        raise checker.error(f"a gradient with respect to {var_text(wrt)} is not evaluated yet: only inputs and "
                            "variables drawn by an enclosing expectation", wrt)
    return Gradient(node, ref, checker.visit(node.arg, scope))


__all__ = ["Gradient", "check_gradient"]
