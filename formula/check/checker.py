"""Checking: the parsed formula against the declared signatures (docs/language.md §2) -> the checked tree.

One walk over the objective, with a scope of what is drawn and which sum indices are bound, rewrites every reference
into an explicit node of `formula.check.resolved` (an input, a draw, a density of declaration i, a call of function
j, a sum evaluated in a given way) and collects the inputs a call must supply. Works on signatures alone (no
networks, no torch), so `formula check` and `fm.compile` share it; the result is cached per (text, signatures).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Sequence, Tuple

from ..errors import FormulaCheckError
from ..lang import nodes as N
from ..lang.suggest import did_you_mean, vocabulary
from ..text.printing import to_ascii as var_text  # the ASCII spelling names inputs, terms and declarations
from . import divergences as dv
from . import named
from . import resolved as R
from . import sequences
from . import time_indices
from .explicit_families import family_spec, has_references, known_families, shape_partner, unknown_shape_message
from .kinds import DeclKind
from .resolver import Decl, Draws, Resolver, _bases, free_vars
from .scope import Scope

# Explicit families the compiler evaluates are those of `explicit_families` (the parser knows more spellings); `I`
# in their arguments is the identity, so `\mathcal{N}(0, I)` and `\mathcal{N}(\mu, \sigma^2 I)` are diagonal Normals.
IDENTITY = N.Var("I")
SCHEDULE_STEP = N.Var("t", label="step")  # the variable of a schedule's signature (formula.families.schedule)
MAX_NESTED_LOOPS = 4  # step-by-step sums inside step-by-step sums cost T^depth: refuse deeper nesting


@dataclass(frozen=True)
class Checked:
    """A formula resolved against signatures: the checked tree of each term, and what a call must supply."""

    text: str
    program: N.Program
    statement: N.Expr  # the statement holding the objective (a relation chain is kept for printing)
    objective: N.Expr
    terms: Tuple[R.Term, ...]
    decls: Tuple[Decl, ...]
    inputs: Tuple[str, ...]  # names a call must supply
    optional_inputs: Tuple[str, ...]  # names that may be supplied (T when it comes from the data)
    sequences: FrozenSet[str]  # inputs used as sequences [batch, T, ...]
    data_inputs: FrozenSet[str]  # inputs that are arguments of distributions or functions: [batch, *event]
    observed: Tuple[Tuple[str, int], ...] = ()  # (input, declaration) where the input is a value of its variable
    players: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()

    def __hash__(self) -> int:  # cached by key; identity is enough
        return id(self)


class _Checker(Resolver):
    """The walk: `visit(node, scope)` returns the checked node."""

    def __init__(self, text: str, program: N.Program, decls: Sequence[Decl]):
        super().__init__(text, program, decls)
        self.inputs: Dict[str, N.Node] = {}
        self.optional: Dict[str, N.Node] = {}
        self.sequences: set = set()
        self.latent_bases: set = set()
        self.data_inputs: set = set()
        self.in_family = False  # visiting an explicit family's arguments, where `I` is the identity
        self.loops = 0  # depth of step-by-step sums around the node being visited
        self.observed: Dict[str, int] = {}  # data input -> a declaration it is an observed value of

    def analyse(self, objective: N.Expr) -> None:
        """Resolve every expectation's draws first: a variable drawn anywhere is a latent, never an input."""
        for node in objective.walk():
            if isinstance(node, N.Expect):
                item = self.written_item(node)
                while isinstance(item, N.Expect) and item.body is not node.body:  # items it stands for
                    self._analyse_item(item)
                    item = item.body
                self._analyse_item(item if isinstance(item, N.Expect) else node)

    def _analyse_item(self, node: N.Expect) -> None:
        item = self.family_item(node)
        if item is not None:
            self.latent_bases.add(_latent_key(item[0]))
            return
        self.refuse_undrawn(node)
        draws = self.resolve_draws(self.written_item(node))
        for f in draws.joint.factors:
            if self.decls[f.decl].kind is not DeclKind.DATA:
                self.latent_bases.update(_latent_key(v) for v in f.vars)

    def visit(self, node: N.Node, scope: Scope):
        """The checked form of `node`: a registered check first (`register_check`), else the built-in rule."""
        extension = _CHECKS.get(type(node))
        if extension is not None:
            return extension(node, self, scope)
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.error(f"{type(node).__name__} cannot be evaluated yet (it parses, and prints)", node)
        return method(node, scope)

    def rebuild(self, node: N.Node, scope: Scope):
        """An arithmetic node with checked children (same type, same span)."""
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name == "span":
                continue
            if isinstance(value, N.Node):
                changes[f.name] = self.visit(value, scope)
            elif isinstance(value, tuple) and any(isinstance(v, N.Node) for v in value):
                changes[f.name] = tuple(self.visit(v, scope) if isinstance(v, N.Node) else v for v in value)
        return dataclasses.replace(node, **changes) if changes else node

    visit_Add = visit_Neg = visit_Mul = visit_Div = visit_Pow = visit_StopGrad = rebuild

    def visit_Norm(self, node: N.Norm, scope):
        if node.ord is not None and not isinstance(node.ord, N.Num):
            raise self.error("a norm's order must be a number", node.ord)
        return dataclasses.replace(node, arg=self.visit(node.arg, scope))

    def visit_Num(self, node, scope):
        return node

    def visit_Labeled(self, node, scope):
        return self.visit(node.body, scope)

    def visit_Optimize(self, node, scope):
        return self.visit(node.body, scope)

    def visit_Apply(self, node: N.Apply, scope):
        if node.fn == "sigmoid":
            fn = self.function_for("sigma", len(node.args))
            if fn is not None:
                return R.Call(node, fn.index, tuple(self.visit(a, scope) for a in node.args))
        return self.rebuild(node, scope)

    def visit_Var(self, v: N.Var, scope: Scope):
        if self.in_family and v == IDENTITY:
            return N.Num(1.0)
        return self.ref(v, scope, data=False)

    def visit_Prod(self, node, scope):
        raise self.error("products over an index are understood in factorisations only", node)

    # -- declared names used as values --

    def function_call(self, d: N.Dist, scope: Scope) -> Optional[R.Call]:
        if d.given:
            return None
        fn = self.function_for(d.full_name, len(d.vars)) or (
            self.function_for(d.name, len(d.vars)) if d.sub else None)
        if fn is None:
            return None
        return R.Call(d, fn.index, tuple(self.ref(a, scope) for a in d.vars))

    def visit_Dist(self, d: N.Dist, scope):
        sub = named.expand(self, d, scope)  # \mathcal{L}(x, y) of a sub-objective line
        if sub is not None:
            return sub
        return self.function_call(d, scope) or self.density(d, scope, integrated=False)

    def density(self, d: N.Dist, scope: Scope, integrated: bool) -> R.Density:
        """A use of a declared distribution: its variables are values (or integrated over), its conditions are
        references."""
        joint = self.resolve(d)
        inside = set(joint.vars) if integrated else set()
        bounds = []
        for f in joint.factors:
            values = tuple(None if integrated else self.ref(v, scope) for v in f.vars)
            for ref in values:
                if isinstance(ref, R.InputRef):
                    self.observed.setdefault(ref.name, f.decl)
            given = tuple(_INTEGRATED if g in inside else self.ref(g, scope) for g in f.given)
            bounds.append(R.Bound(f, values, given))
        return R.Density(d, tuple(bounds))

    def visit_LogDensity(self, node: N.LogDensity, scope):
        if isinstance(node.dist, N.Family):
            fam = self.family(node.dist, scope, over=True)
            return R.FamilyLogDensity(node, fam)
        call = self.function_call(node.dist, scope)
        if call is not None:  # `log D(x)` of a declared function D
            return N.Apply("log", (call,), span=node.span)
        return R.LogDensity(node, self.density(node.dist, scope, integrated=False))

    def visit_Family(self, fam: N.Family, scope):
        """A family's density value (`\\mathcal{N}(x \\mid \\mu, \\sigma^2 I)` in a product): exp of its log-density."""
        return N.Apply("exp", (R.FamilyLogDensity(fam, self.family(fam, scope, over=True)),), span=fam.span)

    def family(self, fam: N.Family, scope: Scope, over: bool) -> R.ExplicitFamily:
        """An explicit family (`\\mathcal{N}(0, I)`): known to the compiler, its parameters are references
        (`I`, the identity, is 1); `over` when it is a density of variables (`\\mathcal{N}(x | ...)`)."""
        spec = family_spec(fam.family)
        if spec is None:
            raise self.error(f"explicit {fam.family} families are not evaluated yet (known: {known_families()}): "
                             "declare the distribution", fam)
        if over and len(fam.vars) != 1:
            raise self.error(f"say what this density is of, one variable: {spec.usage}"
                             if not fam.vars else "an explicit family here is over one variable", fam)
        for v in fam.vars:
            if not isinstance(v, N.Var):
                raise self.error(f"an explicit family is a density of a variable (write {spec.usage})", v)
        if not spec.arity_ok(len(fam.args)):
            raise self.error(f"{spec.arity_text()}", fam)
        vars_ = tuple(self.ref(v, scope) for v in fam.vars) if over else ()
        self.in_family = True
        try:
            args = tuple(self.visit(a, scope) for a in fam.args)
        finally:
            self.in_family = False
        identity = any(IDENTITY in list(a.walk()) for a in fam.args)
        return R.ExplicitFamily(fam, fam.family, vars_, args, identity)

    def family_draw(self, var: N.Var, fam: N.Family, body: N.Expr, scope: Scope) -> R.FamilyDraw:
        """A draw from an explicit family: its checked parameters, and what gives it its shape (docs/language.md,
        "Explicit families"): its parameters, else what it is added to, else one value per example."""
        checked = self.family(fam, scope, over=False)
        partner = shape_partner(body, var, lambda t: self._available(t, scope))
        like = self.visit(partner, scope) if partner is not None else None
        if like is not None and checked.identity:  # a vector draw takes its shape: the inputs in it are [batch, *event]
            self.data_inputs.update(v.name for v in _checked_walk(like) if isinstance(v, R.InputRef))
        if like is None and checked.identity and not has_references(fam):
            raise self.error(unknown_shape_message(var_text(var), var_text(fam)), fam)
        return R.FamilyDraw(var, checked, like, partner)

    def _available(self, expr: N.Expr, scope: Scope) -> bool:
        """Whether `expr` can be evaluated where a draw is made: every variable in it is drawn already, an input
        or a sum index, and it holds no expectation, sum or divergence of its own."""
        for node in expr.walk():
            if isinstance(node, (N.Expect, N.Sum, N.Prod, N.Divergence, N.Entropy, N.Grad)):
                return False
            if isinstance(node, N.Var) and not (node in scope.drawn or node.name in scope.indices
                                                or _latent_key(node) not in self.latent_bases):
                return False
        return True

    def written_item(self, e: N.Expect) -> N.Expect:
        """A bare item whose variable has a Draw statement (`t \\sim \\mathcal{U}\\{1, \\ldots, T\\}` before the
        objective, or a where item) as the item it stands for (`E_{t \\sim \\mathcal{U}\\{1, \\ldots, T\\}}`)."""
        e = self._lone_name(e)
        over = e.over
        if over is not None and len(over.dists) == 1 and isinstance(over.dists[0], N.Family) and len(
                over.draws) > 1:  # E_{x, \\tilde x \\sim \\mathcal{N}(x, \\sigma^2 I)}: a family draws one variable
            body = N.Expect(N.Sampler(over.dists, over.draws[-1:], span=over.span), e.body, True, span=e.span)
            for v in reversed(over.draws[1:-1]):
                body = N.Expect(N.Sampler((), (v,), span=over.span), body, True, span=e.span)
            return N.Expect(N.Sampler((), over.draws[:1], span=over.span), body, e.joined, span=e.span)
        if over is None or over.dists or len(over.draws) != 1:
            return e
        stmt = self.sampler_of(over.draws[0])
        if not isinstance(stmt, N.Draw) or len(stmt.vars) != 1:
            return e
        return N.Expect(N.Sampler((stmt.dist,), over.draws, span=over.span), e.body, e.joined, span=e.span)

    def _lone_name(self, e: N.Expect) -> N.Expect:
        """`E_t[f]`, `E_{\\epsilon}[f]`, `E_{x_0}[f]`: a lone name that no declaration has is the bare item of that
        variable (a Draw statement, a definition or a declaration over it says how it is drawn)."""
        over = e.over
        if over is None or len(over.dists) != 1 or over.draws:
            return e
        d = over.dists[0]
        if not isinstance(d, N.Dist) or d.vars or d.given or d.params or self.candidates(d) or any(
                x.name == d.full_name for x in self.decls):
            return e
        index = () if d.sub is None else ((N.Num(float(d.sub)),) if d.sub.isdigit() else (N.Var(d.sub),))
        var = N.Var(d.name, index, d.mark, span=d.span)
        if self.sampler_of(var) is None and self.defs.of_variable(var) is None and not any(
                len(x.vars) == 1 and _latent_key(x.vars[0]) == _latent_key(var) for x in self.decls):
            return e  # nothing would draw it: the resolver's message about E_q says what is missing
        return N.Expect(N.Sampler((), (var,), span=over.span), e.body, e.joined, span=e.span)

    def refuse_undrawn(self, e: N.Expect) -> None:
        """A bare item (`E_{\\epsilon}`) that no Draw statement, definition or declaration draws is an error."""
        over = e.over
        if over is None or over.dists or not over.draws or self.written_item(e) is not e or \
                self.defined_draws(e) is not None:
            return
        v = over.draws[0]
        name = var_text(v)
        raise self.error(f"nothing says how {name} is drawn: write it as a statement before the objective (or a "
                         f"where item), e.g. {name} \\sim \\mathcal{{N}}(0, I) or {name} \\sim "
                         f"\\mathcal{{U}}\\{{1, \\ldots, T\\}}, define it ({name} = ...), or declare a "
                         f"distribution over it (fm.Data(\"p_data({name})\") for the data)", v)

    def family_item(self, e: N.Expect):
        """(variable, family) when the expectation samples an explicit family (`E_{\\epsilon \\sim
        \\mathcal{N}(0, I)}`), else None."""
        over = self.written_item(e).over
        if over is None or not any(isinstance(d, N.Family) for d in over.dists):
            return None
        if len(over.dists) != 1:
            raise self.error("an explicit family is sampled on its own: write one item per family, "
                             "E_{z \\sim q(z|x), \\epsilon \\sim \\mathcal{N}(0, I)}", over)
        (fam,) = over.dists
        drawn = over.draws or fam.vars
        if len(drawn) != 1 or not isinstance(drawn[0], N.Var) or any(
                isinstance(i, N.SLICES) for i in drawn[0].index):
            raise self.error(f"say which one variable is drawn from {var_text(fam)}: "
                             f"E_{{\\epsilon \\sim {var_text(fam)}}}[...]", fam)
        return drawn[0], fam

    # -- divergences and entropy --

    def visit_Divergence(self, node: N.Divergence, scope):
        spec = dv.spec_of(node.kind)
        if spec is None:
            raise self.error(f"the {node.kind} divergence parses, but no estimator for it is registered yet "
                             f"(known: {dv.known()})", node)
        left = self.divergence_side(node.left, spec.left, scope)
        right = self.divergence_side(node.right, spec.right, scope)
        if isinstance(left, R.Density) and isinstance(right, R.Density):
            lv, rv = left.joint.vars, right.joint.vars
            if _bases(lv) != _bases(rv) and sorted(map(repr, _bases(lv))) != sorted(map(repr, _bases(rv))):
                raise self.error(f"{node.kind} between distributions over different variables: "
                                 f"{', '.join(map(var_text, lv))} and {', '.join(map(var_text, rv))}", node)
        return R.Divergence(node, spec.name, left, right)

    def divergence_side(self, d: N.Expr, needs: dv.Needs, scope: Scope):
        if isinstance(d, N.Family):
            if not needs & dv.Needs.FAMILY:
                raise self.error("an explicit family cannot be this argument: declare the distribution", d)
            return self.family(d, scope, over=False)
        if not isinstance(d, N.Dist):
            raise self.error("a divergence's arguments are distributions (write KL(q(z|x) || p(z)))", d)
        density = self.density(d, scope, integrated=True)
        if needs == dv.Needs.DENSITY:
            for b in density.factors:
                if self.decls[b.decl].kind is DeclKind.DATA:
                    raise self.error("the empirical distribution of the data has no density", d)
        return density

    def visit_Entropy(self, node: N.Entropy, scope):
        if isinstance(node.dist, N.Family):
            fam = self.family(node.dist, scope, over=False)
            if fam.identity and not has_references(node.dist):
                raise self.error(f"the entropy of {var_text(node.dist)} depends on its dimension, which nothing here "
                                 "gives: write the parameters with their shape, or declare it with shape=", node.dist)
            return R.FamilyEntropy(node, fam)
        if not isinstance(node.dist, N.Dist):
            raise self.error("an entropy is of a distribution (write H[q(z|x)])", node.dist)
        return R.Entropy(node, self.density(node.dist, scope, integrated=True))

    # -- expectations --

    def visit_Expect(self, e: N.Expect, scope: Scope):
        prefixed = sequences.check_prefix_expect(self, e, scope)  # E_{q(z_{<l}|x)}[...]: level by level
        if prefixed is not None:
            return prefixed
        written = self.written_item(e)
        if written is not e and self.family_item(written) is None:  # E_z with z \sim q(z|x) on its own line
            return self.visit(written, scope)
        self.refuse_undrawn(e)
        item = self.family_item(e)
        if item is not None:
            var, fam = item
            if var in scope.drawn:
                raise self.error(f"{var_text(var)} is already drawn by an enclosing expectation; a second draw needs "
                                 f"its own name (e.g. {var_text(var)}')", e)
            draw = self.family_draw(var, fam, e.body, scope)
            return R.Expectation(e, (draw,), self.visit(e.body, scope.drawing((var,))))
        draws: Draws = self.resolve_draws(e)
        inner = scope
        steps = []
        for f in draws.joint.factors:
            given = tuple(self.ref(g, inner) for g in f.given)
            if self.decls[f.decl].kind is DeclKind.DATA:  # the batch's values: one step per variable, (x, y)
                steps.extend(R.Draw(R.Bound(R.Factor(f.decl, (v,), f.given), (self.ref(v, inner),), given), data=True)
                             for v in f.vars)
                continue
            if len(f.vars) != 1:
                raise self.error("a declaration over several variables cannot be sampled from yet", f.vars[0])
            if f.vars[0] in inner.drawn:
                raise self.error(f"{var_text(f.vars[0])} is already drawn by an enclosing expectation; a second "
                                 f"draw needs its own name (e.g. {var_text(f.vars[0])}')", e)
            size = None
            if draws.set_var is not None and draws.set_var == f.vars[0]:
                size = self.bound(draws.set_size, scope)
            steps.append(R.Draw(R.Bound(f, (None,), given), set_size=size))
            inner = inner.drawing(f.vars)
        if draws.set_var is not None:
            inner = inner.with_set(draws.set_var)
        return R.Expectation(e, tuple(steps), self.visit(e.body, inner))

    def drawn_by(self, e: N.Expect) -> Tuple[N.Var, ...]:
        """The variables an expectation draws (not the data it reads)."""
        item = self.family_item(e)
        if item is not None:
            return (item[0],)
        return tuple(self.resolve_draws(self.written_item(e)).joint.vars)

    # -- sums --

    def bound(self, expr: Optional[N.Expr], scope: Scope, optional: bool = False):
        """A sum's bound or a set size (numbers, sum indices and scalar inputs): its inputs are recorded, the
        expression is kept as written (the compiler evaluates it with the indices bound at that point)."""
        if expr is None:
            return None
        for v in free_vars(expr):
            if v.name not in scope.indices:
                self.add_input(var_text(v), v, optional)
        for node in expr.walk():
            if not isinstance(node, (N.Num, N.Var, N.Add, N.Neg)) or (isinstance(node, N.Var) and node.index):
                raise self.error("this bound cannot be evaluated (use numbers, sum indices and scalars)", node)
        return expr

    def visit_Sum(self, s: N.Sum, scope: Scope):
        idx = s.index
        if s.lower is None and s.upper is None:
            return self.support_sum(s, scope)
        if s.lower is None or s.upper is None:
            raise self.error(f"a sum over {var_text(idx)} needs both bounds, \\sum_{{{var_text(idx)}=1}}^{{T}}, "
                             "or none to enumerate a discrete variable", s)
        vector_set = self._vector_set(s, scope)
        if vector_set is not None:
            return R.VectorSum(s, idx.name, vector_set, self.visit(s.body, scope.vectorising(idx.name)))
        return self.loop_sum(s, scope)

    def support_sum(self, s: N.Sum, scope: Scope) -> R.SupportSum:
        for node in s.body.walk():
            d = node.dist if isinstance(node, N.LogDensity) else node
            if isinstance(d, N.Dist) and d.vars and d.vars[0] == s.index:
                for f in self.resolve(d).factors:
                    if f.vars == (s.index,):
                        given = tuple(self.ref(g, scope) for g in f.given)
                        body = self.visit(s.body, scope.drawing((s.index,)))
                        return R.SupportSum(s, s.index, R.Bound(f, (None,), given), body)
        raise self.error(
            f"a sum over {var_text(s.index)} without bounds enumerates the values of a discrete variable, but no "
            f"distribution over {var_text(s.index)} appears in it", s)

    def loop_sum(self, s: N.Sum, scope: Scope) -> R.LoopSum:
        idx = s.index
        if self.loops >= MAX_NESTED_LOOPS:
            raise self.error(f"more than {MAX_NESTED_LOOPS} step-by-step sums nested in each other: their cost "
                             "multiplies (T^depth); write the inner sums outside", s)
        lower = self.bound(s.lower, scope)
        seq_before = set(self.sequences)
        drawn_here = {v.name for e in s.body.walk() if isinstance(e, N.Expect) for v in self.drawn_by(e)
                      if v.index == (N.Var(idx.name),)}
        self.loops += 1
        try:
            body = self.visit(s.body, scope.looping(idx.name, s.lower, drawn_here))
        finally:
            self.loops -= 1
        derived = bool(self.sequences - seq_before) or bool(self.sequences)
        upper = self.bound(s.upper, scope, optional=derived and isinstance(s.upper, N.Var))
        return R.LoopSum(s, idx.name, lower, upper, body, tuple(sorted(self.sequences)),
                         uses_index=_uses_index(s.body, idx.name))

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
            raise self.error(f"this sum runs over {var_text(s.index)} = {var_text(s.lower)}..{var_text(s.upper)}, "
                             f"but {var_text(found)} was drawn", s)
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

    def ref(self, v: N.Expr, scope: Scope, data: bool = True):
        """The checked reference of a variable whose value is needed here (`data`: an argument of a declaration)."""
        if not isinstance(v, N.Var):
            return self.visit(v, scope)
        scheduled = self.schedule_ref(v, scope)  # \bar\alpha_t of a declared fm.Schedule
        if scheduled is not None:
            return scheduled
        timed = time_indices.reference(self, v, scope)  # x_{t_2}, b_{t_1} at a time index: check.time_indices
        if timed is not None:
            return timed
        hooked = sequences.reference(self, v, scope)  # x_{<t}, z_{<l}, z_t of a drawn z_{\le T}: check.sequences
        if hooked is not None:
            return hooked
        if not v.index and v.name in scope.indices:
            return R.IndexRef(v, v.name)
        if v in scope.drawn:
            return R.DrawnRef(v, v)
        defined = self.defined_ref(v, scope)  # a defined variable (\hat x = ..., x_t = ...): formula.check.definitions
        if defined is not None:
            return defined
        self.refuse_unscheduled(v, scope)
        if v.name in scope.sets and len(v.index) == 1 and isinstance(v.index[0], N.Var) and (
                v.index[0].name in scope.vector):
            return R.DrawnRef(v, v)
        if v.index and all(isinstance(i, N.Var) and not i.index and i.name not in scope.indices for i in v.index):
            # a letter subscript that no sum binds is part of the name: x_q, x_l, lambda_x are inputs of their own
            self.add_input(var_text(v), v, data=data)
            return R.InputRef(v, var_text(v))
        for item in v.index:
            if isinstance(item, N.Node):
                for w in item.walk():
                    if isinstance(w, N.Var) and w.name not in scope.indices and w != v:
                        self.add_input(var_text(w), w)
        loop = scope.loop_of(v)
        if loop is not None:
            return self.step_ref(v, loop, data)
        if _latent_key(v) in self.latent_bases:
            raise self.error(f"{var_text(v)} is a sampled variable, but no enclosing expectation draws it here", v)
        if any(isinstance(i, N.SLICES) for i in v.index):
            self.add_input(var_text(v.base), v, data=True)
            return R.SliceRef(v, var_text(v.base))
        self.add_input(var_text(v), v, data=data)
        if v.index:
            return R.StepRef(v, v, var_text(v.base))
        return R.InputRef(v, var_text(v))

    def schedule_ref(self, v: N.Var, scope: Scope) -> Optional[R.Call]:
        """`\\bar\\alpha_t`: the value of the declared schedule `\\bar\\alpha` at step t (a draw, a sum index, a number),
        as a call of it (a schedule's signature is over SCHEDULE_STEP, which no parsed signature has)."""
        if len(v.index) != 1 or isinstance(v.index[0], N.SLICES) or v in scope.drawn:
            return None
        name = var_text(v.base)
        for d in self.decls:
            if d.kind is DeclKind.FUNCTION and d.name == name and len(d.vars) == 1 and d.vars[0] == SCHEDULE_STEP:
                return R.Call(v, d.index, (self.ref(v.index[0], scope, data=False),))  # a step, not data
        return None

    def refuse_unscheduled(self, v: N.Var, scope: Scope) -> None:
        """A variable indexed by a drawn step with no schedule declared is an error, not an input of its own."""
        if len(v.index) != 1 or isinstance(v.index[0], N.SLICES):
            return
        drawn = [w for w in v.index[0].walk() if isinstance(w, N.Var) and w in scope.drawn]
        if drawn and _latent_key(v) not in self.latent_bases and scope.loop_of(v) is None:
            name = var_text(v.base)
            raise self.error(f"{var_text(v)} is indexed by the drawn {var_text(drawn[0])}: declare the values it "
                             f"takes at each step, fm.Schedule(\"{name}\", values) (values[0] at "
                             f"{var_text(drawn[0])} = 1)", v)

    def refuse_typos(self) -> None:
        """A scalar input one edit away from a keyword or a declared name (`lg`, `Log`, `KL_`) is a typo that
        would silently change the formula's meaning: an error that says what was probably meant."""
        declared = [d.name for d in self.decls]
        for name, node in self.inputs.items():
            if name in self.data_inputs or name in declared:
                continue
            meant = did_you_mean(name, vocabulary() + declared)
            if meant is not None:
                raise self.error(f"{name} is not declared and would be an input; did you mean {meant}?", node)

    def step_ref(self, v: N.Var, loop, data: bool) -> R.StepRef:
        _, lower, shift, drawn_here = loop
        if v.name in drawn_here and shift > 0:
            # z_{t-1}: the previous step's draw; before the start, an input or a declared distribution.
            starts = []
            if isinstance(lower, N.Num):
                for k in range(int(lower.value) - shift, int(lower.value)):
                    start = N.Var(v.name, (N.Num(float(k)),), v.mark, v.primes)
                    decl = self._declared_start(start)
                    if decl is None:
                        self.add_input(var_text(start), v, data=data)
                    else:
                        starts.append((var_text(start), decl))
            return R.StepRef(v, v, var_text(v.base), tuple(starts))
        if _latent_key(v) in self.latent_bases:
            raise self.error(f"{var_text(v)} is a sampled variable, but no enclosing expectation draws it here", v)
        self.sequences.add(var_text(v.base))
        self.add_input(var_text(v.base), v, data=True)
        return R.StepRef(v, v, var_text(v.base))

    def _declared_start(self, v: N.Var) -> Optional[int]:
        """A distribution declared over exactly this variable with no conditions (`p(z_0)`): it is drawn."""
        for d in self.decls:
            if d.kind is DeclKind.DISTRIBUTION and d.vars == (v,) and not d.given:
                return d.index
        return None


