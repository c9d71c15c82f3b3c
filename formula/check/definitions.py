"""Definitions: statements before the objective (and `where` items) that name a value or a sample-only distribution.

* `\\hat x = \\epsilon x + (1 - \\epsilon) \\tilde x`, `\\tilde x = G(z)`: a deterministic variable. A use of it
  evaluates its definition (once per trace of the values it depends on); an expectation over it
  (`E_{\\hat x}[f]`, `E_{\\hat x \\sim \\mathbb{P}_{\\hat x}}[f]`) draws what it depends on, in dependency order
  (a `Draw` statement's variable, a declared distribution over the variable, the data), then binds it.
* `q(z) = \\mathbb{E}_{p_{data}(x)}[q(z|x)]`: the aggregate posterior, drawn as x from the batch then z ~ q(z|x).
* `\\bar q(z) = \\prod_j q(z_j)`: a batch of q(z) draws with each dimension permuted independently across the batch.

Sample-only distributions have no density: using one as a density is a check error that says so. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..lang import nodes as N
from ..lang.nodes import substitute
from ..text.printing import to_ascii as var_text
from . import resolved as R
from .kinds import DeclKind
from .resolved import Factor, Joint


@dataclass(frozen=True)
class Definition:
    """`var = value`: a deterministic variable and what it stands for."""

    var: N.Var
    value: N.Expr
    stmt: N.Node


@dataclass(frozen=True)
class Aggregate:
    """`q(z) = E_{p_data(x)}[q(z|x)]`: the data's distribution `data` and the conditional `conditional`."""

    dist: N.Dist
    data: N.Dist
    conditional: N.Dist
    stmt: N.Node


@dataclass(frozen=True)
class Permuted:
    """`\\bar q(z) = \\prod_j q(z_j)`: the product of the marginals of `of` (a sample-only distribution), drawn by
    permuting each dimension of a batch of draws from `of` independently across the batch."""

    dist: N.Dist
    of: N.Dist
    stmt: N.Node


SampleOnly = (Aggregate, Permuted)


# --- checked nodes -----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DefinedRef(R.Checked_):
    """A use of a defined variable where nothing binds it: its checked definition, evaluated once per trace of the
    drawn values it depends on."""

    var: N.Var
    value: object


@dataclass(frozen=True, eq=False)
class Let(R.Checked_):
    """Bind `var` to the checked `value` in the trace (a defined variable an expectation draws), then `body`."""

    var: N.Var
    value: object
    body: object


@dataclass(frozen=True, eq=False)
class PermuteDims(R.Checked_):
    """The draws of `arg` ([batch, dims]) with each dimension permuted independently across the batch."""

    arg: object


# --- AST helpers the check builds (never parsed) --------------------------------------------------------------


@dataclass(frozen=True)
class Lets(N.Expr):
    """`body` with each `(var, value)` of `lets` bound in order (an expectation over defined variables)."""

    lets: Tuple[Tuple[N.Var, N.Expr], ...]
    body: N.Expr


@dataclass(frozen=True)
class Permute(N.Expr):
    """The dimensions of the drawn `arg` permuted across the batch (the draw of a `Permuted` distribution)."""

    arg: N.Var
    dist: N.Dist = field(default=None)


# --- reading the statements ---------------------------------------------------------------------------------


