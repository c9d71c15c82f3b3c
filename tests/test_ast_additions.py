"""The AST additions shared by this session's helpers (draws, where clauses, several items in an expectation
subscript, bare-variable items, uniforms, propto, decorated distribution names, divergence subscripts): each
spelling parses to the agreed node, prints back in ASCII, LaTeX and Unicode, and the near misses are syntax errors
with a caret."""

import pytest

import formula.lang.nodes as n
from formula.errors import FormulaSyntaxError
from formula.lang.parser import parse, parse_signature
from formula.text.printing import to_ascii, to_latex
from formula.text.symbolic import equivalent, pretty

x, y, z, t, T, f, eps = (n.Var(s) for s in ("x", "y", "z", "t", "T", "f", "epsilon"))
U01 = n.Family("Uniform", (), (n.Num(0.0), n.Num(1.0)))
NORMAL = n.Family("Normal", (), (n.Num(0.0), n.Var("I")))
q_zx = n.Dist("q", (z,), (x,))


def one(text):
    program = parse(text)
    assert len(program.statements) == 1, program
    return program.statements[0]


def E(sampler, body, joined=False):
    return n.Expect(sampler, body, joined=joined)


SPELLINGS = [
    # 1. draws
    (r"\epsilon \sim \mathcal{U}[0, 1]", n.Draw((eps,), U01)),
    ("eps ~ U[0, 1]", n.Draw((n.Var("eps"),), U01)),
    ("epsilon ~ Uniform(0, 1)", n.Draw((eps,), U01)),
    (r"t \sim \mathcal{U}\{1, \ldots, T\}", n.Draw((t,), n.Family("UniformDiscrete", (), (n.Num(1.0), T)))),
    (r"t \sim \mathcal{U}\{1, T\}", n.Draw((t,), n.Family("UniformDiscrete", (), (n.Num(1.0), T)))),
    (r"t ~ U\{1, ..., T\}", n.Draw((t,), n.Family("UniformDiscrete", (), (n.Num(1.0), T)))),
    (r"(\mathbf{x}, y) \sim \tilde p_l", n.Draw((x, y), n.Dist("p", sub="l", mark="tilde"))),
    (r"z' \sim \bar q(z)", n.Draw((n.Var("z", primes=1),), n.Dist("q", (z,), mark="bar"))),
    # 2./3. several items, bare variables
    (r"\mathbb{E}_{z \sim q(z|x), \epsilon \sim \mathcal{N}(0, I)}[f]",
     E(n.Sampler((q_zx,)), E(n.Sampler((NORMAL,), (eps,)), f, True))),
    (r"\mathbb{E}_{t, x_0, \epsilon}[f]",
     E(n.Sampler((), (t,)), E(n.Sampler((), (n.Var("x", (n.Num(0.0),)),)), E(n.Sampler((), (eps,)), f, True), True))),
    ("E_{t, x_0, epsilon}[f]",
     E(n.Sampler((), (t,)), E(n.Sampler((), (n.Var("x", (n.Num(0.0),)),)), E(n.Sampler((), (eps,)), f, True), True))),
    (r"\mathbb{E}_{z_{t_2} \sim p_B(z|b_{t_2}), z_{t_1} \sim q(z_{t_1}|z_{t_2})}[f]",
     E(n.Sampler((n.Dist("p", (z,), (n.Var("b", (n.Var("t", (n.Num(2.0),)),)),), "B"),),
                 (n.Var("z", (n.Var("t", (n.Num(2.0),)),)),)),
       E(n.Sampler((n.Dist("q", (n.Var("z", (n.Var("t", (n.Num(1.0),)),)),), (n.Var("z", (n.Var("t", (n.Num(2.0),)),)),)),)),
         f, True))),
    (r"\mathbb{E}_{(\mathbf{x}, y) \sim \tilde p_l}[f]",
     E(n.Sampler((n.Dist("p", sub="l", mark="tilde"),), (x, y)), f)),
    (r"\mathbb{E}_{\hat x}[f]", E(n.Sampler((), (n.Var("x", mark="hat"),)), f)),
    (r"\mathbb{E}_{z'}[f]", E(n.Sampler((), (n.Var("z", primes=1),)), f)),
    (r"\mathbb{E}_{x_{\le t}}[f]", E(n.Sampler((), (n.Var("x", (n.Before(t, True),)),)), f)),
    ("E_q[f]", E(n.Sampler((n.Dist("q"),)), f)),
    ("E_x[f]", E(n.Sampler((n.Dist("x"),)), f)),
    (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}[f]",
     E(n.Sampler((q_zx,), (n.Var("z", (n.Range(n.Num(1.0), n.Var("K")),)),)), f)),
    # 4. uniforms
    (r"\mathcal{U}(a, b)", n.Family("Uniform", (), (n.Var("a"), n.Var("b")))),
    (r"\mathrm{Unif}(a, b)", n.Family("Uniform", (), (n.Var("a"), n.Var("b")))),
    (r"\mathcal{U}(\mathbf{x})", n.Dist("U", (x,))),
    # 5. where clauses
    (r"L \quad \text{where} \quad \hat x = \epsilon x, \epsilon \sim \mathcal{U}[0, 1]",
     n.Where(n.Var("L"), (n.Relation((n.Var("x", mark="hat"), n.Mul((eps, x))), ("=",)), n.Draw((eps,), U01)))),
    (r"L, \text{where } a = b \text{and} c = d",
     n.Where(n.Var("L"), (n.Relation((n.Var("a"), n.Var("b")), ("=",)), n.Relation((n.Var("c"), n.Var("d")), ("=",))))),
    (r"L \quad \text{with} \quad a = b \quad c \sim p",
     n.Where(n.Var("L"), (n.Relation((n.Var("a"), n.Var("b")), ("=",)), n.Draw((n.Var("c"),), n.Dist("p"))))),
    ("L where a = b, c ~ p",
     n.Where(n.Var("L"), (n.Relation((n.Var("a"), n.Var("b")), ("=",)), n.Draw((n.Var("c"),), n.Dist("p"))))),
    # 6. propto
    (r"q(z|x,w) \propto p(z) q(z|x)", n.Relation((n.Dist("q", (z,), (x, n.Var("w"))),
                                                  n.Mul((n.Dist("p", (z,)), q_zx))), ("propto",))),
    ("a propto b", n.Relation((n.Var("a"), n.Var("b")), ("propto",))),
    # 7. decorated distribution names
    (r"\bar q(z)", n.Dist("q", (z,), mark="bar")),
    (r"\bar{q}(z)", n.Dist("q", (z,), mark="bar")),
    (r"\tilde p_l(x, y)", n.Dist("p", (x, y), sub="l", mark="tilde")),
    (r"\widetilde{p}_l(x, y)", n.Dist("p", (x, y), sub="l", mark="tilde")),
    (r"\hat p(x)", n.Dist("p", (x,), mark="hat")),
    (r"KL(\bar q || p)", n.Divergence("KL", n.Dist("q", mark="bar"), n.Dist("p"))),
    # 8. divergence subscripts
    (r"\mathrm{MMD}_{imq}(a||b)", n.Divergence("MMD", n.Dist("a"), n.Dist("b"), "imq")),
    ("W_1(p, q)", n.Divergence("W", n.Dist("p"), n.Dist("q"), "1")),
    ("KL_D(q||p)", n.Divergence("KL", n.Dist("q"), n.Dist("p"), "D")),
    (r"D_{JS}(p \| q)", n.Divergence("JS", n.Dist("p"), n.Dist("q"))),
    # 9. definitions are relations
    (r"\bar q(z) = \prod_j q(z_j)",
     n.Relation((n.Dist("q", (z,), mark="bar"), n.Prod(n.Var("j"), n.Dist("q", (n.Var("z", (n.Var("j"),)),)))), ("=",))),
]