_INTEGRATED = None  # the reference of a condition drawn inside the same joint (integrated over with it)

_CHECKS: Dict[type, object] = {}


def register_check(*types: type):
    """Register `fn(node, checker, scope) -> checked node` for AST node types: how a construct the built-in checker
    does not know (or one to override) is checked. `checker.visit(child, scope)` checks a child, `checker.ref(var,
    scope)` resolves a variable, `checker.error(message, node)` raises with a caret; pair it with a compiler
    builder for the checked node it returns (`formula.compiler.registry.builds`)."""

    def deco(fn):
        for t in types:
            _CHECKS[t] = fn
        return fn

    return deco


def _latent_key(v: N.Var) -> tuple:
    """What makes two uses the same sampled variable whatever their index: the letter with its decoration and
    primes (a drawn x-hat does not make the plain x a latent)."""
    return (v.name, v.mark, v.primes)


def _checked_walk(node):
    """The nodes of a checked expression: AST nodes with checked children, and checked nodes' fields."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, N.Node):
            stack.extend(n.children())
        elif isinstance(n, R.Checked_):
            for f in dataclasses.fields(n):
                value = getattr(n, f.name)
                stack.extend(value if isinstance(value, tuple) else (value,))


def _uses_index(node: N.Node, name: str) -> bool:
    """Whether `node` uses sum index `name` freely (a sum binding the same name shadows it in its body)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, N.Var) and n.name == name and not n.index:
            return True
        if isinstance(n, (N.Sum, N.Prod)) and n.index.name == name:
            stack.extend(b for b in (n.lower, n.upper) if b is not None)
            continue
        stack.extend(n.children())
    return False


