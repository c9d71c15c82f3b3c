"""Sums over a set of inputs: `r = \\sum_{i=1}^{N} f(x_i, v_i)` (GQN's representation of its context views).

A bounded sum whose index is used only as the one index of input sequences (`x_i`, `v_i`: no shift, no slice, no
bare `i`), with no expectation, sum, divergence, entropy or gradient in its body, is a sum over the elements of a
set: evaluated in one vectorised pass (formula.compiler.set_sums) instead of step by step. The inputs are
`[batch, N_max, ...]`, padded at the end; the upper bound says how many elements each example has: a number, an
input `N=` that is an integer or a `[batch]` tensor of counts (a mask `i <= N[b]`), or, when nobody passes it, the
length of the set (every element). Any other bounded sum is checked as before (`checker.visit_Sum`). Torch-free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import checker as _checker
from . import resolved as R

_NOT_IN_A_SET_SUM = (N.Expect, N.Sum, N.Prod, N.Divergence, N.Entropy, N.Grad, N.Partial, N.Family, N.Draw,
                     N.Where, N.Optimize, N.Relation)


@dataclass(frozen=True, eq=False)
class SetSum(R.Checked_):
    """A sum over the elements `lower..upper` of the set inputs `sets` (their ASCII names, each `[batch, N_max,
    ...]`); inside `body` each element is a `DrawnRef` of `x_i`, bound to all elements at once along a new leading
    dimension. `upper` is the checked bound (a number or a bare name); `items` are the element variables."""

    index: str
    lower: int
    upper: N.Expr
    sets: Tuple[str, ...]
    items: Tuple[N.Var, ...]
    body: object


def set_items(s: N.Sum, checker, scope) -> Optional[Tuple[N.Var, ...]]:
    """The element variables (`x_i`, `v_i`) when `s` is a sum over a set of inputs, else None."""
    if s.lower is None or s.upper is None or s.within is not None or s.where is not None:
        return None
    if not (isinstance(s.lower, N.Num) and s.lower.value == int(s.lower.value) and s.lower.value >= 1):
        return None
    upper = s.upper
    if isinstance(upper, N.Var):
        if upper.index or upper.name in scope.indices:
            return None
    elif not (isinstance(upper, N.Num) and upper.value == int(upper.value)):
        return None
    name = s.index.name
    found = []
    if not _walk(s.body, name, found):
        return None
    if not found:
        return None
    for v in found:
        if not _input_like(v, checker, scope):
            return None
    return tuple(dict.fromkeys(found))


def _walk(node: N.Node, name: str, found: list) -> bool:
    """Collect the variables indexed by `name` into `found`; False where `name` is used any other way or the body
    holds something that is not evaluated element by element."""
    if isinstance(node, _NOT_IN_A_SET_SUM):
        return False
    if isinstance(node, N.Var):
        if node.name == name and not node.index:
            return False  # a bare i: its value as a number, step by step
        uses = [item for item in node.index if isinstance(item, N.Node) and any(
            isinstance(w, N.Var) and w.name == name for w in item.walk())]
        if uses:
            if len(node.index) != 1 or node.index[0] != N.Var(name):
                return False
            found.append(node)
        return True
    return all(_walk(c, name, found) for c in node.children())


def _input_like(v: N.Var, checker, scope) -> bool:
    """Whether `x_i` can only be an element of an input: not drawn, sampled, defined, a sampling set, a
    declared function or schedule."""
    from .checker import _latent_key

    base = var_text(v.base)
    if v in scope.drawn or v.name in scope.sets or _latent_key(v) in checker.latent_bases:
        return False
    if checker.defs.of_variable(v) is not None or checker.defs.of_variable(v.base) is not None:
        return False
    return not any(d.name in (base, v.name) for d in checker.decls)


def labels_as_index(s: N.Sum) -> N.Sum:
    """GQN's `\\sum_{i=1}^{M} f(\\mathbf{x}^i, \\mathbf{v}^i)`: inside a sum over i, a superscript label that is
    the index (`x^i`) is the index, `x_i` (elsewhere `x^i` stays a label, part of the name)."""
    name = s.index.name
    labelled = {v: None for v in s.body.walk() if isinstance(v, N.Var) and v.label == name and not v.index}
    body = s.body
    for v in labelled:
        body = N.substitute(body, v, N.Var(v.name, (N.Var(name),), v.mark, v.primes, span=v.span))
    return dataclasses.replace(s, body=body) if labelled else s


_before = _checker._CHECKS.get(N.Sum)  # a check of Sum registered earlier keeps working for other sums


@_checker.register_check(N.Sum)
def check_sum(s: N.Sum, checker, scope):
    """A sum over a set of inputs becomes a `SetSum`; any other sum is checked as before."""
    written = s
    s = labels_as_index(s)
    items = set_items(s, checker, scope)
    if items is None:
        s = written
        if _before is not None:
            return _before(s, checker, scope)
        return checker.visit_Sum(s, scope)
    sets = tuple(dict.fromkeys(var_text(v.base) for v in items))
    for v in items:
        checker.add_input(var_text(v.base), v, data=True)
        checker.sequences.add(var_text(v.base))
    upper = checker.bound(s.upper, scope, optional=isinstance(s.upper, N.Var))
    inner = scope.vectorising(s.index.name).drawing(items)
    body = checker.visit(s.body, inner)
    return SetSum(s, s.index.name, int(s.lower.value), upper, sets, items, body)


__all__ = ["SetSum", "set_items", "check_sum"]
