"""Resolution: which declarations a use of a distribution in a formula means (docs/language.md §2, rules 1-6).

A use `q(z|x)` resolves to one declaration, a joint `p(x, z)` to declared factors (a declared joint, a factorisation
line, or the chain rule), an expectation's subscript to what it samples. Torch-free; the checker's walk calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import FormulaCheckError
from ..lang import nodes as N
from ..lang.spellings import GREEK_LETTERS
from ..text.printing import to_ascii as var_text
from . import sequences
from . import definitions as defs
from . import named
from .kinds import DeclKind
from .resolved import Factor, Joint


@dataclass(frozen=True)
class Decl:
    """A declared distribution or function, as far as checking needs it: its signature and kind."""

    index: int
    name: str  # full declared name: "q", "p_B", "p_prior"
    vars: Tuple[N.Var, ...]
    given: Tuple[N.Var, ...]
    kind: DeclKind = DeclKind.DISTRIBUTION
    text: str = ""

    def __str__(self) -> str:
        return self.text or self.name


@dataclass(frozen=True)
class Draws:
    """What an expectation samples: a joint and, for a sampling set `z_1,...,z_K ~ q`, the set variable."""

    joint: Joint
    set_var: Optional[N.Var] = None  # z_{1:K}: draws K at once along a new leading dimension
    set_size: Optional[N.Expr] = None  # K



def _err(msg: str, text: str, node: Optional[N.Node]) -> FormulaCheckError:
    span = node.span if node is not None else None
    return FormulaCheckError(msg, text, (span.start, span.end) if span is not None else None)


def _sig_text(d: N.Dist) -> str:
    return var_text(d)


def _given_bases_match(declared: Sequence[N.Var], used: Sequence[N.Expr]) -> bool:
    """Rule 4 for conditions; a number fills a declared step condition (`p_\\theta(x_0|x_1, 1)` of a declared
    `p_\\theta(x_{t-1}|x_t, t)`: the net gets the step as a number)."""
    return len(declared) == len(used) and all(
        (isinstance(u, N.Num) and isinstance(d, N.Var) and not d.index) or _bases((d,)) == _bases((u,))
        for d, u in zip(declared, used))


def _bases(vs: Iterable[N.Expr]) -> Tuple[object, ...]:
    """Base names by position (rule 4: without index, prime or decoration)."""
    return tuple(v.name if isinstance(v, N.Var) else v for v in vs)


class Resolver:
    """Resolves uses of distributions against the declarations; remembers factorisation lines."""

    def __init__(self, text: str, program: N.Program, decls: Sequence[Decl]):
        self.text = text
        self.program = program
        self.decls = tuple(decls)
        self.densities: Dict[N.Dist, Joint] = {}  # memo of resolved uses
        self.draws: Dict[N.Expect, Draws] = {}
        self.factorisations: List[Tuple[N.Dist, Tuple[N.Dist, ...], N.Node]] = []
        self.defs = defs.Definitions(self)  # definitions: `\\hat x = ...`, `q(z) = E_{p_data(x)}[q(z|x)]`, ...
        self.bare: Dict[N.Var, object] = {}  # what draws a bare variable: an N.Draw statement or a Definition
        self.named: Dict[tuple, object] = {}  # (name, arity) -> a sub-objective (formula.check.named)
        self.expanding: List[str] = []  # sub-objectives being expanded, innermost last
        self._defining: List[N.Var] = []  # definitions being checked (a circular pair is an error)

    # -- names --

    def error(self, msg: str, node: Optional[N.Node]) -> FormulaCheckError:
        return _err(msg, self.text, node)

    def declared_list(self) -> str:
        return ", ".join(str(d) for d in self.decls) or "nothing"

    def candidates(self, dist: N.Dist, kinds=(DeclKind.DISTRIBUTION, DeclKind.DATA)) -> List[Decl]:
        """Declarations of the use's name: the subscripted name if declared, else the bare name (rule 2)."""
        names = [dist.full_name]
        if dist.sub is not None:
            names.append(dist.name)
        for name in names:
            found = [d for d in self.decls if d.name == name and d.kind in kinds]
            if found:
                return found
        return []

    def function_for(self, name: str, nargs: int) -> Optional[Decl]:
        for d in self.decls:
            if d.kind is DeclKind.FUNCTION and d.name == name and len(d.vars) == nargs:
                return d
        return None

    # -- resolution of a single use --

    def match_factor(self, dist: N.Dist) -> Factor:
        """Resolve a use with one variable to one declaration (rules 1, 2, 4)."""
        cands = self.candidates(dist)
        exact, by_base = [], []
        for d in cands:
            if len(d.vars) != len(dist.vars) or len(d.given) != len(dist.given):
                continue
            if d.vars == dist.vars and d.given == dist.given:
                exact.append(d)
            elif _bases(d.vars) == _bases(dist.vars) and _given_bases_match(d.given, dist.given):
                by_base.append(d)
        if len(exact) == 1:
            return Factor(exact[0].index, dist.vars, dist.given)
        if len(exact) > 1 or len(by_base) > 1:
            both = ", ".join(str(d) for d in (exact or by_base))
            raise self.error(f"{_sig_text(dist)} matches more than one declaration: {both}", dist)
        if by_base:
            sequences.refuse_fixed_level(self, dist, by_base[0])  # q(z_1|x) used as q(z_{l-1}|x): refused
            return Factor(by_base[0].index, dist.vars, dist.given)
        raise self.error(f"no distribution {_sig_text(dist)} is declared; declared: {self.declared_list()}"
                         f"{_greek_hint(dist)}", dist)

    def resolve(self, dist: N.Dist) -> Joint:
        """Resolve a distribution use to a joint of declared factors (rules 1-4, factorisations, chain rule)."""
        if dist in self.densities:
            return self.densities[dist]
        for arg in dist.vars + dist.given:
            if not isinstance(arg, N.Var) and not (isinstance(arg, N.Num) and arg in dist.given):
                raise self.error(f"the arguments of {_sig_text(dist)} must be variables{_greek_hint(dist)}", arg)
        if not dist.vars:
            raise self.error(f"{_sig_text(dist)} needs its variables here (write e.g. q(z|x))", dist)
        sample_only = self.defs.sample_only(dist)
        if sample_only is not None:
            raise defs.sample_only_error(self, sample_only, dist)
        joint = self._resolve_uncached(dist)
        self.densities[dist] = joint
        return joint

    def _resolve_uncached(self, dist: N.Dist) -> Joint:
        # A declared joint or single-variable declaration first.
        try:
            return Joint((self.match_factor(dist),))
        except FormulaCheckError as missing:
            if len(dist.vars) == 1:
                # A written factorisation of a one-variable distribution is unusual but allowed.
                fact = self._from_factorisation(dist)
                if fact is not None:
                    return fact
                raise missing
        fact = self._from_factorisation(dist)
        if fact is not None:
            return fact
        return self._chain_rule(dist)

    def _from_factorisation(self, dist: N.Dist) -> Optional[Joint]:
        for lhs, factors, _ in self.factorisations:
            if lhs.full_name != dist.full_name and lhs.name != dist.name:
                continue
            if len(lhs.vars) != len(dist.vars) or len(lhs.given) != len(dist.given):
                continue
            if (lhs.vars, lhs.given) == (dist.vars, dist.given):
                mapping = {}
            elif _bases(lhs.vars) == _bases(dist.vars) and _bases(lhs.given) == _bases(dist.given):
                mapping = dict(zip(lhs.vars + lhs.given, dist.vars + dist.given))
            else:
                continue
            bound = [self.match_factor(_rename(f, mapping)) for f in factors]
            return Joint(self._order(bound, dist, right_to_left=True))
        return None

    def _chain_rule(self, dist: N.Dist) -> Joint:
        """Cover a joint with declared factors of the same name: each joint variable once, conditions within the
        joint's variables and conditions (rule 3)."""
        by_base = {v.name: v for v in dist.vars + dist.given}
        allowed = set(by_base)
        chosen: Dict[str, Decl] = {}
        for v in dist.vars:
            options = [
                d for d in self.candidates(dist)
                if len(d.vars) == 1 and d.vars[0].name == v.name and set(_bases(d.given)) <= allowed
                and v.name not in _bases(d.given)
            ]
            exact = [d for d in options if d.vars[0] == v]
            options = exact or options
            if not options:
                raise self.error(
                    f"no declaration covers {var_text(v)} in {_sig_text(dist)}: declare the joint, its factors "
                    f"(e.g. by the chain rule) or a factorisation line; declared: {self.declared_list()}",
                    dist,
                )
            if len(options) > 1:
                # Prefer the factor whose conditions use most of the joint (p(x|z) over p(x)).
                options.sort(key=lambda d: -len(d.given))
                if len(options[0].given) == len(options[1].given):
                    both = ", ".join(str(d) for d in options)
                    raise self.error(f"{var_text(v)} in {_sig_text(dist)} is covered by several declarations: {both}", dist)
            chosen[v.name] = options[0]
        factors = []
        for v in dist.vars:
            d = chosen[v.name]
            factors.append(Factor(d.index, (v,), tuple(by_base[g.name] for g in d.given)))
        return Joint(self._order(factors, dist, right_to_left=False))

    def _order(self, factors: List[Factor], dist: N.Dist, right_to_left: bool) -> Tuple[Factor, ...]:
        """Sampling order: a factor after those that draw its conditions; circular dependencies are an error."""
        pending = list(reversed(factors)) if right_to_left else list(factors)
        produced = {v for f in factors for v in f.vars}
        done: set = set()
        order: List[Factor] = []
        while pending:
            for f in pending:
                if all(g not in produced or g in done for g in f.given):
                    order.append(f)
                    done.update(f.vars)
                    pending.remove(f)
                    break
            else:
                names = ", ".join(_sig_text(self._use(f)) for f in pending)
                raise self.error(f"the factorisation of {_sig_text(dist)} is circular: {names}", dist)
        return tuple(order)

    def _use(self, f: Factor) -> N.Dist:
        d = self.decls[f.decl]
        name, _, sub = d.name.partition("_")
        return N.Dist(name, f.vars, f.given, sub or None)

    # -- statements --

    def take_factorisations(self) -> N.Expr:
        """Register every statement but the last (factorisations, definitions, `Draw` statements) and the items of
        a `where` clause on the last; return the last without its where clause."""
        stmts = self.program.statements
        last = self._hoist_where(stmts[-1])
        for stmt in stmts[:-1] + self._where_items:
            if named.read(self, stmt):  # \mathcal{L}(x, y) = ...: a sub-objective, used by name in the objective
                continue
            if sequences.read_product(self, stmt) or self.defs.read(stmt):  # read_product: z_{\le T} = \prod_t z_t
                continue
            if _DRAW is not None and isinstance(stmt, _DRAW):
                self.bare.update((v, stmt) for v in stmt.vars if isinstance(v, N.Var))
                continue
            self._factorisation(stmt)
        self.bare.update(self.defs.variables)
        self.defs.name_samplers(self.program)
        return last

    def _hoist_where(self, stmt: N.Expr) -> N.Expr:
        """`body \\text{where} defs` (alone, in a relation's last member, or under a prefix) -> body; the items are
        read like statements before the objective."""
        self._where_items: Tuple[N.Node, ...] = ()
        where = getattr(N, "Where", None)
        if where is None:
            return stmt
        if isinstance(stmt, where):
            self._where_items = tuple(stmt.defs)
            return stmt.body
        if isinstance(stmt, N.Relation) and isinstance(stmt.members[-1], where):
            self._where_items = tuple(stmt.members[-1].defs)
            return N.Relation(stmt.members[:-1] + (stmt.members[-1].body,), stmt.ops, span=stmt.span)
        if isinstance(stmt, N.Optimize):
            return N.Optimize(stmt.sense, stmt.over, self._hoist_where(stmt.body), span=stmt.span)
        return stmt

    def _factorisation(self, stmt: N.Node) -> None:
        """Register a factorisation line `p(x, z) = p(x|z) p(z)`, validated at its own line."""
        if not (isinstance(stmt, N.Relation) and stmt.ops == ("=",) and isinstance(stmt.members[0], N.Dist)):
            raise self.error("before the objective come factorisations (p(x,z) = p(x|z) p(z)), definitions "
                             "(\\hat x = \\epsilon x + (1 - \\epsilon) \\tilde x; q(z) = E_{p_data(x)}[q(z|x)]) and "
                             "draws (\\epsilon \\sim U[0, 1])", stmt)
        lhs, rhs = stmt.members
        factors = rhs.factors if isinstance(rhs, N.Mul) else (rhs,)
        if not all(isinstance(f, N.Dist) for f in factors):
            raise self.error("a factorisation's right side must be a product of distributions", rhs)
        covered = [v for f in factors for v in f.vars]
        if sorted(map(repr, covered)) != sorted(map(repr, lhs.vars)):
            raise self.error(
                f"the factors cover {', '.join(map(var_text, covered)) or 'nothing'} but "
                f"{_sig_text(lhs)} is over {', '.join(map(var_text, lhs.vars))}",
                stmt,
            )
        allowed = set(lhs.vars) | set(lhs.given)
        for f in factors:
            for g in f.given:
                if g not in allowed:
                    raise self.error(
                        f"{_sig_text(f)} conditions on {var_text(g)}, which {_sig_text(lhs)} neither draws "
                        "nor is given", f)
        self.factorisations.append((lhs, factors, stmt))
        # Validate order and resolution now, so a bad factorisation fails at its own line.
        bound = [self.match_factor(f) for f in factors]
        self._order(bound, lhs, right_to_left=True)

    # -- bare variables: what draws each (the hook Draw statements and definitions share) --

    def sampler_of(self, v: N.Var) -> Optional[object]:
        """What draws bare variable `v`: its `Draw` statement or where item (an N.Draw), its `Definition`, else
        None (a declaration over it, or nothing)."""
        return self.bare.get(v)

    def defined_ref(self, v: N.Var, scope) -> Optional[object]:
        """A use of a defined variable that nothing binds here: its definition, checked at this point."""
        d = self.defs.of_variable(v)
        if d is None:
            return None
        if v in self._defining:
            chain = " -> ".join(var_text(u) for u in self._defining + [v])
            raise self.error(f"the definitions are circular: {chain}", d.stmt)
        self._defining.append(v)
        try:
            return defs.DefinedRef(d.stmt, v, self.visit(d.value, scope))
        finally:
            self._defining.pop()

    # -- expectations --

    def resolve_draws(self, e: N.Expect) -> Draws:
        """What an expectation samples: its written sampling distributions (a product is sampled right to
        left), or those of the named/any declaration that produce what the body needs (`E_q[f]`, `E[f]`)."""
        if e in self.draws:
            return self.draws[e]
        prefix = sequences.prefix_draws(self, e)  # E_{q(z_{<l}|x)}: the slice, drawn level by level
        if prefix is not None:
            self.draws[e] = prefix
            return prefix
        special = self.defined_draws(e)  # definitions, sample-only distributions, bare declared items
        if special is not None:
            self.draws[e] = special
            return special
        over = e.over
        if over is None or (len(over.dists) == 1 and isinstance(over.dists[0], N.Dist) and not over.dists[0].vars):
            name = None if over is None else over.dists[0]
            joint = self._infer(e, name)
        else:
            factors: List[Factor] = []
            for d in reversed(over.dists):
                if not isinstance(d, N.Dist):
                    raise self.error("explicit families cannot be sampled from yet: declare the distribution", d)
                factors.extend(self.resolve(d).factors)
            joint = Joint(self._order(factors, over.dists[0], right_to_left=False))
        draws = Draws(joint)
        if over is not None and over.draws:
            draws = self._sampling_set(e, joint)
        self.draws[e] = draws
        return draws

    def defined_draws(self, e: N.Expect) -> Optional[Draws]:
        """What an expectation over defined variables, over a sample-only distribution or over a bare declared
        variable draws from declarations (formula.check.definitions); None for the others."""
        joint = defs.sampling_joint(self, e)
        return None if joint is None else Draws(joint)

    def _sampling_set(self, e: N.Expect, joint: Joint) -> Draws:
        written = e.over.draws
        if len(written) == 1 and len(joint.factors) == 1 and written[0].index and isinstance(written[0].index[-1], N.Range):
            set_var = written[0]
            rng = set_var.index[-1]
            if not (isinstance(rng.lo, N.Num) and rng.lo.value == 1):
                raise self.error("a sampling set must start at 1 (z_1,...,z_K)", set_var)
            if set_var.name != joint.factors[0].vars[0].name:
                raise self.error(
                    f"the sampling set {var_text(set_var)} does not match the variable of "
                    f"{_sig_text(self._use(joint.factors[0]))}", set_var)
            f = joint.factors[0]
            return Draws(Joint((Factor(f.decl, (set_var,), f.given),)), set_var, rng.hi)
        if len(written) != len(joint.vars):
            raise self.error(
                f"{len(written)} variable(s) drawn from a distribution over {len(joint.vars)}", e.over)
        rename = dict(zip(joint.vars, written))
        factors = tuple(Factor(f.decl, tuple(rename[v] for v in f.vars), tuple(rename.get(g, g) for g in f.given))
                        for f in joint.factors)
        return Draws(Joint(factors))

    def _infer(self, e: N.Expect, named: Optional[N.Dist]) -> Joint:
        needed = _free_vars(e.body)
        pool = self.candidates(named) if named is not None else [d for d in self.decls if d.kind is DeclKind.DISTRIBUTION]
        pool = [d for d in pool if len(d.vars) == 1]
        factors = []
        for v in dict.fromkeys(needed):
            producers = [d for d in pool if d.vars[0].name == v.name]
            if not producers:
                continue
            if len(producers) > 1:
                listed = ", ".join(str(d) for d in producers)
                where = f"E_{named.name}" if named is not None else "E"
                raise self.error(f"{where}[...] is ambiguous: {var_text(v)} could be drawn from {listed}", e)
            d = producers[0]
            by_base = {u.name: u for u in needed}
            factors.append(Factor(d.index, (v,), tuple(by_base.get(g.name, g) for g in d.given)))
        if not factors:
            what = f"no declared {named.name}(...)" if named is not None else "no declared distribution"
            raise self.error(f"{what} produces a variable this expectation's body uses", e)
        return Joint(self._order(factors, named or N.Dist("E"), right_to_left=False))


def _greek_hint(dist: N.Dist) -> str:
    """`\\beta(x)` is a call of beta; say how to write the product a paper may have meant."""
    if dist.name in GREEK_LETTERS and not dist.given:
        return (f"; a Greek letter right before '(' is a call: for the product write \\{dist.name} \\cdot (...) "
                "or leave a space")
    return ""


def _free_vars(expr: N.Node) -> List[N.Var]:
    """Variables referenced in `expr`, in order of appearance (index symbols inside them are not separate)."""
    out, stack = [], [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, N.Var):
            out.append(node)
            continue
        stack.extend(reversed(list(node.children())))
    return out


def _rename(dist: N.Dist, mapping: Dict[N.Expr, N.Expr]) -> N.Dist:
    if not mapping:
        return dist
    return N.Dist(dist.name, tuple(mapping.get(v, v) for v in dist.vars),
                  tuple(mapping.get(v, v) for v in dist.given), dist.sub, dist.params)


free_vars = _free_vars
_DRAW = getattr(N, "Draw", None)  # the `\\epsilon \\sim U[0, 1]` statement, once the AST has it

__all__ = ["Decl", "Draws", "Resolver", "free_vars"]