class Definitions:
    """Every definition of a program, by variable and by distribution name; `read` takes one statement."""

    def __init__(self, resolver):
        self.resolver = resolver
        self.variables: Dict[N.Var, Definition] = {}
        self.distributions: List[object] = []  # Aggregate / Permuted
        self.named: Dict[str, N.Var] = {}  # \mathbb{P}_g -> \tilde x, from `\tilde x \sim \mathbb{P}_g`

    def read(self, stmt: N.Node) -> bool:
        """Register `stmt` if it is a definition; False when it is not one (a factorisation, a Draw, ...)."""
        if not (isinstance(stmt, N.Relation) and stmt.ops == ("=",)):
            return False
        lhs, rhs = stmt.members
        if isinstance(lhs, N.Var):
            self._variable(lhs, rhs, stmt)
            return True
        if isinstance(lhs, N.Dist) and isinstance(rhs, N.Expect):
            self.distributions.append(self._aggregate(lhs, rhs, stmt))
            return True
        if isinstance(lhs, N.Dist) and isinstance(rhs, N.Prod):
            self.distributions.append(self._permuted(lhs, rhs, stmt))
            return True
        return False

    def _variable(self, var: N.Var, value: N.Expr, stmt: N.Node) -> None:
        err = self.resolver.error
        if var in self.variables:
            raise err(f"{var_text(var)} is defined twice (first: {var_text(self.variables[var].stmt)})", stmt)
        if any(isinstance(v, N.Var) and v == var for v in value.walk()):
            raise err(f"the definition of {var_text(var)} uses {var_text(var)} itself", stmt)
        self.variables[var] = Definition(var, value, stmt)

    def _aggregate(self, lhs: N.Dist, rhs: N.Expect, stmt) -> Aggregate:
        err = self.resolver.error
        over = rhs.over
        hint = "write the aggregate posterior as q(z) = \\mathbb{E}_{p_{data}(x)}[q(z|x)]"
        if over is None or len(over.dists) != 1 or not isinstance(over.dists[0], N.Dist) or not over.dists[0].vars:
            raise err(f"a distribution defined as an expectation averages a conditional over the data: {hint}", rhs)
        data, body = over.dists[0], rhs.body
        if not isinstance(body, N.Dist) or body.given != data.vars or len(body.vars) != len(lhs.vars):
            raise err(f"the expectation's body must be the conditional given what it averages over: {hint}", body)
        if lhs.given:
            raise err("an aggregate distribution has no conditions (it averages them out)", lhs)
        return Aggregate(lhs, data, body, stmt)

    def _permuted(self, lhs: N.Dist, rhs: N.Prod, stmt) -> Permuted:
        err = self.resolver.error
        hint = "write the product of the marginals as \\bar q(z) = \\prod_j q(z_j)"
        body, j = rhs.body, rhs.index
        ok = (isinstance(body, N.Dist) and len(body.vars) == 1 == len(lhs.vars) and not body.given
              and isinstance(body.vars[0], N.Var) and body.vars[0].index == (j,))
        if not ok or lhs.given:
            raise err(f"a distribution defined as a product over an index is the product of one distribution's "
                      f"marginals: {hint}", rhs)
        v = body.vars[0]
        of = N.Dist(body.name, (N.Var(v.name, (), v.mark, v.primes, v.label),), (), body.sub, span=body.span)
        return Permuted(lhs, of, stmt)

    # -- look-ups --

    def sample_only(self, dist: N.Dist) -> Optional[object]:
        """The aggregate or permuted definition a use `q(z)` means (same name, mark and variables by base)."""
        for d in self.distributions:
            if _same_name(d.dist, dist) and _bases(d.dist.vars) == _bases(dist.vars) and not dist.given:
                return d
        return None

    def of_variable(self, v: N.Var) -> Optional[Definition]:
        """The definition of `v`: its own, or one written at a step index and used at a numbered step (`x_t = ...`
        used as `x_1`), with the step substituted in its value. Only a number: `x_{t-1}` from `x_t`'s definition would
        share its noise, which is not the forward process's joint; and a value that uses `v` itself (`x_0` from
        `x_t = \\sqrt{\\bar\\alpha_t} x_0 + ...`) does not define it."""
        found = self.variables.get(v)
        if found is not None or len(v.index) != 1 or not isinstance(v.index[0], N.Num):
            return found
        for d in self.variables.values():
            w = d.var
            if (w.name, w.mark, w.primes, w.label) == (v.name, v.mark, v.primes, v.label) and len(w.index) == 1 \
                    and isinstance(w.index[0], N.Var) and not w.index[0].index:
                value = substitute(d.value, w.index[0], v.index[0])
                if not any(node == v for node in value.walk()):
                    return Definition(v, value, d.stmt)
        return None

    def name_samplers(self, program: N.Program) -> None:
        """`\\tilde x \\sim \\mathbb{P}_g` (an expectation's item or a draw statement) with `\\tilde x` defined:
        `\\mathbb{P}_g` names the distribution of `\\tilde x`, so that a divergence may take it as an argument."""
        for node in program.walk():
            pairs = ()
            if isinstance(node, N.Expect) and node.over is not None and len(node.over.dists) == 1:
                pairs = tuple((v, node.over.dists[0]) for v in node.over.draws)
            elif _DRAW is not None and isinstance(node, _DRAW):
                pairs = tuple((v, node.dist) for v in node.vars)
            if len(pairs) != 1:
                continue
            v, d = pairs[0]
            if isinstance(d, N.Dist) and not d.vars and v in self.variables:
                self.named.setdefault(d.full_name, v)

    def named_variable(self, dist: N.Dist) -> Optional[N.Var]:
        """The defined variable whose distribution a bare name means (`\\mathbb{P}_g`), or None."""
        return self.named.get(dist.full_name) if not dist.vars else None


