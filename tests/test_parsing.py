"""Text -> AST: every acceptance formula of docs/language.md §5, each row of the §1 table and each item of the
"paper notation" list parse to the trees the printers and the checker expect."""

import pytest

import formula.lang.nodes as n
from formula.lang.parser import parse, parse_expr, parse_signature

# --- compact constructors for expected trees --------------------------------------------------------------


def V(name, *index, mark=None, primes=0):
    return n.Var(name, tuple(_e(i) for i in index), mark, primes)


def N(value):
    return n.Num(float(value))


def _e(x):
    if isinstance(x, str):
        return V(x)
    if isinstance(x, (int, float)):
        return N(x)
    return x


def _t(xs):
    return tuple(_e(x) for x in xs)


def P(name, vars=(), given=(), sub=None, params=()):
    """A Dist: `P("q", ["z"], ["x"])` is q(z|x)."""
    return n.Dist(name, _t(vars), _t(given), sub, _t(params))


def E(over, body, draws=()):
    over = None if over is None else n.Sampler(tuple(over), tuple(draws))
    return n.Expect(over, body)


def LOG(d):
    return n.LogDensity(d)


def KL(a, b):
    return n.Divergence("KL", a, b)


def ADD(*terms):
    return n.Add(_t(terms))


def NEG(x):
    return n.Neg(_e(x))


def MUL(*factors):
    return n.Mul(_t(factors))


def DIV(a, b):
    return n.Div(_e(a), _e(b))


def MINUS1(var):
    return ADD(var, NEG(1))


q_zx, p_xz, p_z = P("q", ["z"], ["x"]), P("p", ["x"], ["z"]), P("p", ["z"])


def expr(text):
    return parse_expr(text)


# --- docs/language.md §5, with the trees written out -----------------------------------------------------------

VAE = ADD(E([q_zx], LOG(p_xz)), NEG(KL(q_zx, p_z)))


def test_vae_ascii_tree():
    assert expr("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))") == VAE


def test_vae_latex_tree_keeps_parameter_subscripts():
    tree = expr(r"\mathbb{E}_{q_\phi(z|x)}\left[\log p_\theta(x|z)\right] "
                r"- D_{KL}\left(q_\phi(z|x) \,\|\, p(z)\right)")
    q_phi = P("q", ["z"], ["x"], sub="phi")
    assert tree == ADD(E([q_phi], LOG(P("p", ["x"], ["z"], sub="theta"))), NEG(KL(q_phi, p_z)))


def test_vae_ascii_and_latex_spellings_give_equal_trees():
    latex = r"\mathbb{E}_{q(z \mid x)}\left[\log p(x|z)\right] - D_{\mathrm{KL}}\left(q(z|x) \,\|\, p(z)\right)"
    assert expr(latex) == expr("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))")
    mixed = r"\mathbb{E}_{q(z|x)}[log p(x|z)] - KL(q(z|x) \| p(z))"
    assert expr(mixed) == VAE


def test_beta_vae():
    tree = expr(r"E_{q(z|x)}[log p(x|z)] - \beta D_{KL}(q(z|x)||p(z))")
    assert tree == ADD(E([q_zx], LOG(p_xz)), NEG(MUL("beta", KL(q_zx, p_z))))


def test_elbo_joint_form():
    tree = expr("E_{q(z|x)}[log p(x,z) - log q(z|x)]")
    assert tree == E([q_zx], ADD(LOG(P("p", ["x", "z"])), NEG(LOG(q_zx))))


def test_cvae():
    tree = expr("E_{q(z|x,y)}[log p(x|z,y)] - KL(q(z|x,y) || p(z|y))")
    q = P("q", ["z"], ["x", "y"])
    assert tree == ADD(E([q], LOG(P("p", ["x"], ["z", "y"]))), NEG(KL(q, P("p", ["z"], ["y"]))))


def test_iwae_tree():
    tree = expr(r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} "
                r"\frac{p(x,z_k)}{q(z_k|x)}\right]")
    z_k = V("z", "k")
    ratio = DIV(P("p", ["x", z_k]), P("q", [z_k], ["x"]))
    body = n.Apply("log", (MUL(DIV(1, "K"), n.Sum(V("k"), ratio, lower=N(1), upper=V("K"))),))
    assert tree == E([q_zx], body, draws=(V("z", n.Range(N(1), V("K"))),))


