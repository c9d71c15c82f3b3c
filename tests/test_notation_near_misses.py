"""Paper notation, class by class (issue 13): the spellings of each class parse to the node they mean, and the near
misses of each class (a spelling one keystroke off) are FormulaSyntaxErrors whose caret is on the offending
character and whose message says the fix. Constructs that parse but are not evaluated are check errors naming them.
"""

import pytest

from formula.check.checker import check_text
from formula.errors import FormulaCheckError, FormulaSyntaxError
from formula.lang import nodes as n
from formula.lang.parser import parse, parse_expr


def _error(text: str) -> FormulaSyntaxError:
    with pytest.raises(FormulaSyntaxError) as err:
        parse(text)
    return err.value


def _cases(rows):
    """(text, caret, at, *words) rows as (text, caret, at, words) parameters."""
    return [(text, caret, at, tuple(words)) for text, caret, at, *words in rows]


def _near_miss(text: str, caret: str, at: int, *words: str) -> None:
    """`text` fails with its caret on `caret`, found at `at`, and a message holding every one of `words`."""
    err = _error(text)
    assert err.span is not None and text[err.span[0]:err.span[1]] == caret and err.span[0] == at, err
    assert "^" in str(err) and err.text == text
    for word in words:
        assert word in err.message, err.message


# --- nested and decorated names ---------------------------------------------------------------------------------

NAMES = [
    (r"f^*(t)", lambda e: isinstance(e, n.Dist) and e.name == "f" and e.label == "*"),
    (r"q_j^*(z_j)", lambda e: e.label == "*" and e.sub == "j"),
    (r"D^*_G(x)", lambda e: e.label == "*" and e.sub == "G"),
    (r"\widetilde{\mathcal{L}}^{A}(\theta; x)", lambda e: e.label == "A" and e.mark == "tilde"),
    (r"G^*", lambda e: e == n.Var("G", label="*")),
    (r"\theta^{\ast}", lambda e: e == n.Var("theta", label="*")),
    (r"\mathbb{E}_{x \sim p^*}[f(x)]", lambda e: e.over.dists == (n.Dist("p", label="*"),)),
    (r"\pi^*(a|s)", lambda e: e == n.Dist("pi", (n.Var("a"),), (n.Var("s"),), label="*")),
    (r"\mathcal{L}_{JMkl(\alpha)}(x, w)", lambda e: e.script and isinstance(e.script[0], n.Dist)),
    (r"\mathbb{E}_{x \sim \mathbb{P}_{\hat x}}[f(x)]",
     lambda e: e.over.dists[0].script == (n.Var("x", mark="hat"),)),
    (r"\text{one\_hot}(x)", lambda e: isinstance(e, n.Dist) and e.name == "one_hot"),
    (r"\eta^q_\phi(h^e_l)", lambda e: isinstance(e, n.Dist) and (e.name, e.label, e.sub) == ("eta", "q", "phi")),
    (r"\gamma^t(r_t + 1)", lambda e: isinstance(e, n.Mul)),  # a Greek power before a bracket stays a power
    # the per-example superscript of a called name is dropped as on a variable (it was read as L times x)
    (r"\mathcal{L}^{(i)}(\theta; x)", lambda e: e == n.Dist("L", (n.Var("theta"),), params=(n.Var("x"),))),
]


@pytest.mark.parametrize("text, means", NAMES, ids=[t for t, _ in NAMES])
def test_names_parse(text, means):
    assert means(parse_expr(text))


def test_decorated_subscript_keeps_its_mark_in_every_printer():
    from formula.text.printing import to_ascii, to_latex
    from formula.text.symbolic import pretty

    tree = parse(r"\mathbb{E}_{x \sim \mathbb{P}_{\hat x}}[f(x)]")
    assert "x̂" in pretty(tree) and r"\hat{x}" in to_latex(tree) and r"\hat{x}" in to_ascii(tree)
    for printer in (to_ascii, to_latex, pretty):
        assert parse(printer(tree)) == tree


def test_plain_E_prints_in_italic_and_reads_back():
    from formula.text.symbolic import pretty

    tree = parse(r"\mathit{E}_\theta(x) - \mathbb{E}_{p(x)}[\mathit{E}_\theta(x)]")
    assert pretty(tree) == "𝐸_θ(x) - 𝔼_{p(x)}[𝐸_θ(x)]"
    assert parse(pretty(tree)) == tree