@pytest.mark.parametrize("text, tree", SPELLINGS, ids=[s for s, _ in SPELLINGS])
def test_spelling_parses_to_the_agreed_node(text, tree):
    assert one(text) == tree


@pytest.mark.parametrize("text, tree", SPELLINGS, ids=[s for s, _ in SPELLINGS])
def test_spelling_prints_back(text, tree):
    program = n.Program((tree,))
    assert parse(to_ascii(program)) == program
    assert parse(to_latex(program)) == program
    assert pretty(program)  # the Unicode printer knows every new node
    assert equivalent(to_ascii(program), to_latex(program))


def test_joined_changes_nothing_for_single_items():
    assert one("E_{q(z|x)}[f]").joined is False
    assert one("E_{q(z|x)}[E_{p(x)}[f]]").body.joined is False  # written nested: stays nested
    assert one("E_{q(z|x), p(x)}[f]").body.joined is True


def test_decorated_name_is_its_own_name():
    assert one(r"\bar q(z)").full_name == "\\bar{q}"
    assert one(r"\tilde p_l(x)").full_name == "\\tilde{p}_l"
    assert one(r"\bar q(z)") != one("q(z)")
    assert parse_signature(r"\bar q(z)") == parse_signature(r"\bar{q}(z)")


def test_where_and_draw_statements_with_others():
    program = parse("eps ~ N(0, 1)\nE_{q(z|x)}[f] where f = eps * z")
    assert isinstance(program.statements[0], n.Draw) and isinstance(program.statements[1], n.Where)
    assert parse(to_ascii(program)) == program
    program = parse("L where a = b; c")  # `;` ends the where clause
    assert len(program.statements) == 2


