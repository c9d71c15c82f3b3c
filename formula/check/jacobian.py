"""`\\log \\left|\\det \\frac{\\partial f(z)}{\\partial z}\\right|`: the log-determinant of a declared function's Jacobian.

The parser reads it as `Apply(log, Apply(abs, Apply(det, Partial(f(z), z))))`; this check turns that chain into
one `LogAbsDetJacobian` node (torch-free) when `f` is a declared function of one argument and the derivative is
with respect to that argument. `formula.compiler.jacobian` evaluates it with the transform's own
log-determinant (`fm.Transform`), falling back to autograd for a plain `fm.Function` of a small variable.
Any other `Apply` is checked as before (the check registered before this one, else the built-in rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import checker as _checker
from . import resolved as R


@dataclass(frozen=True, eq=False)
class LogAbsDetJacobian(R.Checked_):
    """`log |det ∂f(z)/∂z|`: `decl` is the declared function f, `arg` the checked reference of z."""

    decl: int
    arg: object


def _unwrap(node: N.Node, *names: str) -> Optional[N.Node]:
    """The argument under a chain of one-argument applications `names[0](names[1](...(arg)))`, else None."""
    for name in names:
        if not (isinstance(node, N.Apply) and node.fn == name and len(node.args) == 1):
            return None
        node = node.args[0]
    return node


def _jacobian(node: N.Apply, checker, scope) -> LogAbsDetJacobian:
    partial = _unwrap(node, "log", "abs", "det")
    f = partial.num
    hint = "write \\log \\left|\\det \\frac{\\partial f(z)}{\\partial z}\\right| for a declared function f(z)"
    if not isinstance(f, N.Dist) or f.given or len(f.vars) != 1 or not isinstance(f.vars[0], N.Var):
        raise checker.error(f"the Jacobian is of a declared function of one variable: {hint}", partial)
    fn = checker.function_for(f.full_name, 1) or (checker.function_for(f.name, 1) if f.sub else None)
    if fn is None:
        raise checker.error(f"{var_text(f)} is not a declared function of one argument: declare it, e.g. "
                            f"fm.Transform(\"{var_text(f)}\", transform)", f)
    if partial.wrt != f.vars[0]:
        raise checker.error(f"the Jacobian of {var_text(f)} is taken with respect to its argument "
                            f"{var_text(f.vars[0])}, not {var_text(partial.wrt)}", partial.wrt)
    ref = checker.ref(partial.wrt, scope)
    if not isinstance(ref, (R.InputRef, R.DrawnRef)):
        raise checker.error(f"a Jacobian with respect to {var_text(partial.wrt)} is evaluated for inputs and for "
                            "variables drawn by an enclosing expectation only", partial.wrt)
    return LogAbsDetJacobian(node, fn.index, ref)


_before = _checker._CHECKS.get(N.Apply)  # a check of Apply registered earlier keeps working for other calls


@_checker.register_check(N.Apply)
def check_apply(node: N.Apply, checker, scope):
    """`log |det ∂f(z)/∂z|` becomes a `LogAbsDetJacobian`; `log det ∂f/∂z` (no absolute value) is refused with
    the fix; any other application is checked as before."""
    if isinstance(_unwrap(node, "log", "abs", "det"), N.Partial):
        return _jacobian(node, checker, scope)
    if isinstance(_unwrap(node, "log", "det"), N.Partial):
        raise checker.error("the log of a determinant that may be negative: write its absolute value, "
                            "\\log \\left|\\det \\frac{\\partial f(z)}{\\partial z}\\right|", node)
    if _before is not None:
        return _before(node, checker, scope)
    return checker.visit_Apply(node, scope)


__all__ = ["LogAbsDetJacobian", "check_apply"]
