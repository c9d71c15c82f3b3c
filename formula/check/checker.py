"""Checking: resolve every distribution, function and variable of a parsed formula against the declared
signatures (docs/language.md §2) and decide what is sampled, what is an input, and how each sum is evaluated.

Works on signatures alone (no networks), so `formula check` and `fm.compile` share it. The result, a `Checked`
program, is immutable and cached per (text, signatures); the compiler turns it into a torch module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ..lang import nodes as N
from ..errors import FormulaCheckError
from ..text.printing import to_ascii as var_text  # the ASCII spelling names inputs, terms and declarations

# Explicit families the compiler evaluates (the parser knows more spellings); `I` in their arguments is the
# identity, so `\mathcal{N}(0, I)` and `\mathcal{N}(\mu, \sigma^2 I)` are diagonal Normals.
EXPLICIT_FAMILIES = frozenset({"Normal"})
IDENTITY = N.Var("I")


# --- declarations -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decl:
    """A declared distribution or function, as far as checking needs it: its signature."""

    index: int
    name: str  # full declared name: "q", "p_B", "p_prior"
    vars: Tuple[N.Var, ...]
    given: Tuple[N.Var, ...]
    kind: str = "dist"  # "dist", "data" (the empirical distribution of the batch) or "function"
    text: str = ""

    def __str__(self) -> str:
        return self.text or self.name


# --- resolution results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """One declared distribution bound to a use: the use's variable(s) and conditioning expressions, in the
    declaration's order."""

    decl: int
    vars: Tuple[N.Expr, ...]
    given: Tuple[N.Expr, ...]


@dataclass(frozen=True)
class Joint:
    """A distribution as a product of bound factors, in sampling order (each factor's conditions are inputs or
    drawn by an earlier factor)."""

    factors: Tuple[Factor, ...]

    @property
    def vars(self) -> Tuple[N.Expr, ...]:
        return tuple(v for f in self.factors for v in f.vars)


@dataclass(frozen=True)
class Draws:
    """What an expectation samples: a joint and, for a sampling set `z_1,...,z_K ~ q`, the set variable."""

    joint: Joint
    set_var: Optional[N.Var] = None  # z_{1:K}: draws K at once along a new leading dimension
    set_size: Optional[N.Expr] = None  # K


@dataclass(frozen=True)
class SumPlan:
    """How a sum is evaluated: `vector` (over a sampling set's dimension or a discrete support) or `loop`."""

    mode: str  # "loop", "vector" (draw set), "support" (enumerate a discrete variable)
    set_var: Optional[N.Var] = None
    support_decl: Optional[int] = None


@dataclass(frozen=True)
class Term:
    """A top-level term of the objective: its printed name, its sign in the total, and its expression."""

    name: str
    sign: float
    expr: N.Expr


@dataclass(frozen=True)
class Checked:
    """A formula resolved against signatures: everything the compiler needs, nothing tied to a network."""

    text: str
    program: N.Program
    statement: N.Expr  # the statement holding the objective (a relation chain is kept for printing)
    objective: N.Expr
    terms: Tuple[Term, ...]
    decls: Tuple[Decl, ...]
    densities: Dict[N.Dist, Joint]  # every density/log-density/KL/entropy argument
    calls: Dict[N.Expr, int]  # function calls (Dist or Apply nodes) -> declaration index
    draws: Dict[N.Expect, Draws]
    sums: Dict[N.Expr, SumPlan]
    inputs: Tuple[str, ...]  # names a call must supply
    optional_inputs: Tuple[str, ...]  # names that may be supplied (T when it comes from the data)
    sequences: FrozenSet[str]  # inputs used as sequences [batch, T, ...]
    latents: FrozenSet[str]  # base names of sampled variables
    data_inputs: FrozenSet[str]  # inputs that are arguments of distributions or functions: [batch, *event]
    starts: Dict[str, int]  # `z_0` -> the declaration `p(z_0)` it is drawn from at first use
    players: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()

    def __hash__(self) -> int:  # dict fields: identity hash is enough, checks are cached by key
        return id(self)


# --- the checker ----------------------------------------------------------------------------------------


def _err(msg: str, text: str, node: Optional[N.Node]) -> FormulaCheckError:
    span = node.span if node is not None else None
    return FormulaCheckError(msg, text, (span.start, span.end) if span is not None else None)


def _sig_text(d: N.Dist) -> str:
    return var_text(d)


def _bases(vs: Iterable[N.Expr]) -> Tuple[object, ...]:
    """Base names by position (rule 4: without index, prime or decoration)."""
    return tuple(v.name if isinstance(v, N.Var) else v for v in vs)