def test_iwae_ascii_spelling_matches():
    ascii_ = "E_{z_1,...,z_K ~ q(z|x)}[ log 1/K sum_{k=1}^{K} p(x,z_k)/q(z_k|x) ]"
    latex = (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} "
             r"\frac{p(x,z_k)}{q(z_k|x)}\right]")
    assert expr(ascii_) == expr(latex)
    assert expr("E_{z_{1:K} ~ q(z|x)}[f]") == expr(r"E_{z_1,\dots,z_K \sim q(z|x)}[f]")


def test_m2_unlabelled_tree():
    tree = expr("E_{q(y|x)}[ E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] ] + H[q(y|x)]")
    q_zxy = P("q", ["z"], ["x", "y"])
    inner = E([q_zxy], ADD(LOG(P("p", ["x"], ["y", "z"])), LOG(P("p", ["y"])), LOG(p_z), NEG(LOG(q_zxy))))
    assert tree == ADD(E([P("q", ["y"], ["x"])], inner), n.Entropy(P("q", ["y"], ["x"])))


def test_jmvae_greek_before_parenthesis_is_a_product():
    tree = expr(r"E_{q(z|x,w)}[log p(x|z) + log p(w|z)] - KL(q(z|x,w)||p(z)) "
                r"- \alpha (KL(q(z|x,w)||q(z|x)) + KL(q(z|x,w)||q(z|w)))")
    q = P("q", ["z"], ["x", "w"])
    assert tree == ADD(
        E([q], ADD(LOG(p_xz), LOG(P("p", ["w"], ["z"])))),
        NEG(KL(q, p_z)),
        NEG(MUL("alpha", ADD(KL(q, q_zx), KL(q, P("q", ["z"], ["w"]))))),
    )


def test_deep_markov_model_sum_takes_the_kl():
    tree = expr(r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)] "
                r"- D_{KL}(q(z_t|z_{t-1},x) \| p(z_t|z_{t-1}))")
    z_t, z_prev = V("z", "t"), V("z", MINUS1(V("t")))
    q = P("q", [z_t], [z_prev, "x"])
    body = ADD(E([q], LOG(P("p", [V("x", "t")], [z_t]))), NEG(KL(q, P("p", [z_t], [z_prev]))))
    assert tree == n.Sum(V("t"), body, lower=N(1), upper=V("T"))


def test_td_vae_program():
    program = parse("q(z_1,z_2|b_1,b_2) = q(z_1|z_2,b_1,b_2) p_B(z_2|b_2)\n"
                    "E_{q(z_1,z_2|b_1,b_2)}[log p(x_2|z_2) + log p_B(z_1|b_1) + log p(z_2|z_1) "
                    "- log p_B(z_2|b_2) - log q(z_1|z_2,b_1,b_2)]")
    z1, z2, b1, b2 = V("z", 1), V("z", 2), V("b", 1), V("b", 2)
    joint = P("q", [z1, z2], [b1, b2])
    q1 = P("q", [z1], [z2, b1, b2])
    factorisation = n.Relation((joint, MUL(q1, P("p", [z2], [b2], sub="B"))), ("=",))
    objective = E([joint], ADD(
        LOG(P("p", [V("x", 2)], [z2])), LOG(P("p", [z1], [b1], sub="B")), LOG(P("p", [z2], [z1])),
        NEG(LOG(P("p", [z2], [b2], sub="B"))), NEG(LOG(q1)),
    ))
    assert program.statements == (factorisation, objective)
    assert program.objective == objective


# --- docs/language.md §1 table: each row, both spellings ---------------------------------------------------------