def test_tilde_spacing_stays_spacing():
    assert one(r"\beta~D_{KL}(q\|p)") == n.Mul((n.Var("beta"), n.Divergence("KL", n.Dist("q"), n.Dist("p"))))


@pytest.mark.parametrize("text, message, at", [
    (r"(a \sim b) + c", "statement of its own", "a"),
    (r"a + b \sim p", "variable", "a"),
    (r"L \quad \text{where} \quad a + b", "where clause defines", "a"),
    (r"\mathcal{N}\{1, T\}", "discrete uniform", "\\"),
])
def test_near_misses_are_syntax_errors_with_a_caret(text, message, at):
    with pytest.raises(FormulaSyntaxError) as err:
        parse(text)
    assert message in str(err.value)
    assert err.value.span is not None and text[err.value.span[0]] == at


# --- issue 13 a: misparses --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, tree", [
    ("exp(a)^2", n.Pow(n.Apply("exp", (n.Var("a"),)), n.Num(2.0))),
    (r"\exp\left(a\right)^{2} b", n.Mul((n.Pow(n.Apply("exp", (n.Var("a"),)), n.Num(2.0)), n.Var("b")))),
    (r"\mathbb{E}[x]^2", n.Pow(n.Expect(None, x), n.Num(2.0))),
    (r"\log(x)^2 + 1", n.Add((n.Pow(n.Apply("log", (x,)), n.Num(2.0)), n.Num(1.0)))),
    ("exp(a^2)", n.Apply("exp", (n.Pow(n.Var("a"), n.Num(2.0)),))),
    ("(a)^2", n.Pow(n.Var("a"), n.Num(2.0))),
])
def test_a_script_after_a_call_bracket_applies_to_the_call(text, tree):
    assert one(text) == tree


@pytest.mark.parametrize("text, absorbed", [
    (r"\sum_{y'} q(y'|x')\left(a + b\right) + \alpha \log q(y|x)", False),  # issue 12 item 8
    (r"\sum_{y'} q(y'|x') f(y') + \alpha \log q(y|x)", False),
    (r"\sum_{y} q(y|x) f(y) + \alpha \log q(\tilde y|x)", False),
    (r"\sum_{y} q(y|x) f(y) + \alpha \log q(y'|x)", False),
    (r"\sum_{y} q(y|x)\left(a\right) + \alpha \log q(y|x)", True),  # uses y: docs/language.md §1
    (r"\sum_{y'} q(y'|x') f(y') - \log q(y'|x)", True),
])
def test_an_unbracketed_sum_takes_only_terms_that_use_its_index(text, absorbed):
    tree = one(text)
    assert isinstance(tree, n.Sum) == absorbed
    assert parse(to_ascii(tree)) == n.Program((tree,))


# --- issue 13 b: the Unicode printer's output reads back ---------------------------------------------------


