"""Named sub-objectives (issue 12 item 7): `\\mathcal{L}(x, y) = ...` and `\\mathcal{U}(x) = ...` on their own lines
before the objective, used there as `\\mathcal{L}(x, y)` or `\\mathcal{L}(x_l, y_l)`: the use is the body with its
arguments put in place of the parameters, checked where it is used. A name that a declaration has (`q(z) = ...`,
an aggregate posterior) is never a sub-objective."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from ..lang.nodes import substitute


@dataclass(frozen=True)
class Named:
    """`name(params) = body`, written at `stmt`."""

    name: str
    params: Tuple[N.Var, ...]
    body: N.Expr
    stmt: N.Node


def read(resolver, stmt: N.Node) -> bool:
    """Register `stmt` if it defines a sub-objective (a call-shaped left side with an undeclared name, plain
    variables as its parameters, and a value that is not a product of distributions); False otherwise."""
    if not (isinstance(stmt, N.Relation) and stmt.ops in (("=",), (":=",)) and len(stmt.members) == 2):
        return False
    lhs, body = stmt.members
    if not (isinstance(lhs, N.Dist) and lhs.vars and not lhs.given and lhs.mark is None) \
            or isinstance(body, N.Prod) or _aggregate_shaped(body) or _declared(resolver, lhs):
        return False
    if not all(isinstance(v, N.Var) for v in lhs.vars) or len(set(lhs.vars)) != len(lhs.vars):
        raise resolver.error(f"a sub-objective's parameters are distinct variables: {var_text(lhs)}", lhs)
    table: Dict[Tuple[str, int], Named] = resolver.named
    key = (lhs.full_name, len(lhs.vars))
    if key in table:
        raise resolver.error(f"{var_text(lhs)} is defined twice (first: {var_text(table[key].stmt)})", stmt)
    table[key] = Named(lhs.full_name, tuple(lhs.vars), body, stmt)
    return True


def _aggregate_shaped(body: N.Expr) -> bool:
    """`E_{p_{data}(x)}[q(z|x)]`: a distribution averaged over another (a definition of an aggregate posterior)."""
    return isinstance(body, N.Expect) and isinstance(body.body, N.Dist)


def _declared(resolver, lhs: N.Dist) -> bool:
    return bool(resolver.candidates(lhs)) or resolver.function_for(lhs.full_name, len(lhs.vars)) is not None


def expand(checker, use: N.Dist, scope) -> Optional[object]:
    """The checked body of the sub-objective `use` names, its parameters replaced by the use's arguments; None
    when `use` is not a sub-objective."""
    named = checker.named.get((use.full_name, len(use.vars))) if not use.given else None
    if named is None:
        others = [n for (name, _), n in checker.named.items() if name == use.full_name]
        if others and not _declared(checker, use):
            written = ", ".join(var_text(n.stmt.members[0]) for n in others)
            raise checker.error(f"{var_text(use)} does not match the sub-objective {written}: give it "
                                f"{' or '.join(str(len(n.params)) for n in others)} argument(s), as defined", use)
        return None
    if named.name in checker.expanding:
        chain = " -> ".join(checker.expanding + [named.name])
        raise checker.error(f"the sub-objectives are circular: {chain}", use)
    # simultaneous substitution: L(y, x) of L(x, y) swaps them, through placeholders no formula can write
    holes = [N.Var(f"\x00{i}") for i in range(len(named.params))]
    body = named.body
    for param, hole in zip(named.params, holes):
        body = substitute(body, param, hole)
    for hole, arg in zip(holes, use.vars):
        body = substitute(body, hole, arg)
    checker.expanding.append(named.name)
    try:
        return checker.visit(body, scope)
    finally:
        checker.expanding.pop()


__all__ = ["Named", "read", "expand"]