class _Checker:
    def __init__(self, text: str, program: N.Program, decls: Sequence[Decl]):
        self.text = text
        self.program = program
        self.decls = tuple(decls)
        self.densities: Dict[N.Dist, Joint] = {}
        self.calls: Dict[N.Expr, int] = {}
        self.draws: Dict[N.Expect, Draws] = {}
        self.sums: Dict[N.Expr, SumPlan] = {}
        self.factorisations: List[Tuple[N.Dist, Tuple[N.Dist, ...], N.Node]] = []
        self.inputs: Dict[str, N.Node] = {}
        self.optional: Dict[str, N.Node] = {}
        self.sequences: set = set()
        self.latent_bases: set = set()
        self.data_inputs: set = set()
        self.in_family = False  # visiting an explicit family's arguments, where `I` is the identity
        self.starts: Dict[str, int] = {}  # values before a time sum's start drawn from their declaration

    # -- names --

    def error(self, msg: str, node: Optional[N.Node]) -> FormulaCheckError:
        return _err(msg, self.text, node)

    def declared_list(self) -> str:
        return ", ".join(str(d) for d in self.decls) or "nothing"

    def candidates(self, dist: N.Dist, kinds=("dist", "data")) -> List[Decl]:
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
            if d.kind == "function" and d.name == name and len(d.vars) == nargs:
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
            elif _bases(d.vars) == _bases(dist.vars) and _bases(d.given) == _bases(dist.given):
                by_base.append(d)
        if len(exact) == 1:
            return Factor(exact[0].index, dist.vars, dist.given)
        if len(exact) > 1 or len(by_base) > 1:
            both = ", ".join(str(d) for d in (exact or by_base))
            raise self.error(f"{_sig_text(dist)} matches more than one declaration: {both}", dist)
        if by_base:
            return Factor(by_base[0].index, dist.vars, dist.given)
        raise self.error(f"no distribution {_sig_text(dist)} is declared; declared: {self.declared_list()}", dist)

    def resolve(self, dist: N.Dist) -> Joint:
        """Resolve a distribution use to a joint of declared factors (rules 1-4, factorisations, chain rule)."""
        if dist in self.densities:
            return self.densities[dist]
        for arg in dist.vars + dist.given:
            if not isinstance(arg, N.Var):
                raise self.error(f"the arguments of {_sig_text(dist)} must be variables", arg)
        if not dist.vars:
            raise self.error(f"{_sig_text(dist)} needs its variables here (write e.g. q(z|x))", dist)
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
        """Register every statement but the last as a factorisation; return the last."""
        stmts = self.program.statements
        for stmt in stmts[:-1]:
            if not (isinstance(stmt, N.Relation) and stmt.ops == ("=",) and isinstance(stmt.members[0], N.Dist)):
                raise self.error("only factorisations (p(x,z) = p(x|z) p(z)) may come before the objective", stmt)
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
        return stmts[-1]



    # -- expectations --

    def resolve_draws(self, e: N.Expect) -> Draws:
        """What an expectation samples: its written sampling distributions (a product is sampled right to
        left), or those of the named/any declaration that produce what the body needs (`E_q[f]`, `E[f]`)."""
        if e in self.draws:
            return self.draws[e]
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
        pool = self.candidates(named) if named is not None else [d for d in self.decls if d.kind == "dist"]
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

    # -- the walk over the objective --

    def analyse(self, objective: N.Expr) -> None:
        for node in objective.walk():
            if isinstance(node, N.Expect):
                draws = self.resolve_draws(node)
                for f in draws.joint.factors:
                    if self.decls[f.decl].kind != "data":
                        self.latent_bases.update(v.name for v in f.vars)
        self.visit(objective, _Scope())

    def visit(self, node: N.Node, scope: "_Scope") -> None:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.error(f"{type(node).__name__} cannot be evaluated yet (it parses, and prints)", node)
        method(node, scope)

    def visit_children(self, node: N.Node, scope: "_Scope") -> None:
        for child in node.children():
            self.visit(child, scope)

    visit_Add = visit_Neg = visit_Mul = visit_Div = visit_Pow = visit_Norm = visit_StopGrad = visit_children

    def visit_Num(self, node, scope):
        pass

    def visit_Labeled(self, node, scope):
        self.visit(node.body, scope)

    def visit_Optimize(self, node, scope):
        self.visit(node.body, scope)

    def visit_Apply(self, node: N.Apply, scope):
        if node.fn == "sigmoid":
            fn = self.function_for("sigma", len(node.args))
            if fn is not None:
                self.calls[node] = fn.index
        self.visit_children(node, scope)

    def visit_Var(self, v: N.Var, scope: "_Scope") -> None:
        if not (self.in_family and v == IDENTITY):
            self.ref(v, scope, data=False)

    def visit_Dist(self, d: N.Dist, scope):
        if not d.given:
            fn = self.function_for(d.full_name, len(d.vars)) or (
                self.function_for(d.name, len(d.vars)) if d.sub else None)
            if fn is not None:
                self.calls[d] = fn.index
                for a in d.vars:
                    self.ref(a, scope)
                return
        joint = self.resolve(d)
        for f in joint.factors:
            for v in f.vars + f.given:
                self.ref(v, scope)

    def visit_LogDensity(self, node: N.LogDensity, scope):
        if isinstance(node.dist, N.Family):
            fam = self.family(node.dist, scope)
            if not fam.vars:
                raise self.error("say what this density is of: \\mathcal{N}(x \\mid \\mu, \\sigma^2 I)", fam)
            for v in fam.vars:
                self.ref(v, scope)
            return
        self.visit_Dist(node.dist, scope)

    def family(self, fam: N.Family, scope) -> N.Family:
        """An explicit family (`\\mathcal{N}(0, I)`): known to the compiler, its parameters are references
        (`I`, the identity, is not an input)."""
        if fam.family not in EXPLICIT_FAMILIES:
            raise self.error(f"explicit {fam.family} families are not evaluated yet (known: "
                             f"{', '.join(sorted(EXPLICIT_FAMILIES))}): declare the distribution", fam)
        self.in_family = True
        try:
            for arg in fam.args:
                self.visit(arg, scope)
        finally:
            self.in_family = False
        return fam

    def _integrated(self, d: N.Expr, scope) -> Joint:
        """A KL/entropy argument: its variables are integrated over, its conditions are references."""
        if not isinstance(d, N.Dist):
            raise self.error("explicit families inside KL/entropy are not evaluated yet: declare the distribution", d)
        joint = self.resolve(d)
        for f in joint.factors:
            for g in f.given:
                if g not in joint.vars:
                    self.ref(g, scope)
        return joint

    def visit_Divergence(self, node: N.Divergence, scope):
        if isinstance(node.right, N.Family) and isinstance(node.left, N.Dist):
            self._integrated(node.left, scope)
            self.family(node.right, scope)
            return
        left = self._integrated(node.left, scope)
        right = self._integrated(node.right, scope)
        if _bases(left.vars) != _bases(right.vars) and sorted(map(repr, _bases(left.vars))) != sorted(
                map(repr, _bases(right.vars))):
            raise self.error(
                f"{node.kind} between distributions over different variables: "
                f"{', '.join(map(var_text, left.vars))} and {', '.join(map(var_text, right.vars))}", node)

    def visit_Entropy(self, node: N.Entropy, scope):
        self._integrated(node.dist, scope)

    def visit_Expect(self, e: N.Expect, scope: "_Scope"):
        draws = self.draws[e]
        inner = scope
        for f in draws.joint.factors:
            for g in f.given:
                self.ref(g, inner)
            if self.decls[f.decl].kind == "data":
                for v in f.vars:
                    self.ref(v, inner)
                continue
            inner = inner.drawing(f.vars)
        if draws.set_var is not None:
            self.visit_bound(draws.set_size, scope)
            inner = inner.with_set(draws.set_var)
        self.visit(e.body, inner)

    def visit_bound(self, expr: Optional[N.Expr], scope, optional: bool = False):
        if expr is None:
            return
        for v in _free_vars(expr):
            if v.name not in scope.indices:
                self.add_input(var_text(v), v, optional)

    def visit_Sum(self, s, scope: "_Scope"):
        idx = s.index
        if s.lower is None and s.upper is None:
            producer = self._support_of(s)
            self.sums[s] = SumPlan("support", support_decl=producer)
            inner = scope.enumerating(idx)
            self.visit(s.body, inner)
            return
        vector_set = self._vector_set(s, scope)
        if vector_set is not None:
            self.sums[s] = SumPlan("vector", set_var=vector_set)
            self.visit(s.body, scope.vectorising(idx.name))
            return
        self.sums[s] = SumPlan("loop")
        self.visit_bound(s.lower, scope)
        seq_before = set(self.sequences)
        drawn_here = {v.name for e in s.body.walk() if isinstance(e, N.Expect)
                      for f in self.draws[e].joint.factors for v in f.vars
                      if v.index == (N.Var(idx.name),)}
        self.visit(s.body, scope.looping(idx.name, s.lower, drawn_here))
        derived = bool(self.sequences - seq_before) or bool(self.sequences)
        self.visit_bound(s.upper, scope, optional=derived and isinstance(s.upper, N.Var))

    visit_Prod = visit_Sum

    def _support_of(self, s) -> int:
        for node in s.body.walk():
            d = node.dist if isinstance(node, N.LogDensity) else node
            if isinstance(d, N.Dist) and d.vars and d.vars[0] == s.index:
                return self.resolve(d).factors[0].decl
        raise self.error(
            f"a sum over {var_text(s.index)} without bounds enumerates the values of a discrete variable, but no "
            f"distribution over {var_text(s.index)} appears in it", s)

    def _vector_set(self, s, scope) -> Optional[N.Var]:
        name = s.index.name
        uses = [v for v in s.body.walk() if isinstance(v, N.Var) and any(
            isinstance(i, N.Node) and any(isinstance(w, N.Var) and w.name == name for w in i.walk()) for i in v.index)]
        if not uses:
            return None
        found = None
        for v in uses:
            set_var = scope.sets.get(v.name)
            if set_var is None or v.index != (N.Var(name),):
                return None
            found = set_var
        rng = found.index[-1]
        if s.lower != rng.lo or s.upper != rng.hi:
            raise self.error(
                f"this sum runs over {var_text(s.index)} = {_bounds(s)}, but {var_text(found)} was drawn", s)
        return found

    # -- variable references --

    def add_input(self, name: str, node: N.Node, optional: bool = False, data: bool = False):
        if data:
            self.data_inputs.add(name)
        if optional:
            if name not in self.inputs:
                self.optional.setdefault(name, node)
        else:
            self.optional.pop(name, None)
            self.inputs.setdefault(name, node)

    def ref(self, v: N.Expr, scope: "_Scope", data: bool = True) -> None:
        """A variable whose value is needed here; `data` when it is an argument of a distribution."""
        if not isinstance(v, N.Var):
            self.visit(v, scope)
            return
        if not v.index and v.name in scope.indices:
            return
        if v in scope.drawn:
            return
        if v.name in scope.sets and len(v.index) == 1 and isinstance(v.index[0], N.Var) and (
                v.index[0].name in scope.vector):
            return
        for item in v.index:
            if isinstance(item, N.Node):
                for w in item.walk():
                    if isinstance(w, N.Var) and w.name not in scope.indices and w != v:
                        self.add_input(var_text(w), w)
        loop = scope.loop_of(v)
        if loop is not None:
            t, lower, shift, drawn_here = loop
            if v.name in drawn_here and shift > 0:
                # z_{t-1}: the previous step's draw; before the start, an input or a declared distribution.
                if isinstance(lower, N.Num):
                    for k in range(int(lower.value) - shift, int(lower.value)):
                        start = N.Var(v.name, (N.Num(float(k)),), v.mark, v.primes)
                        if not self._declared_exactly(start):
                            self.add_input(var_text(start), v, data=data)
                return
            if v.name not in self.latent_bases:
                self.sequences.add(var_text(v.base))
                self.add_input(var_text(v.base), v, data=True)
                return
        if v.name in self.latent_bases:
            raise self.error(
                f"{var_text(v)} is a sampled variable, but no enclosing expectation draws it here", v)
        self.add_input(var_text(v), v, data=data)

    def _declared_exactly(self, v: N.Var) -> bool:
        """A distribution declared over exactly this variable with no conditions (`p(z_0)`): it is drawn."""
        for d in self.decls:
            if d.kind == "dist" and d.vars == (v,) and not d.given:
                self.starts[var_text(v)] = d.index
                return True
        return False


