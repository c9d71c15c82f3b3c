"""Hypothesis strategies that build ASTs in the parser's canonical form.

Canonical means what `formula.lang.parser.parse` itself returns: flat `Add`/`Mul` (no `Mul` directly inside a
`Mul`), no negative `Num` (`-2` is `Neg(Num(2))`), no one-term `Add`/`Mul`, `Sampler.draws` only where they
differ from the sampling distributions' variables, `log` of a distribution as `LogDensity`, Greek names
spelled out. Names avoid the language's reserved words (`E`, `H`, `log`, `sum`, ...).
"""

from __future__ import annotations

from hypothesis import strategies as st

import formula.lang.nodes as n

LETTERS = ("a", "b", "c", "u", "v", "w", "x", "y", "z", "s", "ab", "ELBO")
GREEK = ("alpha", "beta", "gamma", "lambda", "tau")
DIST_NAMES = ("p", "q", "r")
INDEX_NAMES = ("t", "k", "l", "i")
FUNCTIONS = ("exp", "sqrt", "abs", "tanh", "sigmoid", "softplus", "log", "det")

#: Formulas in both spellings that must parse: seeds of the syntax-error and fuzz tests.
VALID_FORMULAS = [
    "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))",
    r"\mathbb{E}_{q_\phi(z|x)}\left[\log p_\theta(x|z)\right] - D_{KL}\left(q_\phi(z|x) \,\|\, p(z)\right)",
    r"E_{q(z|x)}[log p(x|z)] - \beta D_{KL}(q(z|x)||p(z))",
    r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k|x)}\right]",
    "E_{q(y|x)}[ E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] ] + H[q(y|x)]",
    r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)] - D_{KL}(q(z_t|z_{t-1},x) \| p(z_t|z_{t-1}))",
    "q(z_1,z_2|b_1,b_2) = q(z_1|z_2,b_1,b_2) p_B(z_2|b_2)\nE_{q(z_1,z_2|b_1,b_2)}[log p(x_2|z_2)]",
    r"\left|\det \frac{\partial f(x)}{\partial x}\right| + \|a\|_2^2 + \text{sg}[a] + \langle f \rangle_{z \sim q}",
    r"\min_G \max_D \mathbb{E}_{x \sim p_{data}}[\log D(x)] + \underbrace{E_q[f]}_{L_T}",
]

numbers = st.one_of(
    st.integers(0, 100).map(float),
    st.sampled_from((0.5, 0.25, 1.5, 0.1, 2.75, 0.001, 12.5)),
).map(n.Num)

_index_var = st.sampled_from(INDEX_NAMES + ("T", "K")).map(n.Var)


def _index_items():
    t = st.sampled_from(INDEX_NAMES).map(n.Var)
    return st.one_of(
        t,
        st.integers(0, 9).map(lambda i: n.Num(float(i))),
        t.map(lambda v: n.Add((v, n.Neg(n.Num(1.0))))),
        st.builds(lambda v: n.Range(n.Num(1.0), v), st.sampled_from(("T", "K")).map(n.Var)),
        st.builds(n.Before, t),
        st.builds(n.After, t, st.booleans()),
    )


@st.composite
def variables(draw, allow_index: bool = True) -> n.Var:
    """A data variable or scalar: `x`, `z_t`, `z_{t-1}`, `x_{1:T}`, `\\tilde{x}`, `z'`, `beta`."""
    name = draw(st.sampled_from(LETTERS + GREEK))
    index = draw(st.lists(_index_items(), max_size=2).map(tuple)) if allow_index else ()
    mark = draw(st.sampled_from((None, None, None, "tilde", "hat", "bar"))) if len(name) == 1 else None
    primes = draw(st.sampled_from((0, 0, 0, 1))) if len(name) == 1 else 0
    return n.Var(name, index, mark, primes)


_plain_vars = st.builds(n.Var, st.sampled_from(("x", "y", "z", "w", "b")),
                        st.lists(st.sampled_from(INDEX_NAMES[:2]).map(n.Var), max_size=1).map(tuple))


@st.composite
def distributions(draw) -> n.Dist:
    """`q(z|x)`, `p(x,z)`, `q_phi(z|x)`, `p_B(z_t|b_t)`, `r(z; theta)`."""
    name = draw(st.sampled_from(DIST_NAMES + ("enc",)))
    sub = draw(st.sampled_from((None, None, None, "phi", "theta", "B", "prior")))
    vars_ = tuple(draw(st.lists(_plain_vars, min_size=1, max_size=2)))
    given = tuple(draw(st.lists(_plain_vars, max_size=2)))
    params = tuple(draw(st.lists(st.sampled_from(("theta", "phi")).map(n.Var), max_size=1)))
    mark = draw(st.sampled_from((None, None, None, None, "bar", "tilde", "hat"))) if name != "enc" else None
    return n.Dist(name, vars_, given, sub, params, mark)


