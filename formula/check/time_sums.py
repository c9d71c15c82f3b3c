"""`\\sum_t f` without bounds over the steps of a sequence: read as `\\sum_{t=1}^{T} f` (docs/language.md, "Sums
without bounds").

A sum without bounds enumerates a discrete variable when a distribution over its index appears in the body
(`\\sum_y q(y|x) f(y)`). When none does and the body holds a distribution over a step of a sequence indexed by
the sum's index (`\\sum_t \\log p(x_t | z, x_{<t})`, Bowman's decoder; `\\sum_t \\log p(x_t|z_t)`), the sum runs over
the steps, t = 1..T, with `T` the sequence's length unless given (a `[batch]` tensor of lengths for a
teacher-forced decoder). Every other sum is checked as before.
"""

from __future__ import annotations

import dataclasses

from ..lang import nodes as N
from . import checker as _checker

T = N.Var("T")  # the last step: the length of the sequence unless supplied, as for `\sum_{t=1}^{T}`


def _uses(item, name: str) -> bool:
    """Whether an index item (`t`, `<t`, `t-1`, `1:t`) is written in terms of the sum's index."""
    return isinstance(item, N.Node) and any(isinstance(w, N.Var) and w.name == name and not w.index
                                            for w in item.walk())


def over_steps(s: N.Sum) -> bool:
    """A sum without bounds over a plain index that no distribution in the body is over, and that indexes the
    variable of a distribution in it (`x_t` in `p(x_t|...)`)."""
    idx = s.index
    if s.lower is not None or s.upper is not None or idx.index or idx.mark or idx.primes or idx.label:
        return False
    stepped = False
    for node in s.body.walk():
        d = node.dist if isinstance(node, N.LogDensity) else node
        if not isinstance(d, N.Dist):
            continue
        if any(v == idx for v in d.vars):
            return False  # a distribution over the index: the sum enumerates its values
        stepped = stepped or any(isinstance(v, N.Var) and any(_uses(i, idx.name) for i in v.index) for v in d.vars)
    return stepped


_before = _checker._CHECKS.get(N.Sum)  # a check of Sum registered earlier keeps working for other sums


@_checker.register_check(N.Sum)
def check_sum(s: N.Sum, checker, scope):
    """`\\sum_t` over the steps of a sequence as `\\sum_{t=1}^{T}`; any other sum as before."""
    if over_steps(s):
        s = dataclasses.replace(s, lower=N.Num(1.0), upper=dataclasses.replace(T, span=s.index.span))
    if _before is not None:
        return _before(s, checker, scope)
    return checker.visit_Sum(s, scope)


__all__ = ["over_steps", "check_sum"]