@dataclass(frozen=True)
class _Scope:
    """What is available at a point of the walk: drawn variables, sum indices and how they are bound."""

    drawn: FrozenSet[N.Var] = frozenset()
    indices: FrozenSet[str] = frozenset()
    sets: Tuple = ()  # ((base name, set var), ...)
    vector: FrozenSet[str] = frozenset()
    loops: Tuple = ()  # ((index name, lower, frozenset of bases drawn per step), ...)

    def __post_init__(self):
        object.__setattr__(self, "sets", dict(self.sets) if not isinstance(self.sets, dict) else self.sets)

    def drawing(self, vs) -> "_Scope":
        return _Scope(self.drawn | set(vs), self.indices, tuple(self.sets.items()), self.vector, self.loops)

    def with_set(self, set_var: N.Var) -> "_Scope":
        sets = dict(self.sets)
        sets[set_var.name] = set_var
        return _Scope(self.drawn, self.indices, tuple(sets.items()), self.vector, self.loops)

    def vectorising(self, name: str) -> "_Scope":
        return _Scope(self.drawn, self.indices | {name}, tuple(self.sets.items()), self.vector | {name}, self.loops)

    def enumerating(self, var: N.Var) -> "_Scope":
        return _Scope(self.drawn | {var}, self.indices, tuple(self.sets.items()), self.vector, self.loops)

    def looping(self, name: str, lower, drawn_here) -> "_Scope":
        return _Scope(self.drawn, self.indices | {name}, tuple(self.sets.items()), self.vector,
                      self.loops + ((name, lower, frozenset(drawn_here)),))

    def loop_of(self, v: N.Var):
        """For `z_t` or `z_{t-c}` inside a loop over t: (t, lower, c, bases drawn per step)."""
        if len(v.index) != 1:
            return None
        shift = _shift(v.index[0])
        if shift is None:
            return None
        name, c = shift
        for t, lower, drawn_here in self.loops:
            if t == name:
                if v.name in drawn_here and c == 0:
                    return None if v in self.drawn else (t, lower, 0, drawn_here)
                return (t, lower, c, drawn_here)
        return None


