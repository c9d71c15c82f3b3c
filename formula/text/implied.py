"""What declarations imply, as rewrites of the AST, so that `equivalent(a, b, distributions)` compares meanings.

Given the declared distributions (signatures such as `q(z|x)`, `p(x|z)`, `p(z)`) and the factorisation lines of
the texts (`p(x, z) = p(x|z) p(z)`), `expand` rewrites an objective into a form the canonical comparison of
`formula.text.symbolic` can match: bare names become their declared signatures (`KL(q || p)`), `KL(q || p)` is
`E_q[log q - log p]`, `H[q]` is `-E_q[log q]`, the log of a joint is the sum of its factors' logs (a factorisation
line, else the chain rule over the declared factors), the log of a product or quotient of densities is a sum of
logs, a sum with numeric bounds is its terms, and a single draw written as another name (`z_1 ~ q(z|x)`) is the
distribution's own variable. Expectations of terms that do not depend on the drawn variable then drop out in the
canonical form. Text layer only: no torch, declarations are read by their signature text.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..lang import nodes as n
from ..lang.nodes import substitute
from ..lang.parser import parse_signature
from .printing import GREEK

__all__ = ["Model", "expand", "model_of"]

_MAX_TERMS = 16  # a sum with numeric bounds is written out up to this many terms
_MAX_ROUNDS = 6


def _key(d: n.Dist) -> Tuple[str, Optional[str], Optional[str]]:
    """Which density a name means: a Greek subscript is a parameter subscript (`q_\\phi` is `q`)."""
    return (d.name, None if d.sub in GREEK else d.sub, d.mark)


class Model:
    """The declared signatures and the factorisation lines of the texts being compared."""

    def __init__(self, signatures: Sequence[n.Dist], factorisations: Sequence[Tuple[n.Dist, Tuple[n.Dist, ...]]]):
        self.signatures = list(signatures)
        self.factorisations = list(factorisations)

    def by_name(self, d: n.Dist) -> Optional[n.Dist]:
        """The one declared signature a bare name (`q`, `p_\\theta`) refers to, if there is exactly one."""
        found = [s for s in self.signatures if _key(s) == _key(d)]
        return found[0] if len(found) == 1 else None

    def declared(self, d: n.Dist) -> bool:
        return any(_key(s) == _key(d) and set(s.vars) == set(d.vars) and set(s.given) == set(d.given)
                   for s in self.signatures)

    def factors(self, d: n.Dist) -> Optional[List[n.Dist]]:
        """The factors of a joint `d` that the factorisation lines or the declarations imply, or None."""
        for lhs, rhs in self.factorisations:
            if _key(lhs) == _key(d) and set(lhs.vars) == set(d.vars) and set(lhs.given) == set(d.given):
                return list(rhs)
        if self.declared(d) or not d.vars:
            return None
        return self._chain(d, frozenset(d.vars), frozenset(d.given), 0)

    def _chain(self, d: n.Dist, todo: frozenset, given: frozenset, depth: int) -> Optional[List[n.Dist]]:
        """The chain rule: a declared factor over some of `todo` given only the rest and `given`, recursively."""
        if not todo:
            return []
        if depth > 8:
            return None
        for s in self.signatures:
            drawn = frozenset(s.vars)
            rest = todo - drawn
            if _key(s) != _key(d) or not drawn or not drawn <= todo or not frozenset(s.given) <= rest | given:
                continue
            tail = self._chain(d, rest, given, depth + 1)
            if tail is not None:
                return [s] + tail
        return None


def model_of(distributions: Iterable[object], statements: Sequence[n.Expr]) -> Model:
    """A `Model` from declarations (objects with a `signature`, signature strings or `Dist` nodes) and the
    factorisation lines among `statements` (`p(x, z) = p(x|z) p(z)`)."""
    signatures = []
    for item in distributions:
        if isinstance(item, n.Dist):
            signatures.append(item)
        else:
            text = item if isinstance(item, str) else getattr(item, "signature", None)
            if not isinstance(text, str):
                raise TypeError(f"a distribution is a signature such as 'q(z|x)' or a declaration, not "
                                f"{type(item).__name__}")
            signatures.append(parse_signature(text))
    lines = []
    for s in statements:
        if isinstance(s, n.Relation) and len(s.members) == 2 and s.ops == ("=",) and isinstance(s.members[0], n.Dist):
            rhs = s.members[1]
            parts = rhs.factors if isinstance(rhs, n.Mul) else (rhs,)
            if all(isinstance(p, n.Dist) and p.vars for p in parts):
                lines.append((s.members[0], tuple(parts)))
    return Model(signatures, lines)


# --- generic tree maps -------------------------------------------------------------------------------------


def _map(node, fn):
    """`node` with `fn` applied bottom-up to every sub-node (tuples of nodes included)."""
    if not isinstance(node, n.Node):
        return node
    changes = {}
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, n.Node):
            new = _map(value, fn)
        elif isinstance(value, tuple):
            new = tuple(_map(v, fn) for v in value)
        else:
            continue
        if new is not value and new != value:
            changes[f.name] = new
    node = replace(node, **changes) if changes else node
    return fn(node)


# --- the rewrites --------------------------------------------------------------------------------------------


def _log_of(node: n.Expr) -> n.Expr:
    """The log of a density expression: products and quotients become sums of logs."""
    if isinstance(node, (n.Dist, n.Family)):
        return n.LogDensity(node)
    if isinstance(node, n.Mul):
        return n.Add(tuple(_log_of(f) for f in node.factors))
    if isinstance(node, n.Div):
        return n.Add((_log_of(node.num), n.Neg(_log_of(node.den))))
    if isinstance(node, n.Num) and node.value == 1.0:
        return n.Num(0.0)
    return n.Apply("log", (node,))


class _Rewriter:
    """One bottom-up pass of the rewrites over a tree."""

    def __init__(self, model: Model):
        self.model = model

    def resolve(self, d: n.Expr) -> n.Expr:
        if isinstance(d, n.Dist) and not (d.vars or d.given):
            found = self.model.by_name(d)
            return found if found is not None else d
        return d

    def __call__(self, node: n.Node) -> n.Node:
        method = getattr(self, "_" + type(node).__name__, None)
        return method(node) if method is not None else node

    def _Sampler(self, node: n.Sampler) -> n.Sampler:
        return replace(node, dists=tuple(self.resolve(d) for d in node.dists))

    def over_same(self, d: n.Expr, other: n.Expr) -> n.Expr:
        """A bare name in a divergence whose other side is resolved: the declared one over the same variables
        (`KL(q(z|x) || p)` with p(x|z) and p(z) declared is p(z))."""
        if not (isinstance(d, n.Dist) and not (d.vars or d.given) and isinstance(other, n.Dist) and other.vars):
            return d
        found = [s for s in self.model.signatures if _key(s) == _key(d) and set(s.vars) == set(other.vars)]
        return found[0] if len(found) == 1 else d

    def _Divergence(self, node: n.Divergence) -> n.Expr:
        left, right = self.resolve(node.left), self.resolve(node.right)
        left, right = self.over_same(left, right), self.over_same(right, left)
        if node.kind == "KL" and all(isinstance(d, (n.Dist, n.Family)) and (d.vars or isinstance(d, n.Family))
                                     for d in (left, right)) and isinstance(left, n.Dist):
            return n.Expect(n.Sampler((left,)), n.Add((n.LogDensity(left), n.Neg(n.LogDensity(right)))))
        return replace(node, left=left, right=right)

    def _Entropy(self, node: n.Entropy) -> n.Expr:
        d = self.resolve(node.dist)
        if isinstance(d, n.Dist) and d.vars:
            return n.Neg(n.Expect(n.Sampler((d,)), n.LogDensity(d)))
        return replace(node, dist=d)

    def _LogDensity(self, node: n.LogDensity) -> n.Expr:
        d = self.resolve(node.dist)
        parts = self.model.factors(d) if isinstance(d, n.Dist) else None
        if parts:
            return n.Add(tuple(n.LogDensity(p) for p in parts)) if len(parts) > 1 else n.LogDensity(parts[0])
        return replace(node, dist=d)

    def _Apply(self, node: n.Apply) -> n.Expr:
        if node.fn == "log" and len(node.args) == 1 and isinstance(node.args[0], (n.Mul, n.Div, n.Num)):
            return _log_of(node.args[0])
        return node

    def _Div(self, node: n.Div) -> n.Expr:
        if isinstance(node.num, n.Num) and isinstance(node.den, n.Num) and node.den.value:
            return n.Num(node.num.value / node.den.value)
        return node

    def _Sum(self, node: n.Sum) -> n.Expr:
        lo, hi = node.lower, node.upper
        if not (isinstance(lo, n.Num) and isinstance(hi, n.Num) and node.where is None and node.within is None):
            return node
        count = int(hi.value) - int(lo.value) + 1
        if count < 1 or count > _MAX_TERMS:
            return node
        terms = tuple(substitute(node.body, node.index, n.Num(float(k))) for k in range(int(lo.value), int(hi.value) + 1))
        return terms[0] if count == 1 else n.Add(terms)

    def _Expect(self, node: n.Expect) -> n.Expr:
        """`E_{z_1 ~ q(z|x)}[f(z_1)]` is `E_{q(z|x)}[f(z)]`: one draw of one variable is that variable."""
        s = node.over
        if s is None or len(s.dists) != 1 or len(s.draws) != 1 or not isinstance(s.dists[0], n.Dist):
            return replace(node, joined=False)
        d, drawn = s.dists[0], s.draws[0]
        if len(d.vars) != 1 or not isinstance(d.vars[0], n.Var) or any(isinstance(i, n.Range) for i in drawn.index):
            return replace(node, joined=False)
        body = substitute(node.body, drawn, d.vars[0])
        return n.Expect(n.Sampler((d,)), body)


def expand(node: n.Expr, model: Model) -> n.Expr:
    """`node` rewritten with what `model` implies, to a fixpoint (a few rounds)."""
    rewrite = _Rewriter(model)
    for _ in range(_MAX_ROUNDS):
        new = _map(node, rewrite)
        if new == node:
            return new
        node = new
    return node
