"""Compiling: a checked formula becomes a tree of small Python closures over torch, wrapped in an nn.Module.

Each AST node is turned into one closure `fn(ctx) -> Tensor` once per (text, signatures, families, options);
the closures refer to distributions by position, so the compiled plan is cached and shared by every objective
compiled from the same text. A call runs the closures on a fresh context holding the inputs, the trace of
draws, the bound sum indices and a per-call memo of conditioned distributions (an encoder used by both an
expectation and a KL runs once).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..estimators import core as est
from ..lang import nodes as N
from ..check.checker import IDENTITY, Checked, Decl, Draws, Factor, Joint, check, var_text
from ..errors import FormulaCheckError, FormulaError, FormulaInputError

Fn = Callable[["_Ctx"], Any]
VECTOR = object()  # the value of a sum index that runs along a tensor dimension


# --- the runtime context ----------------------------------------------------------------------------------


class _Ctx:
    """Everything one evaluation needs: inputs, draws so far, bound sum indices, memoised conditionals.

    The memo is keyed by declaration and by the trace keys and write versions of the conditioning values, not by
    tensor identity, so torch.compile can trace a call without guarding on `id()` of its inputs.
    """

    __slots__ = ("decls", "inputs", "trace", "versions", "clock", "env", "n", "memo", "lead", "sequences")

    def __init__(self, decls, inputs, n, sequences):
        self.decls = decls
        self.inputs = inputs
        self.trace: Dict[tuple, torch.Tensor] = {}
        self.versions: Dict[tuple, int] = {}
        self.clock = 0
        self.env: Dict[str, Any] = {}
        self.n = n
        self.memo: Dict[tuple, Any] = {}
        self.lead = 1
        self.sequences = sequences

    def put(self, key: tuple, value) -> None:
        """Write a draw (or a sequence step) into the trace; conditionals memoised on the old value expire."""
        self.clock += 1
        self.trace[key] = value
        self.versions[key] = self.clock

    def drop(self, key: tuple, saved) -> None:
        """Restore the trace entry a scope shadowed (or remove it)."""
        if saved is None:
            self.clock += 1
            self.trace.pop(key, None)
            self.versions[key] = self.clock
        else:
            self.put(key, saved)


# --- plan records for explain() ---------------------------------------------------------------------------


@dataclass
class _Explain:
    lines: List[str]

    def add(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)


@dataclass(frozen=True)
class Family:
    """What the compiler needs to know of a declaration's family, taken from its class."""

    kind: str  # "dist", "data", "function"
    family: Optional[type]  # the torch.distributions class
    reparameterised: bool
    discrete: bool
    label: str  # e.g. "Normal"


def kind_of(decl) -> str:
    """"data" for the empirical distribution, "function" for a declared network, else "dist"."""
    return _family_of_type(type(decl)).kind


def family_of(decl) -> Family:
    """What the compiler needs of a declaration: read from its class (families are classes)."""
    return _family_of_type(type(decl))


@functools.lru_cache(maxsize=None)
def _family_of_type(cls: type) -> Family:
    from ..families.declarations import Data, Function

    kind = "data" if issubclass(cls, Data) else "function" if issubclass(cls, Function) else "dist"
    return Family(kind, getattr(cls, "family", None), bool(getattr(cls, "has_rsample", False)),
                  bool(getattr(cls, "discrete", False)), cls.__name__)


# --- the builder ------------------------------------------------------------------------------------------


_BUILDERS: Dict[type, Callable] = {}


def builds(*types):
    """Register a builder method for AST node types (the dispatch table of `_Builder.build`)."""

    def deco(fn):
        for t in types:
            _BUILDERS[t] = fn
        return fn

    return deco


_ELEMENTWISE: Dict[str, Callable[..., torch.Tensor]] = {
    "log": torch.log,
    "exp": torch.exp,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": torch.nn.functional.softplus,
    "det": torch.linalg.det,
    "transpose": lambda a: a.transpose(-1, -2),
}