# --- what an expectation over defined variables or a sample-only distribution draws -------------------------


@dataclass(frozen=True)
class DrawPlan:
    """How an expectation draws: `statements`, (variable, sampler) of `Draw` statements (drawn outermost);
    `uses`, declared distributions over the other primitive variables (one product, sampled in dependency
    order); `lets`, the defined variables bound after them, in dependency order."""

    statements: Tuple[Tuple[N.Var, N.Expr], ...]
    uses: Tuple[N.Dist, ...]
    lets: Tuple[Tuple[N.Var, N.Expr], ...]


def hidden(v: N.Var) -> N.Var:
    """The name of the draws a permuted sampler permutes (never written by a user: a label no parse gives)."""
    return N.Var(v.name, v.index, v.mark, v.primes, "unpermuted")


def plan_of(resolver, e: N.Expect, drawn=frozenset()) -> Optional[DrawPlan]:
    """The draw plan of an expectation over defined variables (`E_{\\hat x}`, `E_{\\tilde x \\sim \\mathbb{P}_g}`)
    or over a permuted distribution (`E_{z' \\sim \\bar q(z)}`); None for every other expectation."""
    over = e.over
    if over is None or isinstance(e.body, Lets):
        return None
    roots = _defined_roots(resolver, over)
    if roots is not None:
        return _dependencies(resolver, roots, set(drawn), e)
    if len(over.dists) == 1 and isinstance(over.dists[0], N.Dist):
        d = resolver.defs.sample_only(over.dists[0])
        if isinstance(d, Permuted):
            (v,) = over.draws or over.dists[0].vars
            of = N.Dist(d.of.name, (hidden(v),), (), d.of.sub, span=over.dists[0].span)
            return DrawPlan((), (of,), ((v, Permute(hidden(v), d.dist, span=over.dists[0].span)),))
    return None


def _defined_roots(resolver, over: N.Sampler) -> Optional[Tuple[N.Var, ...]]:
    """The defined variables an expectation item draws: a bare item `E_{\\hat x}` or `v \\sim P` with P
    undeclared (the name of v's distribution)."""
    if not over.draws or not all(resolver.defs.of_variable(v) is not None for v in over.draws):
        return None
    if not over.dists:
        return tuple(over.draws)
    if len(over.dists) == 1 and isinstance(over.dists[0], N.Dist) and not over.dists[0].vars \
            and not resolver.candidates(over.dists[0]):
        return tuple(over.draws)
    return None


def _dependencies(resolver, roots, drawn: set, e: N.Expect) -> DrawPlan:
    """Walk the definitions from `roots`: defined variables in dependency order, and what draws the others."""
    lets: List[Tuple[N.Var, N.Expr]] = []
    statements: List[Tuple[N.Var, N.Expr]] = []
    uses: List[N.Dist] = []
    done, visiting = set(drawn), []

    def visit(v: N.Var) -> None:
        if v in done:
            return
        d = resolver.defs.of_variable(v)
        if d is not None:
            if v in visiting:
                chain = " -> ".join(var_text(u) for u in visiting + [v])
                raise resolver.error(f"the definitions are circular: {chain}", d.stmt)
            visiting.append(v)
            for u in dict.fromkeys(_free_vars(d.value)):
                visit(u)
            visiting.pop()
            done.add(v)
            lets.append((v, d.value))
            return
        done.add(v)
        stmt = resolver.sampler_of(v)
        if _DRAW is not None and isinstance(stmt, _DRAW):
            statements.append((v, stmt.dist))
            return
        use = _declared_use(resolver, v, e)
        if use is not None:
            for g in use.given:
                visit(g)
            uses.append(use)

    for root in roots:
        visit(root)
    return DrawPlan(tuple(statements), tuple(uses), tuple(lets))