NAME_MISSES = [
    (r"p_{\theta_x(x|z)", "{", 2, "unclosed '{'", "close the subscript with '}'"),
    (r"q_{\phi_}(z|x)", "}", 8, "a '_' needs its subscript"),
    (r"\tilde(x)", "(", 6, "a decoration takes the name it marks", r"\tilde{x}"),
    (r"G^{**}", "*", 3, "a star superscript is one star", "^{*}"),
    (r"f^{*(t)", "{", 2, "close the superscript with '}'", "f^{*}"),
    (r"\mathcal{L}^{A(x)", "{", 12, "close the superscript with '}'"),
    (r"\mathcal{L}_{JMkl(}(x)", "}", 18, "closed by '}'", "expected ')'"),
]



# --- expectation subscripts ---------------------------------------------------------------------------------------


def test_expectation_spellings():
    assert parse(r"\operatorname*{\mathbb{E}}_{q(z|x)}[f(z)]") == parse(r"\mathbb{E}_{q(z|x)}[f(z)]")
    assert parse(r"\mathop{\mathbb{E}}_q(z|x)[f(z)]") == parse(r"\mathbb{E}_{q(z|x)}[f(z)]")
    e = parse_expr(r"\mathbb{E}[\log p(\mu_k); m_k, s_k^2]")
    assert e.params == (n.Var("m", (n.Var("k"),)), n.Pow(n.Var("s", (n.Var("k"),)), n.Num(2.0)))


def test_expectation_over_all_but_one_factor():
    e = parse_expr(r"\mathbb{E}_{-j}\left[\log p(z_j|\mathbf{z}_{-j})\right]")
    assert e.over.dists == (n.Neg(n.Var("j")),)


EXPECT_MISSES = [
    (r"\mathbb{E}_{z \sim }[f(z)]", "}", 19, r"'\sim' needs the distribution it draws from"),
    (r"\mathbb{E}_{(x, y) \sim }[f(x)]", "}", 24, r"'\sim' needs the distribution"),
    (r"\mathbb{E}_{z \sim q,}[f(z)]", "}", 21, "a list ends with an item, not ','"),
    (r"\mathbb{E}_{(x,) \sim p}[f(x)]", ")", 15, "a list ends with an item"),
    (r"\mathbb{E}_{+j}[f]", "+", 12, r"\mathbb{E}_{-j}"),
    (r"\mathbb{E}_{z_1, \ldots \sim q(z)}[f]", r"\sim", 24, r"'\ldots' stands between two draws", "z_K"),
    (r"f [a; b]", "[a; b]", 2, "parameters after ';' go in a call's brackets", r"\mathbb{E}[f; m, s^2]"),
]



# --- index forms ----------------------------------------------------------------------------------------------------


def test_sum_over_two_indices_is_nested_sums():
    e = parse_expr(r"\sum_{\ell, j} k(z_\ell, z_j)")
    assert isinstance(e, n.Sum) and e.index == n.Var("ell") and not e.joined
    assert isinstance(e.body, n.Sum) and e.body.index == n.Var("j") and e.body.joined
    e = parse_expr(r"\sum_{i, j=1}^{m, n} k(x_i, y_j)")
    assert (e.lower, e.upper, e.body.lower, e.body.upper) == (n.Num(1.0), n.Var("m"), n.Num(1.0), n.Var("n"))
    e = parse_expr(r"\sum_{i, j=1}^{n} a_{ij}")
    assert e.upper == e.body.upper == n.Var("n")


def test_sum_over_two_indices_equals_two_sums():
    from formula.text.symbolic import equivalent

    assert equivalent(r"\sum_{\ell, j} k(z_\ell, z_j)", r"\sum_{\ell} \sum_{j} k(z_\ell, z_j)")