# The same functions on Python numbers, for constant sub-expressions (no tensor is made on a default device).
_ON_NUMBERS: Dict[str, Callable[[float], float]] = {
    "log": math.log,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "abs": abs,
    "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)),
    "tanh": math.tanh,
    "softplus": lambda v: math.log1p(math.exp(v)),
}


class _Builder:
    """Turns checked AST nodes into closures; one instance per compiled plan."""

    def __init__(self, checked: Checked, families: Tuple[Family, ...], samples: int, analytic_kl: bool):
        self.c = checked
        self.fam = families
        self.samples = samples
        self.analytic_kl = analytic_kl
        self.explain = _Explain([])
        self.depth = 0
        self._identity = False  # building an explicit family's arguments, where `I` is the identity

    def error(self, msg: str, node: N.Node) -> FormulaCheckError:
        span = node.span
        return FormulaCheckError(msg, self.c.text, (span.start, span.end) if span else None)

    def build(self, node: N.Node) -> Fn:
        builder = _BUILDERS.get(type(node))
        if builder is None:
            raise self.error(f"{type(node).__name__} parses and prints, but cannot be evaluated yet", node)
        return builder(self, node)

    def sig(self, f: Factor) -> str:
        d = self.c.decls[f.decl]
        name, _, sub = d.name.partition("_")
        return var_text(N.Dist(name, f.vars, f.given, sub or None))

    # -- values --

    @builds(N.Num)
    def b_num(self, node: N.Num) -> Fn:
        value = node.value
        return lambda ctx: value

    @builds(N.Var)
    def b_var(self, v: N.Var) -> Fn:
        if v == IDENTITY and self._identity:  # `I` inside an explicit family's covariance
            return lambda ctx: 1.0
        return self.var_lookup(v)

    def index_fn(self, item) -> Callable[["_Ctx"], Any]:
        if isinstance(item, N.Num):
            k = int(item.value)
            return lambda ctx: k
        if isinstance(item, N.Var) and not item.index:
            name = item.name
            iname = var_text(item)

            def idx(ctx):
                if name in ctx.env:
                    return ctx.env[name]
                return _as_int(ctx.inputs, iname, item, self.c.text)

            return idx
        if isinstance(item, N.Add):
            parts = [self.index_fn(t) for t in item.terms]
            return lambda ctx: _vec_or(sum, [p(ctx) for p in parts])
        if isinstance(item, N.Neg):
            inner = self.index_fn(item.arg)
            return lambda ctx: _vec_or(lambda v: -v[0], [inner(ctx)])
        raise self.error("this index cannot be evaluated (use numbers, sum indices and scalars)", item)

    def key_fn(self, v: N.Var) -> Callable[["_Ctx"], tuple]:
        """The trace key of a variable at this point: its name with its indices evaluated (`z_t` at t=3)."""
        if not v.index:
            key = (v.name, (), v.mark, v.primes)
            return lambda ctx: key
        idx = [self.index_fn(i) for i in v.index]
        name, mark, primes = v.name, v.mark, v.primes
        return lambda ctx: (name, tuple(f(ctx) for f in idx), mark, primes)

    def var_lookup(self, v: N.Var) -> Fn:
        """A variable's value: a draw in the trace, an input, a step of a sequence input, or a sum index."""
        text = self.c.text
        if not v.index:
            key = (v.name, (), v.mark, v.primes)
            iname = var_text(v)

            def plain(ctx):
                t = ctx.trace.get(key)
                if t is not None:
                    return t
                if v.name in ctx.env:
                    return ctx.env[v.name]
                value = ctx.inputs.get(iname)
                if value is None:
                    raise FormulaInputError(f"no value for {iname}: pass {iname}=...", text, _span(v))
                return value

            return plain
        idx = [self.index_fn(i) if not isinstance(i, (N.Range, N.Before)) else None for i in v.index]
        if any(i is None for i in idx):
            base = var_text(v.base)
            return lambda ctx: _lookup_input(ctx, base, v, text)
        base_name = var_text(v.base)
        name, mark, primes = v.name, v.mark, v.primes
        starts = self.c.starts

        def indexed(ctx):
            ints = tuple(f(ctx) for f in idx)
            key = (name, ints, mark, primes)
            t = ctx.trace.get(key)
            if t is not None:
                return t
            concrete = var_text(N.Var(name, tuple(N.Num(float(i)) for i in ints), mark, primes))
            value = ctx.inputs.get(concrete)
            if value is not None:
                return value
            start = starts.get(concrete)
            if start is not None:  # z_0 with a declared p(z_0): drawn once per call, at first use
                d = ctx.decls[start].condition()
                t = est.draw(d, _one_per_example(d, ctx.n), self.fam[start].reparameterised)
                ctx.put(key, t)
                return t
            seq = ctx.inputs.get(base_name)
            if seq is not None and len(ints) == 1 and torch.is_tensor(seq) and seq.dim() >= 2:
                step = ints[0]
                if not 1 <= step <= seq.shape[1]:
                    raise FormulaInputError(
                        f"{concrete} is step {step} of {base_name}, which has {seq.shape[1]} steps", text, _span(v))
                # Kept in the trace so that every use of x_t at this step is one value of one version.
                t = seq[:, step - 1]
                ctx.put(key, t)
                return t
            raise FormulaInputError(f"no value for {concrete}: pass {concrete}=... (or the sequence {base_name})",
                                    text, _span(v))

        return indexed

    # -- arithmetic --

    @builds(N.Add)
    def b_add(self, node: N.Add) -> Fn:
        return _summed([self.build(t) for t in node.terms])

    @builds(N.Neg)
    def b_neg(self, node: N.Neg) -> Fn:
        a = self.build(node.arg)
        return lambda ctx: -a(ctx)

    @builds(N.Mul)
    def b_mul(self, node: N.Mul) -> Fn:
        parts = [self.build(t) for t in node.factors]

        def mul(ctx):
            acc = parts[0](ctx)
            for p in parts[1:]:
                acc = acc * p(ctx)
            return acc

        return mul

    @builds(N.Div)
    def b_div(self, node: N.Div) -> Fn:
        a, b = self.build(node.num), self.build(node.den)
        return lambda ctx: a(ctx) / b(ctx)

    @builds(N.Pow)
    def b_pow(self, node: N.Pow) -> Fn:
        if isinstance(node.base, N.Norm) and isinstance(node.exp, N.Num) and node.exp.value == 2 and (
                node.base.ord is None or node.base.ord == N.Num(2.0)):
            a = self.build(node.base.arg)
            return lambda ctx: _squared_norm(a(ctx), ctx.lead)
        a, b = self.build(node.base), self.build(node.exp)
        return lambda ctx: a(ctx) ** b(ctx)

    @builds(N.Norm)
    def b_norm(self, node: N.Norm) -> Fn:
        a = self.build(node.arg)
        order = float(node.ord.value) if isinstance(node.ord, N.Num) else 2.0
        if node.ord is not None and not isinstance(node.ord, N.Num):
            raise self.error("a norm's order must be a number", node.ord)

        def norm(ctx):
            x = a(ctx)
            if not torch.is_tensor(x):
                return abs(x)
            if x.dim() <= ctx.lead:
                return x.abs()
            return torch.linalg.vector_norm(x.flatten(ctx.lead), ord=order, dim=-1)

        return norm

    @builds(N.StopGrad)
    def b_stopgrad(self, node: N.StopGrad) -> Fn:
        a = self.build(node.arg)
        return lambda ctx: _detach(a(ctx))

    @builds(N.Labeled)
    def b_labeled(self, node: N.Labeled) -> Fn:
        return self.build(node.body)

    @builds(N.Optimize)
    def b_optimize(self, node: N.Optimize) -> Fn:
        return self.build(node.body)

    @builds(N.Apply)
    def b_apply(self, node: N.Apply) -> Fn:
        if node in self.c.calls:
            return self.call(self.c.calls[node], node.args)
        if node.fn == "log" and len(node.args) == 1:
            return self.build_log(node.args[0])
        fn = _ELEMENTWISE.get(node.fn)
        if fn is None:
            raise self.error(f"{node.fn} cannot be evaluated yet", node)
        args = [self.build(a) for a in node.args]
        on_numbers = _ON_NUMBERS.get(node.fn)
        if len(args) == 1:
            (a,) = args

            def apply(ctx):
                x = a(ctx)
                if torch.is_tensor(x):
                    return fn(x)
                if on_numbers is None:
                    raise FormulaInputError(f"{node.fn} needs a tensor argument", self.c.text, _span(node))
                return on_numbers(x)

            return apply
        return lambda ctx: fn(*[x(ctx) for x in args])

    def call(self, i: int, arg_nodes) -> Fn:
        args = [self.build(a) for a in arg_nodes]

        def call(ctx):
            out = ctx.decls[i](*[a(ctx) for a in args])
            while out.dim() > ctx.lead and out.shape[-1] == 1:
                out = out.squeeze(-1)
            return out

        return call

    # -- densities --

    @builds(N.Dist)
    def b_dist(self, node: N.Dist) -> Fn:
        if node in self.c.calls:
            return self.call(self.c.calls[node], node.vars)
        log = self.log_density(node)
        return lambda ctx: torch.exp(log(ctx))

    @builds(N.LogDensity)
    def b_logdensity(self, node: N.LogDensity) -> Fn:
        if isinstance(node.dist, N.Family):
            (var,) = node.dist.vars
            value = self.var_lookup(var)
            make = self.family_fn(node.dist)

            def family_log_prob(ctx):
                x = value(ctx)
                return make(ctx, x, x.dim() - ctx.lead).log_prob(x)

            return family_log_prob
        return self.log_density(node.dist)

    def family_fn(self, fam: N.Family):
        """`\\mathcal{N}(\\mu, \\sigma^2 I)` as a closure (ctx, like, event_dims) -> torch distribution shaped like
        the tensor `like`: the mean, and the variance (the identity `I` is 1), broadcast to it."""
        if len(fam.args) not in (1, 2):
            raise self.error("a Normal family takes a mean and a variance: \\mathcal{N}(\\mu, \\sigma^2 I)", fam)
        self._identity = True
        try:
            mean = self.build(fam.args[0])
            variance = self.build(fam.args[1]) if len(fam.args) == 2 else (lambda ctx: 1.0)
        finally:
            self._identity = False

        def make(ctx, like, event_dims):
            loc = torch.zeros_like(like) + mean(ctx)
            scale = torch.ones_like(like) * variance(ctx) ** 0.5
            dist = torch.distributions.Normal(loc, scale, validate_args=False)
            return torch.distributions.Independent(dist, event_dims, validate_args=False) if event_dims else dist

        return make

    def log_density(self, dist: N.Dist) -> Fn:
        joint = self.c.densities[dist]
        return _summed([self.factor_log_prob(f) for f in joint.factors])

    def factor_log_prob(self, f: Factor) -> Fn:
        if self.fam[f.decl].kind == "data":
            raise self.error("the empirical distribution of the data has no density", self._node_of(f))
        cond = self.conditioned(f)
        (value,) = [self.var_lookup(v) for v in f.vars]
        return lambda ctx: cond(ctx).log_prob(value(ctx))

    def _node_of(self, f: Factor) -> N.Node:
        return f.vars[0]

    # -- log space: log of products, ratios and sums of densities, computed without leaving log space --

    def build_log(self, node: N.Expr) -> Fn:
        if isinstance(node, N.Dist) and node not in self.c.calls:
            return self.log_density(node)
        if isinstance(node, N.Mul):
            return _summed([self.build_log(f) for f in node.factors])
        if isinstance(node, N.Div):
            a, b = self.build_log(node.num), self.build_log(node.den)
            return lambda ctx: a(ctx) - b(ctx)
        if isinstance(node, N.Num):
            if node.value <= 0:
                raise self.error("the logarithm of a non-positive number", node)
            value = math.log(node.value)
            return lambda ctx: value
        if isinstance(node, N.Apply) and node.fn == "exp" and node not in self.c.calls:
            return self.build(node.args[0])
        if isinstance(node, N.Pow):
            a, b = self.build_log(node.base), self.build(node.exp)
            return lambda ctx: b(ctx) * a(ctx)
        if isinstance(node, N.Sum) and self.c.sums[node].mode != "loop":
            return self.sum_fn(node, log_space=True)
        inner = self.build(node)

        def log(ctx):
            x = inner(ctx)
            return torch.log(x) if torch.is_tensor(x) else math.log(x)

        return log

    # -- expectations --

    @builds(N.Expect)
    def b_expect(self, e: N.Expect) -> Fn:
        draws: Draws = self.c.draws[e]
        steps = []
        self.explain.add(self.depth, f"expectation {_short(e)}")
        self.depth += 1
        for f in draws.joint.factors:
            steps.append(self.draw_step(f, draws))
        body = self.build(e.body)
        self.depth -= 1
        scored = [s for s, sf in steps if sf]
        steps = [s for s, _ in steps]
        if not scored:
            if len(steps) == 1:
                (s,) = steps

                def expect(ctx):
                    s(ctx)
                    return body(ctx)

                return expect

            def expect_n(ctx):
                for s in steps:
                    s(ctx)
                return body(ctx)

            return expect_n

        def expect_scored(ctx):
            log_q = None
            for s in steps:
                lq = s(ctx)
                if lq is not None:
                    log_q = lq if log_q is None else log_q + lq
            value = body(ctx)
            return est.score_surrogate(value, log_q) if log_q is not None else value

        return expect_scored

    def draw_step(self, f: Factor, draws: Draws):
        """A closure drawing one factor's variable into the trace; returns (closure, uses score function)."""
        i = f.decl
        fam = self.fam[i]
        (var,) = f.vars if len(f.vars) == 1 else (None,)
        if var is None:
            raise self.error("a declaration over several variables cannot be sampled from yet", f.vars[0])
        if fam.kind == "data":
            self.explain.add(self.depth, f"{var_text(var)}: the data batch ({self.sig(f)})")
            value = self.var_lookup(var)
            key_of = self.key_fn(var)

            def data(ctx):
                ctx.put(key_of(ctx), value(ctx))

            return data, False
        cond = self.conditioned(f)
        reparam = fam.reparameterised
        set_size = self.index_fn(draws.set_size) if draws.set_var is not None and draws.set_var == var else None
        how = "reparameterised" if reparam else "score-function surrogate (leave-one-out baseline)"
        count = f", {var_text(draws.set_size)} draws along a new leading dimension" if set_size else ""
        self.explain.add(self.depth, f"draw {var_text(var)} ~ {self.sig(f)} [{fam.label}, {how}{count}]")
        set_key = (var.name, (VECTOR,), var.mark, var.primes)
        key_of = (lambda ctx: set_key) if set_size is not None else self.key_fn(var)

        def step(ctx):
            d = cond(ctx)
            shape = _one_per_example(d, ctx.n)
            if set_size is not None:
                shape = (int(set_size(ctx)),) + shape
            z = est.draw(d, shape, reparam)
            ctx.put(key_of(ctx), z)
            if reparam:
                return None
            log_q = d.log_prob(z)
            while log_q.dim() > 1:
                log_q = log_q.sum(0)
            return log_q

        return step, not reparam

    # -- sums --

    @builds(N.Sum)
    def b_sum(self, node: N.Sum) -> Fn:
        return self.sum_fn(node, log_space=False)

    def sum_fn(self, node: N.Sum, log_space: bool) -> Fn:
        plan = self.c.sums[node]
        name = node.index.name
        if plan.mode == "vector":
            self.explain.add(self.depth, f"sum over {name}: along the draws of {var_text(plan.set_var)}"
                             + (" (log-sum-exp)" if log_space else ""))
            body = self.build_log(node.body) if log_space else self.build(node.body)

            def vector_sum(ctx):
                saved = ctx.env.get(name)
                ctx.env[name] = VECTOR
                ctx.lead += 1
                try:
                    value = body(ctx)
                finally:
                    ctx.lead -= 1
                    _restore(ctx.env, name, saved)
                return torch.logsumexp(value, 0) if log_space else value.sum(0)

            return vector_sum
        if plan.mode == "support":
            i = plan.support_decl
            if not self.fam[i].discrete:
                raise self.error(
                    f"a sum over {name} without bounds enumerates its values, but {self.c.decls[i]} is not a "
                    "discrete family", node)
            self.explain.add(self.depth, f"sum over the values of {name} (enumerating {self.c.decls[i]})")
            factor = self._support_factor(node, i)
            given = [self.var_lookup(g) for g in factor.given]
            body = self.build_log(node.body) if log_space else self.build(node.body)
            key = (node.index.name, (), node.index.mark, node.index.primes)

            def support_sum(ctx):
                values = ctx.decls[i].enumerate_support(*[g(ctx) for g in given], expand=True)
                saved = ctx.trace.get(key)
                ctx.put(key, values)
                ctx.lead += 1
                try:
                    value = body(ctx)
                finally:
                    ctx.lead -= 1
                    ctx.drop(key, saved)
                return torch.logsumexp(value, 0) if log_space else value.sum(0)

            return support_sum
        lower, upper = self.index_fn(node.lower), self.bound_fn(node.upper)
        self.explain.add(self.depth, f"sum over {name} = {var_text(node.lower)}..{var_text(node.upper)}, "
                         "step by step (draws at each step condition on the previous steps)")
        self.depth += 1
        body = self.build(node.body)
        self.depth -= 1

        def loop_sum(ctx):
            lo, hi = lower(ctx), upper(ctx)
            saved = ctx.env.get(name)
            acc = 0.0
            try:
                for t in range(lo, hi + 1):
                    ctx.env[name] = t
                    acc = acc + body(ctx)
            finally:
                _restore(ctx.env, name, saved)
            return acc

        return loop_sum

    def _support_factor(self, node: N.Sum, i: int) -> Factor:
        for n in node.body.walk():
            d = n.dist if isinstance(n, N.LogDensity) else n
            if isinstance(d, N.Dist) and d in self.c.densities:
                for f in self.c.densities[d].factors:
                    if f.decl == i and f.vars == (node.index,):
                        return f
        raise self.error(f"no distribution over {node.index.name} to enumerate", node)

    def bound_fn(self, node: Optional[N.Expr]) -> Callable:
        """An upper bound: an input scalar, or the length of a sequence input (`T` from `x_{1:T}`)."""
        if isinstance(node, N.Var) and not node.index:
            iname = var_text(node)
            sequences = sorted(self.c.sequences)
            text = self.c.text

            def bound(ctx):
                if node.name in ctx.env:
                    return ctx.env[node.name]
                if iname in ctx.inputs:
                    return _as_int(ctx.inputs, iname, node, text)
                for s in sequences:
                    seq = ctx.inputs.get(s)
                    if torch.is_tensor(seq) and seq.dim() >= 2:
                        return seq.shape[1]
                raise FormulaInputError(f"no value for {iname}: pass {iname}=... or a sequence", text, _span(node))

            return bound
        return self.index_fn(node)

    @builds(N.Prod)
    def b_prod(self, node: N.Prod) -> Fn:
        raise self.error("products over an index are understood in factorisations only", node)

    # -- divergences and entropy --

    @builds(N.Divergence)
    def b_divergence(self, node: N.Divergence) -> Fn:
        builder = _DIVERGENCES.get(node.kind)
        if builder is None:
            raise self.error(f"the {node.kind} divergence parses, but no estimator for it is registered yet "
                             f"(known: {', '.join(sorted(_DIVERGENCES))})", node)
        return builder(self, node)

    def conditioned(self, f: Factor) -> Fn:
        """Declaration f.decl conditioned on f.given, memoised per call: an encoder used by an expectation and a
        KL runs once."""
        i = f.decl
        lookups = [self.var_lookup(g) if isinstance(g, N.Var) else self.build(g) for g in f.given]
        if not all(isinstance(g, N.Var) for g in f.given):
            return lambda ctx: ctx.decls[i].condition(*[g(ctx) for g in lookups])
        keys = [self.key_fn(g) for g in f.given]

        def cond(ctx):
            values = [g(ctx) for g in lookups]  # first: a lookup may put a sequence step into the trace
            versions = ctx.versions
            memo_key = (i,) + tuple((k, versions.get(k, 0)) for k in [kf(ctx) for kf in keys])
            dist = ctx.memo.get(memo_key)
            if dist is None:
                dist = ctx.memo[memo_key] = ctx.decls[i].condition(*values)
            return dist

        return cond

    def kl(self, node: N.Divergence) -> Fn:
        if isinstance(node.right, N.Family):
            return self.kl_to_family(node)
        left, right = self.c.densities[node.left], self.c.densities[node.right]
        if len(left.factors) == 1 and len(right.factors) == 1:
            lf, rf = left.factors[0], right.factors[0]
            fl, fr = self.fam[lf.decl], self.fam[rf.decl]
            closed = (self.analytic_kl and fl.family is not None and fr.family is not None
                      and est.closed_form_kl_known(fl.family, fr.family))
            pl, pr = self.conditioned(lf), self.conditioned(rf)
            if closed:
                self.explain.add(self.depth, f"KL({self.sig(lf)} || {self.sig(rf)}): closed form "
                                 f"[{fl.label} || {fr.label}]")
                return lambda ctx: est.kl_closed(pl(ctx), pr(ctx))
            reason = "analytic_kl=False" if not self.analytic_kl else "no closed form registered"
            how = "reparameterised" if fl.reparameterised else "score-function surrogate"
            self.explain.add(self.depth, f"KL({self.sig(lf)} || {self.sig(rf)}): Monte Carlo, one draw from "
                             f"{self.sig(lf)} ({reason}; {how})")
            reparam = fl.reparameterised

            def kl_mc(ctx):
                p, q = pl(ctx), pr(ctx)
                z = est.draw(p, _one_per_example(p, ctx.n), reparam)
                log_p = p.log_prob(z)
                value = log_p - q.log_prob(z)
                return value if reparam else est.score_surrogate(value, log_p)

            return kl_mc
        raise self.error("KL between joints is not evaluated yet: write it as an expectation of log-ratios", node)

    def kl_to_family(self, node: N.Divergence) -> Fn:
        """KL(q || \\mathcal{N}(\\mu, \\sigma^2 I)): the family takes q's shape; closed form where registered."""
        (f,) = self.c.densities[node.left].factors
        fl = self.fam[f.decl]
        left = self.conditioned(f)
        make = self.family_fn(node.right)
        closed = self.analytic_kl and fl.family is not None and est.closed_form_kl_known(
            fl.family, torch.distributions.Normal)
        self.explain.add(self.depth, f"KL({self.sig(f)} || {var_text(node.right)}): "
                         + (f"closed form [{fl.label} || Normal]" if closed else "Monte Carlo, one draw"))
        reparam = fl.reparameterised

        def kl_family(ctx):
            p = left(ctx)
            like = p.mean if closed else None
            if closed:
                return est.kl_closed(p, make(ctx, like, len(p.event_shape)))
            z = est.draw(p, (), reparam)
            log_p = p.log_prob(z)
            value = log_p - make(ctx, z, len(p.event_shape)).log_prob(z)
            return value if reparam else est.score_surrogate(value, log_p)

        return kl_family

    @builds(N.Entropy)
    def b_entropy(self, node: N.Entropy) -> Fn:
        joint = self.c.densities[node.dist]
        if len(joint.factors) != 1:
            raise self.error("the entropy of a joint is not evaluated yet", node)
        (f,) = joint.factors
        fam = self.fam[f.decl]
        cond = self.conditioned(f)
        if fam.family is not None and est.closed_form_entropy_known(fam.family):
            self.explain.add(self.depth, f"H[{self.sig(f)}]: closed form [{fam.label}]")
            return lambda ctx: cond(ctx).entropy()
        self.explain.add(self.depth, f"H[{self.sig(f)}]: Monte Carlo, -log q at one draw")
        reparam = fam.reparameterised

        def entropy_mc(ctx):
            d = cond(ctx)
            z = est.draw(d, _one_per_example(d, ctx.n), reparam)
            log_q = d.log_prob(z)
            return -log_q if reparam else est.score_surrogate(-log_q, log_q)

        return entropy_mc