#: what an expectation samples from, a divergence compares or an entropy measures: a distribution, a bare
#: name (`E_q`, `KL(q || p)`) or an explicit family
dist_refs = st.one_of(
    distributions(), distributions(),
    st.builds(n.Dist, st.sampled_from(DIST_NAMES), sub=st.sampled_from((None, "phi"))),
    st.builds(lambda v, a: n.Family("Normal", (v,), (a, n.Num(1.0))), _plain_vars,
              st.sampled_from("ab").map(n.Var)),
    st.builds(lambda a: n.Family("Bernoulli", (), (a,)), st.sampled_from(("lambda", "a")).map(n.Var)),
)


#: a divergence's arguments may also be decorated bare names (`KL(\\bar q || p)`)
divergence_refs = st.one_of(dist_refs, st.builds(n.Dist, st.sampled_from(DIST_NAMES), mark=st.sampled_from(("bar", "tilde"))))

_uniform = st.one_of(
    st.builds(lambda a, b: n.Family("Uniform", (), (a, b)), numbers, st.sampled_from("ab").map(n.Var)),
    st.builds(lambda a: n.Family("UniformDiscrete", (), (n.Num(1.0), a)), st.sampled_from("TK").map(n.Var)))


@st.composite
def subscript_items(draw):
    """The samplers of one expectation subscript list, as the parser builds them (`E_{t, z ~ q, \\epsilon}`): no bare
    variable right before a `~` item (it would be one of its draws) and no lone bare name (read as a variable)."""
    eps = st.sampled_from(("epsilon", "u", "t")).map(n.Var)
    sim = st.one_of(
        st.builds(lambda v, d: n.Sampler((d,), (v,)), eps, st.one_of(_uniform, dist_refs.filter(
            lambda d: isinstance(d, n.Family) or d.vars))),
        st.builds(lambda d: n.Sampler((n.Dist(d, sub="l", mark="tilde"),), (n.Var("x"), n.Var("y"))),
                  st.sampled_from(DIST_NAMES)))
    plain = distributions().map(lambda d: n.Sampler((d,)))
    bare = variables().map(lambda v: n.Sampler((), (v,)))
    items = draw(st.lists(st.one_of(sim, plain, bare), min_size=2, max_size=3))
    for i in range(len(items) - 1):
        if not items[i].dists and items[i + 1].draws and items[i + 1].dists:
            items[i] = n.Sampler((n.Dist("q", (items[i].draws[0],)),))
    return items


def _joined(items, body):
    for i, sampler in enumerate(reversed(items)):
        body = n.Expect(sampler, body, joined=i < len(items) - 1)
    return body


def _atoms():
    return st.one_of(numbers, variables(), distributions())


