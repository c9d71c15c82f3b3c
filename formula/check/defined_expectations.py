"""The checks of expectations over defined variables and permuted distributions (formula.check.definitions).

`E_{\\hat x}[f]` becomes nested expectations: the `Draw` statements' variables (outermost, from their samplers), then one
product of the declared distributions over the other variables it depends on, then `Lets` binding the defined
variables in dependency order around `f`. Every other expectation goes to the checker's own rule unchanged.
"""

from __future__ import annotations

from ..lang import nodes as N
from . import definitions as defs
from .checker import _Checker, register_check


@register_check(N.Expect)
def check_expectation(e: N.Expect, checker, scope):
    """An expectation the definitions plan is rewritten into nested ones; any other is the checker's."""
    plan = defs.plan_of(checker, e, scope.drawn)
    if plan is None:
        return _Checker.visit_Expect(checker, e, scope)
    body: N.Expr = defs.Lets(plan.lets, e.body, span=e.span)
    if plan.uses:
        body = N.Expect(N.Sampler(tuple(plan.uses)), body, span=e.span)
    for v, sampler in reversed(plan.statements):
        body = N.Expect(N.Sampler((sampler,), (v,)), body, span=e.span)
    return checker.visit(body, scope)


@register_check(defs.Lets)
def check_lets(node: defs.Lets, checker, scope):
    """Each defined variable checked where the ones before it are bound; the body sees them all."""
    bound = []
    for var, value in node.lets:
        bound.append((var, value, checker.visit(value, scope)))
        scope = scope.drawing((var,))
    body = checker.visit(node.body, scope)
    for var, value, checked in reversed(bound):
        src = value.dist if isinstance(value, defs.Permute) else value  # what the plan prints as its value
        body = defs.Let(src, var, checked, body)
    return body


@register_check(defs.Permute)
def check_permute(node: defs.Permute, checker, scope):
    return defs.PermuteDims(node.dist if node.dist is not None else node, checker.ref(node.arg, scope))


__all__ = ["check_expectation", "check_lets", "check_permute"]