def objective_of(statement: N.Expr) -> N.Expr:
    """The member of a relation chain that is the objective: the one it names (`A =: L`, `L := A`), else the
    last (`log p(x) >= E[...] = ...`, `L(x) = ...`)."""
    if isinstance(statement, N.Optimize):  # \min_G \max_D V(D, G) = ...: the prefix over the chain's objective
        body = objective_of(statement.body)
        return statement if body is statement.body else dataclasses.replace(statement, body=body)
    if not isinstance(statement, N.Relation):
        return statement
    for i, op in enumerate(statement.ops):
        if op == "=:":
            return statement.members[i]
        if op == ":=":
            return statement.members[i + 1]
    return statement.members[-1]


def split_terms(objective: N.Expr):
    """Top-level terms with their signs: (name, sign, AST); a term is named by its label or its ASCII spelling, and
    a name that repeats gets its position (`KL(q || p)`, `KL(q || p) [2]`)."""
    body = objective
    while isinstance(body, N.Optimize):
        body = body.body
    parts = body.terms if isinstance(body, N.Add) else (body,)
    terms, seen = [], {}
    for part in parts:
        sign = 1.0
        while isinstance(part, N.Neg):
            sign, part = -sign, part.arg
        name = var_text(part.label) if isinstance(part, N.Labeled) else var_text(part)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} [{seen[name]}]"
        terms.append((name, sign, part))
    return terms