INDEX_MISSES = [
    (r"\sum_{\ell,} k(z_\ell)", "}", 11, "a list ends with an item, not ','", r"\sum_{\ell, j}"),
    (r"\sum_{, j} k(z_j)", ",", 6, "a list starts with an item"),
    (r"\sum_{i, j=1}^{m, n, k} a_{ij}", "m, n, k", 15, "one value or one per index", "^{m, n}"),
    (r"\sum_{i, i} a_i", "i", 9, "named twice"),
    (r"\sum_{i + 1, j} a", "i + 1", 6, "names them first and bounds them once", r"\sum_{i, j=1}^{n}"),
    (r"x_{1:}", "}", 5, "a range needs both ends", "x_{1:T}"),
    (r"z_{t,}", "}", 5, "a list ends with an item"),
]



# --- operators --------------------------------------------------------------------------------------------------


OPERATORS = [
    (r"\int_{\mathbf{x}} q(\mathbf{z}|\mathbf{x}) p_d(\mathbf{x}) d\mathbf{x}",
     lambda e: isinstance(e, n.Integral) and e.wrt == (n.Var("x"),) and e.over == n.Var("x")),
    (r"\int dx\, p(x) \int dz\, e(z|x)",
     lambda e: e.wrt == (n.Var("x"),) and isinstance(e.body.factors[-1], n.Integral)),
    (r"\int_0^1 f(t) \,\mathrm{d}t", lambda e: (e.lower, e.upper, e.wrt) == (n.Num(0.0), n.Num(1.0), (n.Var("t"),))),
    (r"\int_{\xi \in \mathbb{R}^n} p(\xi) \sum_{i=1}^{n} \psi_i(\xi) d\xi",  # the d\xi inside the sum written last
     lambda e: e.wrt == (n.Var("xi"),) and isinstance(e.over, n.Relation)
     and not any(v == n.Var("d") for v in e.walk())),
    (r"\arg\min_G \max_D V(D, G) + \lambda L(G)",
     lambda e: isinstance(e, n.ArgOpt) and isinstance(e.body, n.Optimize) and isinstance(e.body.body, n.Add)),
    (r"\operatorname*{arg\,max}_i [g_i + \log \pi_i]", lambda e: isinstance(e, n.ArgOpt) and e.sense == "max"),
    (r"argmin_{x} f(x)", lambda e: isinstance(e, n.ArgOpt)),
    (r"\partial_i \psi_i(\xi; \theta)", lambda e: isinstance(e, n.Derivative) and e.index == n.Var("i")),
    (r"p_E(\cdot|\mathbf{x})", lambda e: e.vars == (n.Placeholder(),)),
    (r"\sigma(\cdot) + \|\cdot\|_2 + \log(|\cdot|)",
     lambda e: sum(isinstance(m, n.Placeholder) for m in e.walk()) == 3),
    (r"a \cdot b", lambda e: isinstance(e, n.Mul)),  # after an operand \cdot still multiplies
    (r"\mathrm{MMD}^2[\mathcal{F}, p, q]",
     lambda e: isinstance(e, n.Pow) and e.base.function_class == n.Var("F") and e.base.kind == "MMD"),
    (r"F(\theta, \omega)", lambda e: isinstance(e, n.Dist)),  # parameters: a named objective, not an f-divergence
]


@pytest.mark.parametrize("text, means", OPERATORS, ids=[t for t, _ in OPERATORS])
def test_operators_parse(text, means):
    assert means(parse_expr(text))


OPERATOR_MISSES = [
    (r"\int dx", r"\int dx", 0, "an integral needs an integrand"),
    (r"\int_{x, y} f(x) dx", "x, y", 6, "one domain"),
    (r"\arg\min G(x)", "G", 9, "need what they range over as a subscript", r"\arg\min_{G}"),
    (r"\arg\max_{} f(x)", "}", 10, "empty braces", r"\arg\max_{i}"),
    (r"\partial_{} f", "}", 10, "empty braces"),
    (r"\mathrm{MMD}^2[\mathcal{F}, p, q", "[", 14, "unclosed '['"),
    (r"\log(|\cdot)", ")", 11, "expected a closing '|'"),
    (r"\|\cdot\|_", "_", 9, "a '_' needs its subscript", r"\|a\|_2"),
    (r"a \cdot", "t", 6, "a product needs its second factor", r"\sigma(\cdot)"),
]



# --- statements -------------------------------------------------------------------------------------------------


