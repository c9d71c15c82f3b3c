"""Texts that used to parse into a plausible but wrong tree (issue 16), and printers whose output read back as
something else. Each is pinned to the tree it means."""

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning

import formula as fm
import formula.lang.nodes as n
from formula.lang.parser import parse, parse_expr, parse_signature
from formula.text.printing import to_ascii, to_latex

from strategies import expressions

warnings.filterwarnings("ignore", category=HypothesisWarning)

x, z = n.Var("x"), n.Var("z")
EP = n.Expect(n.Sampler((n.Dist("p"),)), n.Var("f"))
EQ = n.Expect(n.Sampler((n.Dist("q"),)), n.Var("g"))


# --- a min/max prefix covers the whole objective -------------------------------------------------------------


def test_prefix_without_brackets_covers_every_term():
    tree = parse_expr(r"\min_G \max_D E_p[f] + E_q[g]")
    assert tree == n.Optimize("min", (n.Var("G"),), n.Optimize("max", (n.Var("D"),), n.Add((EP, EQ))))


def test_prefix_on_a_named_objective_covers_the_relation():
    tree = parse_expr(r"\min_G\max_D V(D,G) = E_p[f] + E_q[g]")
    v = n.Dist("V", (n.Var("D"), n.Var("G")))
    assert tree == n.Optimize("min", (n.Var("G"),), n.Optimize("max", (n.Var("D"),),
                                                            n.Relation((v, n.Add((EP, EQ))), ("=",))))


def test_brackets_still_say_otherwise():
    assert parse_expr(r"(\min_G E_p[f]) + E_q[g]") == n.Add((n.Optimize("min", (n.Var("G"),), EP), EQ))
    inner = parse_expr(r"\min_G (\max_D E_p[f]) + E_q[g]")
    assert inner == n.Optimize("min", (n.Var("G"),), n.Add((n.Optimize("max", (n.Var("D"),), EP), EQ)))
    assert parse_expr(r"a + \min_G E_p[f] + E_q[g]").terms[1] == n.Optimize("min", (n.Var("G"),), EP)


@pytest.mark.parametrize("text", [r"\min_G \max_D E_p[f] + E_q[g]", r"\min_G\max_D V(D,G) = E_p[f] + E_q[g]",
                                  r"\min_G (\max_D E_p[f]) + E_q[g]", r"(\min_G E_p[f]) + E_q[g]"])
def test_prefixed_statements_print_as_written_and_read_back(text):
    tree = parse(text)
    assert parse(to_ascii(tree)) == tree and parse(to_latex(tree)) == tree
    assert to_ascii(parse(r"\min_G \max_D E_p[f] + E_q[g]")) == r"\min_{G} \max_{D} E_{p}[f] + E_{q}[g]"


# --- superscript labels are part of the name --------------------------------------------------------------


@pytest.mark.parametrize("text, tree", [
    ("x^q", n.Var("x", label="q")),
    ("h^e_l", n.Var("h", (n.Var("l"),), label="e")),
    ("h_l^e", n.Var("h", (n.Var("l"),), label="e")),
    ("x^{enc}", n.Var("x", label="enc")),
    ("(x)^q", n.Pow(x, n.Var("q"))),
    (r"\gamma^t", n.Pow(n.Var("gamma"), n.Var("t"))),
    ("x^2", n.Pow(x, n.Num(2.0))),
    ("e^x", n.Pow(n.Var("e"), x)),
    ("x^{t-1}", n.Pow(x, n.Add((n.Var("t"), n.Neg(n.Num(1.0)))))),
])
def test_superscript_label_or_power(text, tree):
    assert parse_expr(text) == tree
    assert parse_expr(to_ascii(tree)) == tree and parse_expr(to_latex(tree)) == tree


def test_a_labelled_variable_is_not_the_plain_one():
    assert parse_expr("x^q") != x
    assert not fm.equivalent("x^q", "x") and fm.equivalent("h^e_l + 1", "1 + h_l^e")


def test_a_letter_subscript_stays_on_the_variable_for_the_checker():
    assert parse_expr("x_q") == n.Var("x", (n.Var("q"),))