def check(text: str, program: N.Program, decls: Sequence[Decl]) -> Checked:
    """Resolve `program` (parsed from `text`) against `decls`; raise FormulaCheckError with a caret on failure."""
    checker = _Checker(text, program, decls)
    statement = checker.take_factorisations()
    objective = objective_of(statement)
    for part in (*(d.value for d in checker.defs.variables.values()), objective):  # definition lines too
        unevaluated.refuse(checker, part)  # integrals, \arg\min, f^*(t) ...: parsed, printed, not evaluated
    checker.analyse(objective)
    terms = tuple(R.Term(name, sign, checker.visit(part, Scope()), part)
                  for name, sign, part in split_terms(objective))
    players = []
    node = objective
    while isinstance(node, N.Optimize):
        players.append((node.sense, tuple(var_text(v) for v in node.over)))
        node = node.body
    checker.refuse_typos()
    optional = tuple(sorted(n for n in checker.optional if n not in checker.inputs))
    return Checked(
        text=text, program=program, statement=statement, objective=objective, terms=terms, decls=tuple(decls),
        inputs=tuple(sorted(checker.inputs)), optional_inputs=optional, sequences=frozenset(checker.sequences),
        data_inputs=frozenset(checker.data_inputs), observed=tuple(sorted(checker.observed.items())),
        players=tuple(players),
    )


@functools.lru_cache(maxsize=256)
def check_text(text: str, signatures: Tuple[Tuple[str, str], ...]) -> Checked:
    """`check` from text and (signature text, kind) pairs: the cached path of `fm.compile` and `formula check`."""
    from ..lang.parser import parse, parse_signature

    decls = []
    for i, (sig, kind) in enumerate(signatures):
        node = parse_signature(sig)
        decls.append(Decl(i, node.full_name, tuple(node.vars), tuple(node.given), DeclKind.of(kind), sig))
    return check(text, parse(text), decls)


__all__ = ["Decl", "Checked", "check", "check_text", "register_check", "objective_of", "split_terms", "var_text", "FormulaCheckError",
           "IDENTITY"]

from . import concat, jacobian, nabla, sample_divergences, set_sums  # noqa: E402,F401  (built-in registrations: [a, b], log-det, \nabla, MMD, sums over sets)
from . import unevaluated  # noqa: E402  (what parses but is not evaluated: a check error naming it)
from . import time_sums  # noqa: E402,F401  (\sum_t without bounds over the steps of a sequence: t = 1..T)