SAME = [
    # distribution
    (r"q_\phi(z \mid x)", P("q", ["z"], ["x"], sub="phi")),
    (r"p_{\theta}(x, z)", P("p", ["x", "z"], sub="theta")),
    (r"p_{prior}(z)", P("p", ["z"], sub="prior")),
    ("p(x,z)", P("p", ["x", "z"])),
    # log-density
    ("log p(x|z)", LOG(p_xz)),
    (r"\log p_\theta(x|z)", LOG(P("p", ["x"], ["z"], sub="theta"))),
    (r"\ln p(x|z)", LOG(p_xz)),
    ("log(p(x))", LOG(P("p", ["x"]))),
    # expectation
    ("E_q(z|x)[f]", E([q_zx], V("f"))),
    ("E_{q(z|x)}[f]", E([q_zx], V("f"))),
    ("E_{z~q(z|x)}[f]", E([q_zx], V("f"))),
    (r"\mathbb{E}_{z \sim q(z|x)}[f]", E([q_zx], V("f"))),
    (r"\mathbb{E}_{q_\phi(z|x)}\left[f\right]", E([P("q", ["z"], ["x"], sub="phi")], V("f"))),
    # KL divergence
    ("KL(q(z|x)||p(z))", KL(q_zx, p_z)),
    ("KL[q(z|x) || p(z)]", KL(q_zx, p_z)),
    (r"D_{KL}(q(z|x) \| p(z))", KL(q_zx, p_z)),
    (r"D_{\mathrm{KL}}\left[q \,\|\, p\right]", KL(P("q"), P("p"))),
    (r"\mathrm{KL}(q\Vert p)", KL(P("q"), P("p"))),
    (r"KL(q \parallel p)", KL(P("q"), P("p"))),
    # entropy
    ("H[q(z|x)]", n.Entropy(q_zx)),
    (r"\mathcal{H}[q(z|x)]", n.Entropy(q_zx)),
    (r"\mathbb{H}(q)", n.Entropy(P("q"))),
    # scalars
    ("beta", V("beta")), (r"\beta", V("beta")), ("alpha", V("alpha")), (r"\lambda", V("lambda")),
    ("0.5", N(0.5)), ("1/K", DIV(1, "K")), (r"\frac{1}{K}", DIV(1, "K")),
    # sums
    ("sum_{t=1}^{T} f", n.Sum(V("t"), V("f"), lower=N(1), upper=V("T"))),
    (r"\sum_{t=1}^{T} f", n.Sum(V("t"), V("f"), lower=N(1), upper=V("T"))),
    (r"\sum_{l=1}^{L} f", n.Sum(V("l"), V("f"), lower=N(1), upper=V("L"))),
    (r"\sum_{k=1}^K f", n.Sum(V("k"), V("f"), lower=N(1), upper=V("K"))),
    # indexed variables
    ("z_t", V("z", "t")), ("z_{t-1}", V("z", MINUS1(V("t")))), ("x_{1:T}", V("x", n.Range(N(1), V("T")))),
    ("z_k", V("z", "k")), ("z_{<t}", V("z", n.Before(V("t")))), (r"z_{\le t}", V("z", n.Before(V("t"), True))),
    ("z_1", V("z", 1)), ("z_{t,k}", V("z", "t", "k")),
    (r"\mathbf{x}", V("x")), (r"\boldsymbol{z}", V("z")), (r"\boldsymbol{\mu}", V("mu")),
    # grouping
    (r"\left( a + b \right) c", MUL(ADD("a", "b"), "c")),
    (r"\left[ a \right]", V("a")), (r"\{ a + b \} c", MUL(ADD("a", "b"), "c")),
    (r"\big( a \big)", V("a")), (r"\Bigl[ a \Bigr]", V("a")), (r"a \, b \; c \quad d", MUL("a", "b", "c", "d")),
    # products
    ("2 * f", MUL(2, "f")), ("beta*KL(q||p)", MUL("beta", KL(P("q"), P("p")))),
    ("beta KL(q||p)", MUL("beta", KL(P("q"), P("p")))),
    (r"\beta \cdot f", MUL("beta", "f")), (r"\beta\,D_{KL}(q||p)", MUL("beta", KL(P("q"), P("p")))),
    (r"a \times b", MUL("a", "b")), (r"\beta~D_{KL}(q\|p)", MUL("beta", KL(P("q"), P("p")))),
    # named objectives
    ("L(x) = f", n.Relation((P("L", ["x"]), V("f")), ("=",))),
    (r"\mathcal{L}(x; \theta, \phi) = f", n.Relation((P("L", ["x"], params=["theta", "phi"]), V("f")), ("=",))),
    (r"\text{ELBO} = f", n.Relation((V("ELBO"), V("f")), ("=",))),
]