# --- Greek names are function and distribution names ------------------------------------------------------


@pytest.mark.parametrize("text, tree", [
    (r"\psi(z)", n.Dist("psi", (z,))),
    ("psi(z)", n.Dist("psi", (z,))),
    (r"\psi_k(z)", n.Dist("psi", (z,), sub="k")),
    (r"\pi(a|s)", n.Dist("pi", (n.Var("a"),), (n.Var("s"),))),
    (r"\epsilon_\theta(x_t, t)", n.Dist("epsilon", (n.Var("x", (n.Var("t"),)), n.Var("t")), sub="theta")),
    (r"\varepsilon_\theta(x)", n.Dist("epsilon", (x,), sub="theta")),
    (r"\mathcal{E}_\theta(x)", n.Dist("E", (x,), sub="theta")),
    (r"\alpha (a + b)", n.Mul((n.Var("alpha"), n.Add((n.Var("a"), n.Var("b")))))),  # a space: a product
    (r"\sigma(a)", n.Apply("sigmoid", (n.Var("a"),))),
])
def test_greek_calls(text, tree):
    assert parse_expr(text) == tree
    assert parse_expr(to_ascii(tree)) == tree and parse_expr(to_latex(tree)) == tree


@pytest.mark.parametrize("text", [r"\psi(z)", r"\pi(a|s)", r"\epsilon_\theta(x_t, t)", r"\mathcal{E}_\theta(x)"])
def test_greek_signatures(text):
    assert parse_signature(text) == parse_expr(text)


def test_norm_is_the_ascii_spelling_of_the_euclidean_norm():
    assert parse_expr("norm(g(x))") == n.Norm(n.Dist("g", (x,)))
    assert fm.equivalent(r"\|a\|", r"\|a\|_2") and fm.equivalent("norm(a)", r"\|a\|_2")
    assert not fm.equivalent(r"\|a\|", r"\|a\|_1")


def test_a_named_objective_is_its_body():
    body = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
    for named in (rf"\mathcal{{L}}(x) = {body}", rf"\mathcal{{L}}(x; \theta, \phi) = {body}",
                  rf"\text{{ELBO}} = {body}", rf"{body} =: \mathcal{{L}}", rf"\log p(x) \geq {body} =: \mathcal{{L}}"):
        assert fm.equivalent(named, body), named
    assert not fm.equivalent(rf"\mathcal{{L}}(x) = {body}", "KL(q(z|x)||p(z))")
    assert not fm.equivalent("p(x,z) = p(x|z) p(z)", "p(x|z) p(z)")  # a factorisation is not a name


# --- every printer's output reads back: names that collide with keywords -----------------------------------

_OTHER = expressions(max_leaves=4)  # built once: a recursive strategy is costly to construct
COLLIDING = ("E", "H", "KL", "I", "D", "W", "JS", "MMD", "log", "exp", "sum", "min", "sg", "sigma", "Normal", "psi")


@st.composite
def colliding_trees(draw):
    """Variables and calls named like a keyword (E, H, KL, I, D, W ...), with subscripts and arguments, inside
    generated expressions."""
    name = draw(st.sampled_from(COLLIDING))
    sub = draw(st.sampled_from((None, "theta", "KL", "JS", "k")))
    args = draw(st.lists(st.sampled_from((x, z, n.Var("y"))), min_size=1, max_size=2))
    leaf = draw(st.sampled_from((
        n.Dist(name, tuple(args), sub=sub),
        n.Dist(name, (args[0],), (z,), sub),
        n.Var(name),
        n.Var(name, (n.Var("t"),)),
    )))
    other = draw(_OTHER)
    return draw(st.sampled_from((leaf, n.Add((leaf, other)), n.Mul((other, leaf)), n.Expect(None, leaf))))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(colliding_trees())
def test_names_that_collide_with_keywords_read_back(tree):
    assert parse_expr(to_ascii(tree)) == tree, to_ascii(tree)
    assert parse_expr(to_latex(tree)) == tree, to_latex(tree)
    assert fm.equivalent(to_ascii(tree), to_latex(tree))
    assert fm.pretty(tree)