def test_side_conditions_and_argument_lists():
    e = parse_expr(r"\max_\theta L(\theta) \quad \text{s.t.} \quad D(\theta) \leq \delta")
    assert isinstance(e, n.SuchThat) and e.conditions[0].ops == ("<=",)
    assert parse(r"L \quad \text{subject to} \quad D \leq \delta") == parse(r"L s.t. D <= delta")
    e = parse_expr(r"\text{ELBO}(x_1, \ldots, x_N)")
    assert e.vars == (n.Var("x", (n.Range(n.Num(1.0), n.Var("N")),)),)
    assert parse_expr(r"\int_{-\infty}^{\infty} f(x) dx").upper == n.Var("infty")


def test_prose_label_and_tuple_parameter():
    e = parse_expr(r"\underbrace{\log p(x)}_{\text{Our gradient penalty}}")
    assert e == n.Labeled(n.LogDensity(n.Dist("p", (n.Var("x"),))), n.Text("Our gradient penalty"))
    e = parse_expr(r"\mathcal{L}(\vec{x}; (\theta, \phi)) = a")
    assert e.members[0].params == (n.ArgTuple((n.Var("theta"), n.Var("phi"))),)
    assert parse_expr(r"(x, y) \sim \tilde p_l") == n.Draw((n.Var("x"), n.Var("y")), n.Dist("p", sub="l", mark="tilde"))


STATEMENT_MISSES = [
    (r"\underbrace{\log p(x)", "{", 11, "unclosed '{'", r"\underbrace{..}_{L_0}"),
    (r"\underbrace{a}", "}", 13, "needs its label as a subscript"),
    (r"\underbrace{\log p(x)}_{\text{data term}", "{", 23, "unclosed '{'"),
    (r"\text{Original critic loss} + a", r"\text{Original critic loss}", 0, r"only an \underbrace label"),
    (r"L(x; (\theta, \phi) = a", "(", 1, "unclosed '('"),
    (r"a = b \quad \text{where}", "}", 23, r"\text{where} needs the definitions"),
    (r"L \quad \text{s.t.}", "}", 18, r"\text{s.t.} needs the conditions"),
    (r"\mathcal{L}(x,) = a", ")", 14, "a list ends with an item"),
    (r"(x, y) \sim", "m", 10, r"'\sim' needs the distribution"),
    (r"x \sim p \sim q", r"\sim", 9, "write further draws after ','"),
]



# --- parsed, printed, not evaluated: a check error naming the construct -------------------------------------------

SIGNATURES = (("p(x)", "dist"), ("q(z|x)", "dist"), ("f(x)", "function"), ("V(G)", "function"))

NOT_EVALUATED = [
    (r"\int p(x) f(x) dx", r"\int p(x) f(x) dx", "an integral"),
    (r"\arg\min_G V(G)", r"\arg\min_G V(G)", r"\arg\min and \arg\max are not evaluated"),
    (r"\mathbb{E}_{q(z|x)}[f^*(z)]", "f^*(z)", "superscript label (f^*)"),
    (r"\mathbb{E}_{q_j^*(z)}[\log p(x)]", "q_j^*(z)", "superscript label"),
    (r"\mathbb{E}_{x \sim p^*}[\log p(x)]", "p^*", "superscript label (p^*)"),
    (r"\mathrm{MMD}[\mathcal{F}, p, q]", r"\mathrm{MMD}[\mathcal{F}, p, q]", "over a function class"),
    (r"\mathbb{E}_{-j}[\log p(x)]", r"\mathbb{E}_{-j}[\log p(x)]", "all factors but one"),
    (r"\sigma(\cdot)", r"\cdot", "placeholder"),
    (r"\partial_i f(x)", r"\partial_i f(x)", "a derivative along one coordinate"),
    (r"f((x, z))", "(x, z)", "a tuple (a, b) is not a value"),
    (r"\mathrm{RNN}^{enc}(x)", r"\mathrm{RNN}^{enc}(x)", "superscript label (RNN^enc)"),  # DRAW's eq. 5, a call
    (r"\mathbb{E}[\log p(x); \theta]", r"\mathbb{E}[\log p(x); \theta]", "parameters after ';'"),
    (r"\log p(x) \quad \text{s.t.} \quad f(x) \geq 0", r"\log p(x) \quad \text{s.t.} \quad f(x) \geq 0",
     "side conditions"),
]