@pytest.mark.parametrize("text,tree", SAME, ids=[t for t, _ in SAME])
def test_table_rows(text, tree):
    assert expr(text) == tree


# --- docs/language.md §1 "Paper notation that must also be understood" ----------------------------------------

NOTATION = [
    # decorations and indices
    (r"\vec{x} + \bm{x}", ADD("x", "x")),
    (r"\tilde{x} + \hat{x} + \bar{x}", ADD(V("x", mark="tilde"), V("x", mark="hat"), V("x", mark="bar"))),
    ("z'", V("z", primes=1)), ("z''", V("z", primes=2)),
    ("x^{(i)}", V("x")), ("x^{(n)}", V("x")), ("z^{(l)}", V("z", "l")), ("z^{(i,l)}", V("z", "l")),
    # other divergences
    ("JS(p || q)", n.Divergence("JS", P("p"), P("q"))),
    (r"D_{JS}[p \| q]", n.Divergence("JS", P("p"), P("q"))),
    (r"\text{MMD}(q(z), p(z))", n.Divergence("MMD", P("q", ["z"]), P("p", ["z"]))),
    ("MMD(q(z), p(z))", n.Divergence("MMD", P("q", ["z"]), P("p", ["z"]))),
    ("W(p, q)", n.Divergence("W", P("p"), P("q"))),
    ("D_{KL}(q, p)", KL(P("q"), P("p"))),
    ("FOO(p || q)", n.Divergence("FOO", P("p"), P("q"))),
    # deterministic functions and elementwise math
    ("D(x)", P("D", ["x"])), ("G(z)", P("G", ["z"])), ("T(x,z)", P("T", ["x", "z"])),
    ("D(G(z))", n.Dist("D", (P("G", ["z"]),))), ("f(x)", P("f", ["x"])),
    (r"\exp(a) + exp(a)", ADD(n.Apply("exp", (V("a"),)), n.Apply("exp", (V("a"),)))),
    (r"\sqrt{a} + sqrt(a)", ADD(n.Apply("sqrt", (V("a"),)), n.Apply("sqrt", (V("a"),)))),
    (r"|a| + \left| a \right| + abs(a)", ADD(*[n.Apply("abs", (V("a"),))] * 3)),
    (r"\sigma(a) + sigmoid(a)", ADD(*[n.Apply("sigmoid", (V("a"),))] * 2)),
    (r"\|a\|", n.Norm(V("a"))), (r"\|a\|_2", n.Norm(V("a"), N(2))),
    (r"\|a\|^2", n.Pow(n.Norm(V("a")), N(2))), (r"\|a\|_2^2", n.Pow(n.Norm(V("a"), N(2)), N(2))),
    (r"\left\| a \right\|", n.Norm(V("a"))),
    (r"\beta \|x - \hat{x}\|^2", MUL("beta", n.Pow(n.Norm(ADD("x", NEG(V("x", mark="hat")))), N(2)))),
    (r"\text{sg}[a] + sg(a) + \operatorname{sg}(a) + stopgrad(a)", ADD(*[n.StopGrad(V("a"))] * 4)),
    ("a^2", n.Pow(V("a"), N(2))), (r"\sigma^2", n.Pow(V("sigma"), N(2))),
    # unbracketed expectations and sums
    (r"\mathbb{E}_{q(z|x)} \log p(x|z)", E([q_zx], LOG(p_xz))),
    (r"\mathbb{E}_{p(x)} \mathbb{E}_{q(z|x)}[f]", E([P("p", ["x"])], E([q_zx], V("f")))),
    (r"\frac{1}{L}\sum_{l=1}^{L} \log p(x, z^{(l)}) - \log q(z^{(l)}|x)",
     MUL(DIV(1, "L"), n.Sum(V("l"), ADD(LOG(P("p", ["x", V("z", "l")])), NEG(LOG(P("q", [V("z", "l")], ["x"])))),
                            lower=N(1), upper=V("L")))),
    ("E_q(z|x)[f] - g", ADD(E([q_zx], V("f")), NEG("g"))),
    # bare sampling distributions
    (r"\mathbb{E}_q[f]", E([P("q")], V("f"))), (r"\mathbb{E}[f]", E(None, V("f"))),
    (r"\mathbb{E}_{x \sim p_{data}}[f]", E([P("p", sub="data")], V("f"), draws=(V("x"),))),
    ("E_{q(z_2|z_1) q(z_1|x)}[f]", E([P("q", [V("z", 2)], [V("z", 1)]), P("q", [V("z", 1)], ["x"])], V("f"))),
    # relation chains
    (r"\log p(x) \geq \mathbb{E}[f] = g =: \mathcal{L}",
     n.Relation((LOG(P("p", ["x"])), E(None, V("f")), V("g"), V("L")), (">=", "=", "=:"))),
    ("a := b", n.Relation((V("a"), V("b")), (":=",))),
    (r"a \ge b \le c \approx d", n.Relation(_t("abcd"), (">=", "<=", "approx"))),
    ("a >= b <= c", n.Relation(_t("abc"), (">=", "<="))),
    # labels and two-player objectives
    (r"\underbrace{E_q[f]}_{L_T}", n.Labeled(E([P("q")], V("f")), V("L", "T"))),
    (r"\min_G \max_D V(D,G)", n.Optimize("min", (V("G"),), n.Optimize("max", (V("D"),), P("V", ["D", "G"])))),
    # parameters after a semicolon
    (r"q(z;\theta)", P("q", ["z"], params=["theta"])),
    (r"r(\lambda|z;\phi)", P("r", ["lambda"], ["z"], params=["phi"])),
    # sums over supports, sets and conditions
    (r"\sum_{y} q(y|x)\, f(y)", n.Sum(V("y"), MUL(P("q", ["y"], ["x"]), P("f", ["y"])))),
    (r"\sum_y f", n.Sum(V("y"), V("f"))),
    (r"\sum_{i \neq j} k_{ij}", n.Sum(V("i"), V("k", "ij"), where=n.Relation((V("i"), V("j")), ("!=",)))),
    (r"\sum_{x_i \in X} f(x_i)", n.Sum(V("x", "i"), P("f", [V("x", "i")]), within=V("X"))),
    (r"\prod_{t=1}^{T} p(x_t)", n.Prod(V("t"), P("p", [V("x", "t")]), lower=N(1), upper=V("T"))),
    # angle brackets and families
    (r"\langle f \rangle_{z \sim q}", E([P("q")], V("f"), draws=(V("z"),))),
    (r"\langle f \rangle_{q(z|x)}", E([q_zx], V("f"))),
    (r"\mathcal{N}(x \mid \mu, \sigma^2 I)",
     n.Family("Normal", (V("x"),), (V("mu"), MUL(n.Pow(V("sigma"), N(2)), "I")))),
    (r"\mathcal{N}(0, I)", n.Family("Normal", (), (N(0), V("I")))),
    (r"\mathrm{Bern}(x \mid \lambda)", n.Family("Bernoulli", (V("x"),), (V("lambda"),))),
    ("Normal(0, 1)", n.Family("Normal", (), (N(0), N(1)))),
    ("Bernoulli(x | p)", n.Family("Bernoulli", (V("x"),), (V("p"),))),
    ("Cat(y | pi)", n.Family("Categorical", (V("y"),), (V("pi"),))),
    ("Laplace(0, 1)", n.Family("Laplace", (), (N(0), N(1)))),
    # calculus
    (r"\det J", n.Apply("det", (V("J"),))),
    (r"\left|\det \frac{\partial f(x)}{\partial x}\right|",
     n.Apply("abs", (n.Apply("det", (n.Partial(P("f", ["x"]), V("x")),)),))),
    (r"\nabla_{x} D(x)", n.Grad((V("x"),), P("D", ["x"]))),
    (r"u^\top v", MUL(n.Apply("transpose", (V("u"),)), "v")),
    # cosmetic commands
    (r"\displaystyle a", V("a")), (r"\left. a \right.", V("a")),
    (r"\operatorname{KL}(q \| p)", KL(P("q"), P("p"))), (r"\textrm{ELBO}", V("ELBO")),
    ("E_q[f].", E([P("q")], V("f"))), ("E_q[f],", E([P("q")], V("f"))),
    (r"\mathbb{E}_{q} [f]\,.", E([P("q")], V("f"))),
]