def _declared_use(resolver, v: N.Var, e: N.Node) -> Optional[N.Dist]:
    """The use `p(v|...)` of the one declared distribution (or data) over `v`'s letter, or None (an input)."""
    found = [d for d in resolver.decls if d.kind in (DeclKind.DISTRIBUTION, DeclKind.DATA) and len(d.vars) == 1
             and (d.vars[0].name, d.vars[0].mark, d.vars[0].primes) == (v.name, v.mark, v.primes)]
    if not found:
        return None
    exact = [d for d in found if d.vars[0] == v]  # p_data(x_0) for x_0, before q(x_{t-1}|...) by its letter
    if len(exact) == 1:
        found = exact
    if len(found) > 1:
        raise resolver.error(f"{var_text(v)} could be drawn from {', '.join(str(d) for d in found)}: write its "
                             f"sampler in the expectation or as a draw statement", e)
    d = found[0]
    name, _, sub = d.name.partition("_")
    return N.Dist(name, (v,), tuple(d.given), sub or None, span=e.span)


def sampling_joint(resolver, e: N.Expect) -> Optional[Joint]:
    """What the expectation draws from declarations, for expectations this module plans (and sample-only ones):
    the resolver's answer for them; None for every other expectation."""
    over = e.over
    if over is None:
        return None
    plan = plan_of(resolver, e)
    if plan is not None:
        factors = [f for use in plan.uses for f in _use_joint(resolver, use).factors]
        return Joint(resolver._order(factors, e, right_to_left=False)) if factors else Joint(())
    if len(over.dists) == 1 and isinstance(over.dists[0], N.Dist) and over.dists[0].vars:
        d = resolver.defs.sample_only(over.dists[0])
        if isinstance(d, Aggregate):
            return _aggregate_joint(resolver, d, over.draws or over.dists[0].vars)
    if not over.dists and len(over.draws) == 1:  # a bare item over a declared variable (E_{x_0})
        use = _declared_use(resolver, over.draws[0], e)
        if use is not None:
            return _use_joint(resolver, use)
    return None


def _use_joint(resolver, use: N.Dist) -> Joint:
    d = resolver.defs.sample_only(use)
    if isinstance(d, Aggregate):
        return _aggregate_joint(resolver, d, use.vars)
    return resolver.resolve(use)


def _aggregate_joint(resolver, d: Aggregate, vs) -> Joint:
    """x from the batch, then z ~ q(z|x) named as the use names it."""
    data = resolver.resolve(d.data)
    conditional = resolver.match_factor(d.conditional)
    return Joint(data.factors + (Factor(conditional.decl, tuple(vs), conditional.given),))


def _free_vars(expr: N.Node) -> List[N.Var]:
    from .resolver import free_vars  # the resolver imports this module first

    return free_vars(expr)


_DRAW = getattr(N, "Draw", None)


def _same_name(a: N.Dist, b: N.Dist) -> bool:
    return a.full_name == b.full_name and getattr(a, "mark", None) == getattr(b, "mark", None)


def _bases(vs) -> Tuple[object, ...]:
    return tuple(v.name if isinstance(v, N.Var) else v for v in vs)


def sample_only_error(resolver, d: object, use: N.Node):
    """The error for a density of a sample-only distribution: what it is and what can be done with it instead."""
    what = ("the aggregate posterior, defined as an expectation over the data" if isinstance(d, Aggregate) else
            "a product of marginals drawn by permuting a batch of draws")
    return resolver.error(
        f"{var_text(d.dist)} is {what}: it can be sampled from but has no density (line: {var_text(d.stmt)}); "
        "use it as an expectation's sampler, in MMD(a || b), or in a density-ratio KL_D(a || b) with a critic D",
        use)


__all__ = ["Definition", "Aggregate", "Permuted", "SampleOnly", "Definitions", "DefinedRef", "Let", "PermuteDims",
           "Lets", "Permute", "sample_only_error", "DrawPlan", "plan_of", "sampling_joint", "hidden"]