@pytest.mark.parametrize("unicode_text, ascii_text", [
    ("𝔼_{q(z|x)}[log p(x|z)] − D_KL[q(z|x) ‖ p(z)]", "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"),
    ("∑_{t=1}^{T} 𝔼_{q(zₜ|zₜ₋₁, x)}[log p(xₜ|zₜ)]", r"\sum_{t=1}^{T} E_{q(z_t|z_{t-1}, x)}[log p(x_t|z_t)]"),
    ("log p(x) ≥ 𝔼_{q(z|x)}[log p(x, z) − log q(z|x)] ≕ L", r"\log p(x) \geq E_{q(z|x)}[log p(x,z) - log q(z|x)] =: L"),
    ("β⋅√(a) + 1/2⋅x² + ‖a‖₂² − x̃′ + ℍ[q] + ∇ₓ D(x)",
     r"\beta \sqrt{a} + \frac{1}{2} x^{2} + \|a\|_2^2 - \tilde{x}' + H[q] + \nabla_{x} D(x)"),
    ("𝔼_{z₁,…,z_K ~ q(z|x)}[log 1/K⋅∑_{k=1}^{K} p(x, zₖ)/q(zₖ|x)]",
     r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k|x)}\right]"),
    ("ε ~ 𝒰(0, 1)", r"\epsilon \sim \mathcal{U}[0, 1]"),
    ("t ~ 𝒰{1, …, T}", r"t \sim \mathcal{U}\{1, \ldots, T\}"),
    ("q̄(z) ∝ p(z)", r"\bar q(z) \propto p(z)"),
    ("|det(∂f(x)/∂x)|", r"\left|\det \frac{\partial f(x)}{\partial x}\right|"),
    ("⏟[D_KL[q ‖ p]]_{L_T}", r"\underbrace{KL(q||p)}_{L_T}"),
    ("min_G max_D V(D, G)", r"\min_G \max_D V(D,G)"),
    ("μ_θ(xₜ, t) + σ(a) + uᵀ⋅v", r"\mu_\theta(x_t, t) + \sigma(a) + u^\top v"),
])
def test_unicode_text_parses_like_its_ascii(unicode_text, ascii_text):
    assert parse(unicode_text) == parse(ascii_text)
    assert parse(pretty(parse(ascii_text))) == parse(ascii_text)


def test_unicode_spans_and_carets_point_into_the_pasted_text():
    text = "𝔼_{q(z|x)}[log p(x|z)] − D_KL[q(z|x) ‖ p(z)]"
    kl = one(text).terms[1].arg
    assert text[kl.span.start:kl.span.end] == "D_KL[q(z|x) ‖ p(z)]"
    with pytest.raises(FormulaSyntaxError) as err:
        parse("θ⋅𝔼_{q(z|x)}[f] + +")
    assert err.value.text == "θ⋅𝔼_{q(z|x)}[f] + +"
    assert err.value.text[err.value.span[0]] == "+" and err.value.span[0] == len("θ⋅𝔼_{q(z|x)}[f] + ")


def test_a_signed_underbrace_after_a_term_is_a_new_term():
    """DDPM eq. 5: `... \\underbrace{KL(..)}_{L_{t-1}} \\underbrace{- \\log p(x_0|x_1)}_{L_0}` is a sum of terms."""
    tree = one(r"\sum_{t>1} \underbrace{a_t}_{L_{t-1}} \underbrace{- \log p(x_0|x_1)}_{L_0}")
    assert isinstance(tree, n.Add) and isinstance(tree.terms[0], n.Sum)
    assert tree.terms[1] == n.Labeled(n.Neg(n.LogDensity(n.Dist("p", (n.Var("x", (n.Num(0.0),)),),
                                                                 (n.Var("x", (n.Num(1.0),)),)))), n.Var("L", (n.Num(0.0),)))
    assert one(r"a \underbrace{b}_{L}") == n.Mul((n.Var("a"), n.Labeled(n.Var("b"), n.Var("L"))))  # unsigned: a factor


@pytest.mark.parametrize("text, count", [
    (r"G = -\log(-\log U), \quad U \sim \mathrm{Uniform}(0, 1)", 2),
    (r"z = \mu + \sigma \odot \epsilon \quad \text{and} \quad \epsilon \sim \mathcal{N}(0, I)", 2),
    (r"a \qquad b = c", 2),
    (r"L \quad \text{where} \quad a = b, \quad c \sim p", 1),
    (r"L, \quad \text{where} \quad a = b", 1),
    (r"(a \quad b)", 1),
])
def test_displays_joined_by_spacing_are_statements(text, count):
    program = parse(text)
    assert len(program.statements) == count
    assert parse(to_ascii(program)) == program and parse(to_latex(program)) == program


def test_a_unicode_command_before_a_unicode_letter_keeps_a_space():
    assert parse("‖ℍ[q]‖") == parse(r"\|H[q]\|")
    assert parse("μₜ(x)") == parse(r"\mu_t(x)")