@pytest.mark.parametrize("text,tree", NOTATION, ids=[t for t, _ in NOTATION])
def test_paper_notation(text, tree):
    assert expr(text) == tree


# --- arithmetic conventions ---------------------------------------------------------------------------------

ARITHMETIC = [
    ("a - b + c", ADD("a", NEG("b"), "c")),
    ("a + (b + c)", ADD("a", ADD("b", "c"))),
    ("-2", NEG(2)),
    ("- a * b", NEG(MUL("a", "b"))),
    ("a * b c", MUL("a", "b", "c")),
    ("a / b / c", DIV(DIV("a", "b"), "c")),
    ("a b / c", DIV(MUL("a", "b"), "c")),
    ("2 * f / g h", MUL(DIV(MUL(2, "f"), "g"), "h")),
    ("1/K sum_k f", MUL(DIV(1, "K"), n.Sum(V("k"), V("f")))),
    ("(a b) c", MUL(MUL("a", "b"), "c")),
    ("log x + y", ADD(n.Apply("log", (V("x"),)), "y")),
    (r"\log p(x|z) q(z)", n.Apply("log", (MUL(p_xz, P("q", ["z"])),))),
    ("log(x) y", MUL(n.Apply("log", (V("x"),)), "y")),
    (r"\exp(-E(x)) / Z", DIV(n.Apply("exp", (NEG(P("E", ["x"])),)), "Z")),
    ("1e-3 + .5", ADD(N(0.001), N(0.5))),
    (r"\log \sum_{y} p(x, y)", n.Apply("log", (n.Sum(V("y"), P("p", ["x", "y"])),))),
]