@pytest.mark.parametrize("text, caret, words", NOT_EVALUATED, ids=[m[0] for m in NOT_EVALUATED])
def test_unevaluated_construct_is_a_check_error_naming_it(text, caret, words):
    with pytest.raises(FormulaCheckError) as err:
        check_text(text, SIGNATURES)
    assert words in err.value.message and text[err.value.span[0]:err.value.span[1]] == caret


def test_prose_label_is_only_a_name_when_checked():
    checked = check_text(r"\underbrace{\log p(x)}_{\text{the data term}}", SIGNATURES)
    assert [t.name for t in checked.terms] == [r"\text{the data term}"]


# --- every class's near misses: the caret on the offending place, the fix in the message --------------------------

NEAR_MISSES = [(cls, *case) for cls, rows in (("names", NAME_MISSES), ("expectation subscripts", EXPECT_MISSES),
                                              ("index forms", INDEX_MISSES), ("operators", OPERATOR_MISSES),
                                              ("statements", STATEMENT_MISSES)) for case in _cases(rows)]


@pytest.mark.parametrize("cls, text, caret, at, words", NEAR_MISSES, ids=[f"{m[0]}: {m[1]}" for m in NEAR_MISSES])
def test_near_miss(cls, text, caret, at, words):
    _near_miss(text, caret, at, *words)


def test_cli_prints_a_paper_integral_and_check_names_it(capsys):
    """`formula pretty` works on a formula the compiler does not evaluate; `formula check` names the construct."""
    from formula import cli

    text = r"q(\mathbf{z}) = \int_{\mathbf{x}} q(\mathbf{z}|\mathbf{x}) p_d(\mathbf{x}) d\mathbf{x}"
    assert cli.main(["pretty", text]) == 0
    assert capsys.readouterr().out.strip() == "q(z) = ∫_{x} dx q(z|x)⋅p_d(x)"
    assert cli.main(["check", r"\int q(z|x) p_d(x) dx", "--dist", "q(z|x)", "--dist", "p_d(x)"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("formula.FormulaCheckError: an integral (\\int ... dx) is not evaluated")
    assert err[2].strip() == "^" * len(r"\int q(z|x) p_d(x) dx")


def test_a_labelled_call_of_a_declared_function_is_a_call_of_it():
    """DRAW's `\\mathrm{RNN}^{enc}(h)` and a convex conjugate `f^*(t)`, declared under their whole names, are calls of
    those declarations (the label is part of the name); without such a declaration they stay refused, never read as
    the bare name's function."""
    import torch

    import formula as fm

    enc, dec = fm.Function("RNN^{enc}(x)", net=lambda x: 2 * x), fm.Function("RNN^{dec}(x)", net=lambda x: 3 * x)
    x = torch.tensor([1.0, -2.0])
    value = fm.compile(r"\mathrm{RNN}^{enc}(x) + \mathrm{RNN}^{dec}(x)", [enc, dec])(x=x)
    torch.testing.assert_close(value, 5 * x)
    star = fm.Function("f^*(t)", net=lambda t: t ** 2)
    torch.testing.assert_close(fm.compile("f^*(t)", [star])(t=x), x ** 2)
    with pytest.raises(FormulaCheckError, match=r'declare fm.Function\("f\^\*\(\.\.\.\)"') as err:
        fm.compile("f^*(t)", [fm.Function("f(t)", net=lambda t: t)])
    assert err.value.text[slice(*err.value.span)] == "f^*(t)"


def test_a_labelled_call_in_a_definition_line_without_its_declaration_says_how_to_declare_it():
    import torch

    import formula as fm

    text = "h_t = RNN^{dec}(h_{t-1}, x_t)\nsum_{t=1}^{T} log p(x_t|h_{t-1})"
    decls = [fm.Function("RNN_dec(h, x)", net=lambda h, x: h), fm.Initial("h_0", size=(2,)),
             fm.Normal("p(x_t|h)", net=lambda h: {"loc": h, "scale": torch.ones_like(h)})]
    with pytest.raises(FormulaCheckError, match=r'declare fm.Function\("RNN\^\{dec\}\(\.\.\.\)"') as err:
        fm.compile(text, decls)
    assert err.value.text[slice(*err.value.span)] == "RNN^{dec}(h_{t-1}, x_t)"