def _extend(children):
    """One level of the recursive grammar: every operator over smaller trees (arithmetic first, so that
    hypothesis shrinks towards it)."""
    not_mul = children.filter(lambda e: not isinstance(e, n.Mul))
    index = st.sampled_from(INDEX_NAMES).map(n.Var)
    bound = st.sampled_from(("T", "K")).map(n.Var)
    return st.one_of(
        # arithmetic
        st.lists(children, min_size=2, max_size=3).map(lambda ts: n.Add(tuple(ts))),
        st.builds(lambda a, b: n.Add((a, n.Neg(b))), children, children),
        st.builds(n.Neg, children.filter(lambda e: not isinstance(e, n.Neg))),
        st.lists(not_mul, min_size=2, max_size=3).map(lambda fs: n.Mul(tuple(fs))),
        st.builds(lambda a, bs: n.Mul((a, n.Mul(bs))), children,  # `a (b c)`: a bracketed product stays nested
                  st.lists(not_mul, min_size=2, max_size=2).map(tuple)),
        st.builds(n.Div, children, children),
        st.builds(n.Pow, children, st.one_of(numbers, variables(allow_index=False))),
        st.builds(lambda fn, a: n.Apply(fn, (a,)), st.sampled_from(FUNCTIONS),
                  children.filter(lambda e: not isinstance(e, (n.Dist, n.Family)))),  # log of a Dist is LogDensity
        st.builds(lambda a: n.Apply("transpose", (a,)), children),
        # probabilistic operators
        st.builds(n.LogDensity, distributions()),
        st.builds(lambda d, body: n.Expect(n.Sampler((d,)), body), dist_refs, children),
        st.builds(lambda a, b, body: n.Expect(n.Sampler((a, b)), body), distributions(), distributions(), children),
        st.builds(lambda body: n.Expect(None, body), children),
        st.builds(lambda d, k, body: n.Expect(
            n.Sampler((d,), (n.Var(d.vars[0].name, (n.Range(n.Num(1.0), k),)),)), body),
            distributions(), st.sampled_from(("K", "L")).map(n.Var), children),
        st.builds(lambda a, b: n.Divergence("KL", a, b), divergence_refs, dist_refs),
        st.builds(lambda a, b: n.Divergence("JS", a, b), dist_refs, divergence_refs),
        st.builds(lambda k, s, a, b: n.Divergence(k, a, b, s), st.sampled_from(("MMD", "W", "KL")),
                  st.sampled_from(("imq", "1", "D", "rbf")), dist_refs, dist_refs),
        st.builds(_joined, subscript_items(), children),
        st.builds(lambda v, body: n.Expect(n.Sampler((), (v,)), body),
                  variables().filter(lambda v: v.mark or v.primes or any(
                      not isinstance(i, (n.Var, n.Num)) or (isinstance(i, n.Var) and i.index) for i in v.index)),
                  children),
        st.builds(n.Entropy, dist_refs),
        # sums and products
        st.builds(lambda i, body, hi: n.Sum(i, body, n.Num(1.0), hi), index, children, bound),
        st.builds(lambda i, body: n.Sum(i, body), st.sampled_from(("y", "k")).map(n.Var), children),
        st.builds(lambda body: n.Sum(n.Var("i"), body, where=n.Relation((n.Var("i"), n.Var("j")), ("!=",))),
                  children),
        st.builds(lambda body: n.Sum(n.Var("x", (n.Var("i"),)), body, within=n.Var("X")), children),
        st.builds(lambda i, body, hi: n.Prod(i, body, n.Num(1.0), hi), index, children, bound),
        # norms, gradients, names, relations
        st.builds(n.Norm, children),
        st.builds(lambda a, o: n.Norm(a, o), children, st.sampled_from((n.Num(1.0), n.Num(2.0)))),
        st.builds(n.StopGrad, children),
        st.builds(lambda w, a: n.Grad((w,), a), variables(allow_index=False), children),
        st.builds(n.Partial, children, variables(allow_index=False)),
        st.builds(lambda s, o, a: n.Optimize(s, (o,), a), st.sampled_from(("min", "max")),
                  st.sampled_from("GD").map(n.Var), children),
        st.builds(n.Labeled, children, st.builds(n.Var, st.just("L"), st.sampled_from(((), (n.Var("T"),))))),
        st.builds(lambda a, b: n.Relation((a, b), ("approx",)), children, children),
        st.builds(lambda a, b: n.Relation((a, b), ("propto",)), children, children),
    )


def expressions(max_leaves: int = 12):
    """Any value expression in canonical form."""
    return st.recursive(_atoms(), _extend, max_leaves=max_leaves)


def statements(max_leaves: int = 12):
    """An expression, or a relation chain between expressions (`L(x) = ...`, `log p(x) >= ...`)."""
    expr = expressions(max_leaves)
    relation = st.builds(
        lambda members, ops: n.Relation(tuple(members), tuple(ops[: len(members) - 1])),
        st.lists(expr, min_size=2, max_size=3),
        st.lists(st.sampled_from(("=", ">=", "<=", ":=", "=:")), min_size=2, max_size=2),
    )
    draw_ = st.one_of(
        st.builds(lambda v, d: n.Draw((v,), d), variables(), st.one_of(_uniform, dist_refs)),
        st.builds(lambda d: n.Draw((n.Var("x"), n.Var("y")), d), divergence_refs))
    where = st.builds(lambda body, defs: n.Where(body, tuple(defs)), st.one_of(expr, draw_),
                      st.lists(st.one_of(draw_, st.builds(lambda v, e: n.Relation((v, e), ("=",)), variables(), expr)),
                               min_size=1, max_size=2))
    return st.one_of(expr, expr, relation, draw_, where)


def programs(max_leaves: int = 10):
    """A whole text: one to three statements."""
    return st.lists(statements(max_leaves), min_size=1, max_size=3).map(lambda ss: n.Program(tuple(ss)))