@pytest.mark.parametrize("text,tree", ARITHMETIC, ids=[t for t, _ in ARITHMETIC])
def test_arithmetic(text, tree):
    assert expr(text) == tree


def test_sum_absorbs_only_terms_that_use_its_index():
    assert expr(r"\sum_{t=1}^{T} a_t - b + c_t") == ADD(
        n.Sum(V("t"), ADD(V("a", "t"), V("c", "t")), lower=N(1), upper=V("T")), NEG("b"))
    assert expr(r"(\sum_t a_t) - b_t") == ADD(n.Sum(V("t"), V("a", "t")), NEG(V("b", "t")))


def test_expectation_does_not_absorb_later_terms():
    assert expr(r"\mathbb{E}_{q(z|x)} \log p(x|z) - \log q(z|x)") == ADD(E([q_zx], LOG(p_xz)), NEG(LOG(q_zx)))


# --- statements -----------------------------------------------------------------------------------------------


def test_statements_by_line_and_semicolon():
    one = parse("p(x,z) = p(x|z) p(z); E_q(z|x)[log p(x,z)]")
    two = parse("p(x,z) = p(x|z) p(z)\n\nE_q(z|x)[log p(x,z)]\n")
    assert one == two and len(one.statements) == 2


def test_a_line_that_continues_is_one_statement():
    assert len(parse("E_q(z|x)[log p(x|z)]\n  - KL(q(z|x)||p(z))").statements) == 1
    assert len(parse("E_q(z|x)[log p(x|z)] -\n  KL(q(z|x)||p(z))").statements) == 1
    latex = "\\log p(x) &\\geq \\mathbb{E}_{q}\\left[ f \\right] \\\\\n &= g"
    assert parse_expr(latex) == n.Relation((LOG(P("p", ["x"])), E([P("q")], V("f")), V("g")), (">=", "="))


def test_semicolon_inside_parentheses_separates_parameters():
    assert len(parse(r"\mathcal{L}(x; \theta, \phi) = f").statements) == 1


def test_spans_cover_every_node_and_point_at_the_source():
    text = r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)] - D_{KL}(q(z_t|z_{t-1},x) \| p(z_t|z_{t-1}))"
    program = parse(text)
    for node in program.walk():
        assert node.span is not None, node
        assert 0 <= node.span.start < node.span.end <= len(text)
    kl = next(x for x in program.walk() if isinstance(x, n.Divergence))
    assert text[kl.span.start:kl.span.end] == r"D_{KL}(q(z_t|z_{t-1},x) \| p(z_t|z_{t-1}))"
    z_prev = next(x for x in program.walk() if isinstance(x, n.Var) and x.index and isinstance(x.index[0], n.Add))
    assert text[z_prev.span.start:z_prev.span.end] == "z_{t-1}"