def _shift(item) -> Optional[Tuple[str, int]]:
    """`t` -> ("t", 0); `t-1` -> ("t", 1); anything else -> None."""
    if isinstance(item, N.Var) and not item.index:
        return item.name, 0
    if isinstance(item, N.Add) and len(item.terms) == 2 and isinstance(item.terms[0], N.Var):
        other = item.terms[1]
        if isinstance(other, N.Neg) and isinstance(other.arg, N.Num) and other.arg.value == int(other.arg.value):
            return item.terms[0].name, int(other.arg.value)
    return None


def _bounds(s) -> str:
    return f"{var_text(s.lower)}..{var_text(s.upper)}"


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


def objective_of(statement: N.Expr) -> N.Expr:
    """The member of a relation chain that is the objective: the one it names (`A =: L`, `L := A`), else the
    last (`log p(x) >= E[...] = ...`, `L(x) = ...`)."""
    if isinstance(statement, N.Optimize):
        return statement
    if not isinstance(statement, N.Relation):
        return statement
    for i, op in enumerate(statement.ops):
        if op == "=:":
            return statement.members[i]
        if op == ":=":
            return statement.members[i + 1]
    return statement.members[-1]


def split_terms(objective: N.Expr) -> Tuple[Term, ...]:
    """Top-level terms with their signs; a term is named by its label or its ASCII spelling."""
    body = objective
    while isinstance(body, N.Optimize):
        body = body.body
    parts = body.terms if isinstance(body, N.Add) else (body,)
    terms = []
    for part in parts:
        sign = 1.0
        while isinstance(part, N.Neg):
            sign, part = -sign, part.arg
        name = var_text(part.label) if isinstance(part, N.Labeled) else var_text(part)
        terms.append(Term(name, sign, part))
    return tuple(terms)