def _kl_builder(builder: _Builder, node: N.Divergence) -> Fn:
    return builder.kl(node)


# Divergence estimators by canonical name: adding JS, MMD or Wasserstein is one entry here.
_DIVERGENCES: Dict[str, Callable[[_Builder, N.Divergence], Fn]] = {"KL": _kl_builder}


def register_divergence(kind: str):
    """Register a builder `(builder, node) -> closure` for a divergence name (e.g. "MMD")."""

    def deco(fn):
        _DIVERGENCES[kind.upper()] = fn
        return fn

    return deco


# --- helpers -----------------------------------------------------------------------------------------------


def _one_per_example(d, n: int) -> Tuple[int, ...]:
    """The sample shape giving one draw per example: none extra for a conditioned distribution (its batch shape
    is the examples'), `(n,)` for an unconditioned one such as a prior."""
    return () if d.batch_shape else (n,)


def _summed(parts: List[Fn]) -> Fn:
    """The closure adding the values of `parts` (a sum of terms, of log-densities, of log-factors)."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda ctx: a(ctx) + b(ctx)

    def add(ctx):
        acc = parts[0](ctx)
        for p in parts[1:]:
            acc = acc + p(ctx)
        return acc

    return add


def _span(node: N.Node):
    return (node.span.start, node.span.end) if node.span is not None else None


def _restore(d: dict, key, saved) -> None:
    if saved is None:
        d.pop(key, None)
    else:
        d[key] = saved


def _vec_or(fn, values):
    return VECTOR if any(v is VECTOR for v in values) else fn(values)


def _as_int(inputs, name, node, text) -> int:
    value = inputs.get(name)
    if value is None:
        raise FormulaInputError(f"no value for {name}: pass {name}=... (an integer)", text, _span(node))
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise FormulaInputError(f"{name} must be a single integer, got shape {list(value.shape)}", text,
                                    _span(node))
        value = value.item()
    if float(value) != int(value):
        raise FormulaInputError(f"{name} must be an integer, got {value}", text, _span(node))
    return int(value)


def _lookup_input(ctx, name, node, text):
    value = ctx.inputs.get(name)
    if value is None:
        raise FormulaInputError(f"no value for {name}: pass {name}=...", text, _span(node))
    return value


def _detach(x):
    return x.detach() if torch.is_tensor(x) else x


def _squared_norm(x, lead: int):
    if not torch.is_tensor(x) or x.dim() <= lead:
        return x * x
    return (x * x).flatten(lead).sum(-1)


def _short(e: N.Expect) -> str:
    if e.over is None:
        return "E[...]"
    return "E_{" + " ".join(var_text(d) for d in e.over.dists) + "}[...]"


__all__ = ["register_divergence", "family_of", "kind_of", "Family"]