def test_parse_is_cached():
    text = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z)) + 0"
    assert parse(text) is parse(text)


# --- parse_signature ---------------------------------------------------------------------------------------

SIGNATURES = {
    "q(z|x)": q_zx, "p(x|z)": p_xz, "p(z)": p_z, "p_B(z|b)": P("p", ["z"], ["b"], sub="B"),
    "q(z_t|z_{t-1},x)": P("q", [V("z", "t")], [V("z", MINUS1(V("t"))), "x"]), "D(x)": P("D", ["x"]),
    "T(x,z)": P("T", ["x", "z"]), "p_{prior}(z)": P("p", ["z"], sub="prior"),
    "q(z_1|z_2,b_1,b_2)": P("q", [V("z", 1)], [V("z", 2), V("b", 1), V("b", 2)]),
    r"q_\phi(z \mid x)": P("q", ["z"], ["x"], sub="phi"),
}


@pytest.mark.parametrize("text", list(SIGNATURES))
def test_parse_signature(text):
    assert parse_signature(text) == SIGNATURES[text]


# --- the parser itself -----------------------------------------------------------------------------------


def test_grammar_has_no_lalr_conflicts():
    """Lark resolves shift/reduce conflicts silently; the grammar is written to have none."""
    import logging

    from lark import Lark, logger

    from formula.lang.parser import _grammar_text, _Roles

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        Lark(_grammar_text(), parser="lalr", lexer="basic", postlex=_Roles(), debug=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not [m for m in messages if "conflict" in m.lower()], messages


def test_contextual_lexer_builds_the_same_trees():
    """The basic lexer is used for speed; Lark's contextual lexer must agree on every formula here."""
    from lark import Lark

    from formula.lang.parser import _Builder, _grammar_text, _prescan, _Roles

    contextual = Lark(_grammar_text(), parser="lalr", lexer="contextual", postlex=_Roles(),
                      propagate_positions=True, maybe_placeholders=False)
    texts = [t for t, _ in SAME + NOTATION + ARITHMETIC] + [
        "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))",
        r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)] - D_{KL}(q(z_t|z_{t-1},x) \| p(z_t|z_{t-1}))",
        "q(z_1,z_2|b_1,b_2) = q(z_1|z_2,b_1,b_2) p_B(z_2|b_2)",
    ]
    for text in texts:
        assert _Builder().transform(contextual.parse(_prescan(text))) == parse(text), text


def test_sum_absorbs_only_free_uses_of_its_index():
    """M2's unlabelled bound: the entropy's y is integrated, so the entropy stays outside the sum."""
    import formula.lang.nodes as N

    tree = parse(r"\sum_{y} q(y|x) E_{q(z|x,y)}[\log p(x|y,z)] + H[q(y|x)]").objective
    assert isinstance(tree, N.Add) and isinstance(tree.terms[0], N.Sum) and isinstance(tree.terms[1], N.Entropy)
    dmm = parse(r"\sum_{t=1}^{T} E_{q(z_t|x)}[\log p(x_t|z_t)] - KL(q(z_t|x) \| p(z_t))").objective
    assert isinstance(dmm, N.Sum)  # the KL's z_t is integrated but its index t is free


def test_ascii_multi_letter_subscript_on_a_call():
    assert parse_signature("p_data(x)") == parse_signature(r"p_{data}(x)")
    assert parse("q_phi(z|x)") == parse(r"q_\phi(z|x)")


def test_logistic_with_sized_brackets_and_braced_transpose():
    assert parse(r"\sigma\left(a\right)") == parse(r"\sigma(a)") == parse("sigmoid(a)")
    assert parse(r"u^{\top} v") == parse(r"u^\top v")


def test_bars_after_an_operators_script_open_a_norm():
    """`}` or a name closing the script of \\sum, \\min, \\nabla or E is not an operand: a bar after it opens."""
    tree = parse(r"\| \sum_{k=1}^{K} \|x_k\| \|").objective
    assert isinstance(tree, n.Norm) and isinstance(tree.arg, n.Sum) and isinstance(tree.arg.body, n.Norm)
    tree = parse(r"\|\min_G \|a\|\|").objective
    assert isinstance(tree, n.Norm) and isinstance(tree.arg, n.Optimize)