def check(text: str, program: N.Program, decls: Sequence[Decl]) -> Checked:
    """Resolve `program` (parsed from `text`) against `decls`; raise FormulaCheckError with a caret on failure."""
    checker = _Checker(text, program, decls)
    statement = checker.take_factorisations()
    objective = objective_of(statement)
    checker.analyse(objective)
    players = []
    node = objective
    while isinstance(node, N.Optimize):
        players.append((node.sense, tuple(var_text(v) for v in node.over)))
        node = node.body
    optional = tuple(sorted(n for n in checker.optional if n not in checker.inputs))
    return Checked(
        text=text, program=program, statement=statement, objective=objective, terms=split_terms(objective),
        decls=tuple(decls), densities=dict(checker.densities), calls=dict(checker.calls),
        draws=dict(checker.draws), sums=dict(checker.sums), inputs=tuple(sorted(checker.inputs)),
        optional_inputs=optional, sequences=frozenset(checker.sequences),
        latents=frozenset(checker.latent_bases), data_inputs=frozenset(checker.data_inputs),
        starts=dict(checker.starts),
        players=tuple(players),
    )


@functools.lru_cache(maxsize=256)
def check_text(text: str, signatures: Tuple[Tuple[str, str], ...]) -> Checked:
    """`check` from text and (signature text, kind) pairs: the cached path of `fm.compile` and `formula check`."""
    from ..lang.parser import parse, parse_signature

    decls = []
    for i, (sig, kind) in enumerate(signatures):
        node = parse_signature(sig)
        decls.append(Decl(i, node.full_name, tuple(node.vars), tuple(node.given), kind, sig))
    return check(text, parse(text), decls)


__all__ = ["Decl", "Factor", "Joint", "Draws", "SumPlan", "Term", "Checked", "check", "check_text", "objective_of",
           "split_terms", "var_text"]
