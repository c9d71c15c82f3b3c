"""`equivalent(a, b)` (docs/language.md §4): yes up to algebra that keeps the value, no when anything that changes
the objective differs. Every case is checked in both argument orders."""

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import HypothesisWarning

from formula import FormulaSyntaxError
import formula.lang.nodes as n
from formula.lang.parser import parse
from formula.text.symbolic import canonical, equivalent

from strategies import expressions

warnings.filterwarnings("ignore", category=HypothesisWarning)  # the recursive strategy's repr is large

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
VAE_LATEX = r"\mathbb{E}_{q_\phi(z|x)}\left[\log p_\theta(x|z)\right] - D_{KL}\left(q_\phi(z|x) \,\|\, p(z)\right)"

EQUIVALENT = {
    "ascii vs latex VAE (docs/language.md §5)": (VAE, VAE_LATEX),
    "reordered sum": ("a + b + c", "c + a + b"),
    "reordered product": ("a * b * c", "c b a"),
    "coefficient after the term": ("beta*KL(q(z|x)||p(z))", r"KL(q(z|x)||p(z))*\beta"),
    "distribute a scalar": ("beta * (a - b)", "beta*a - beta*b"),
    "distribute a number": ("2 * (a + b)", "2*a + 2*b"),
    "distribute a sign": ("-(a - b)", "b - a"),
    "linearity of expectation": ("E_{q(z|x)}[log p(x|z) - log q(z|x)]",
                                 "E_{q(z|x)}[log p(x|z)] - E_{q(z|x)}[log q(z|x)]"),
    "scalar out of an expectation": ("E_{q(z|x)}[beta * log p(x|z)]", r"\beta \mathbb{E}_{q(z|x)}[\log p(x|z)]"),
    "number out of an expectation": ("E_{q(z|x)}[0.5 * log p(x|z)]", r"\frac{1}{2} \mathbb{E}_{q(z|x)}[\log p(x|z)]"),
    "conditioned variable out of an expectation": ("E_{q(z|x)}[x * log p(x|z)]", "x * E_{q(z|x)}[log p(x|z)]"),
    "expectation of a constant": ("E_{q(z|x)}[c]", "c"),
    "numbers out of a bare expectation": ("E_q[2 f + 3 g]", "3 E_q[g] + 2 E_q[f]"),
    "constant term out of an expectation": ("E_{q(z|x)}[log p(x|z) + c]", "E_{q(z|x)}[log p(x|z)] + c"),
    "linearity of sums": ("sum_{t=1}^{T} (a_t + b_t)", "(sum_{t=1}^{T} a_t) + sum_{t=1}^{T} b_t"),
    "scalar out of a sum": ("sum_{t=1}^{T} beta * a_t", r"\beta \sum_{t=1}^{T} a_t"),
    "greek subscript is a parameter": (r"q_\phi(z|x)", "q(z|x)"),
    "greek subscript under log": (r"\log p_{\theta}(x|z)", "log p(x|z)"),
    "fraction vs decimal": (r"\frac{1}{2} a", "0.5 a"),
    "division vs decimal": ("a/2", "0.5*a"),
    "beta-VAE, spelled and ordered differently": (
        "E_{q(z|x)}[log p(x|z)] - beta * KL(q(z|x)||p(z))",
        r"-\beta D_{KL}(q(z|x) \| p(z)) + \mathbb{E}_{q(z|x)} \log p(x|z)"),
    "sampling set vs distribution": ("E_{z ~ q(z|x)}[log p(x|z)]", "E_{q(z|x)}[log p(x|z)]"),
    "statement by statement": ("p(x,z) = p(x|z) p(z)\nE_{q(z|x)}[log p(x,z) - log q(z|x)]",
                               "p(x,z) = p(z) p(x|z)\nE_{q(z|x)}[log p(x,z)] - E_{q(z|x)}[log q(z|x)]"),
    "named term": (r"a - \underbrace{KL(q(z|x)||p(z))}_{L_T}", "a - KL(q(z|x)||p(z))"),
    "DMM: sum over both terms": (
        r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)] - D_{KL}(q(z_t|z_{t-1},x) \| p(z_t|z_{t-1}))",
        "(sum_{t=1}^{T} E_{q(z_t|z_{t-1},x)}[log p(x_t|z_t)]) - sum_{t=1}^{T} KL(q(z_t|z_{t-1},x) || p(z_t|z_{t-1}))"),
}

NOT_EQUIVALENT = {
    "variable differs": (VAE, "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(w))"),
    "indexed variable differs": ("z_t", "z_{t-1}"),
    "decoration differs": (r"\tilde{x}", "x"),
    "condition differs": (VAE, "E_q(z|y)[log p(x|z)] - KL(q(z|x)||p(z))"),
    "entropy condition differs": ("H[q(y|x)]", "H[q(y|w)]"),
    "sign differs": (VAE, "E_q(z|x)[log p(x|z)] + KL(q(z|x)||p(z))"),
    "sign of a difference": ("-(a - b)", "a - b"),
    "coefficient differs": (VAE, "E_q(z|x)[log p(x|z)] - 2 KL(q(z|x)||p(z))"),
    "scalar differs": ("beta*KL(q(z|x)||p(z))", "alpha*KL(q(z|x)||p(z))"),
    "number differs": ("0.5 a", "0.25 a"),
    "distribution name differs": (VAE, "E_q(z|x)[log r(x|z)] - KL(q(z|x)||p(z))"),
    "non-greek subscript is part of the name": ("p_B(z|b)", "p(z|b)"),
    "named subscript is part of the name": (r"p_{prior}(z)", "p(z)"),
    "divergence arguments swapped": (VAE, "E_q(z|x)[log p(x|z)] - KL(p(z)||q(z|x))"),
    "expectation of a constant is the constant, not of a sampled value": ("E_{q(z|x)}[c]", "E_{q(z|x)}[z]"),
    "a term missing": ("E_{q(z|x)}[log p(x|z)]", "E_{q(z|x)}[log p(x|z)] - E_{q(z|x)}[log q(z|x)]"),
    "sum bound differs": ("sum_{t=1}^{T} a_t", "sum_{t=1}^{K} a_t"),
    "sampled variable is not a constant": ("E_{q(z|x)}[z * log p(x|z)]", "z * E_{q(z|x)}[log p(x|z)]"),
    "quotient inverted": ("a/b", "b/a"),
    "power of an expectation": ("E_{q(z|x)}[log p(x|z)]", "E_{q(z|x)}[log p(x|z)]^2"),
    "extra statement": ("a", "a\nb"),
    "bare expectation is not its body": ("E_q[log p(x|z)]", "log p(x|z)"),
    "sampler differs": ("E_{q(z|x)}[f(z)]", "E_{p(z)}[f(z)]"),
}


@pytest.mark.parametrize("name", sorted(EQUIVALENT))
def test_equivalent(name):
    a, b = EQUIVALENT[name]
    assert equivalent(a, b)
    assert equivalent(b, a)


@pytest.mark.parametrize("name", sorted(NOT_EQUIVALENT))
def test_not_equivalent(name):
    a, b = NOT_EQUIVALENT[name]
    assert not equivalent(a, b)
    assert not equivalent(b, a)


def test_at_least_as_many_negative_cases():
    assert len(NOT_EQUIVALENT) >= len(EQUIVALENT) - 3  # every kind of difference is covered
    assert len(NOT_EQUIVALENT) >= 20


def test_accepts_trees_and_strings():
    assert equivalent(parse(VAE), VAE_LATEX)
    assert equivalent(parse(VAE).statements[0], parse(VAE_LATEX))


def test_canonical_form_is_shared():
    assert canonical(VAE) == canonical(VAE_LATEX)
    assert canonical("E_{q(z|x)}[beta * f + g]") == canonical("beta E_{q(z|x)}[f] + E_{q(z|x)}[g]")


def test_bad_formula_raises_formula_error():
    with pytest.raises(FormulaSyntaxError):
        equivalent("E_q(z|x)[log p(x|z)", VAE)


def test_two_sums_over_the_same_index():
    """The second sum's t is its own bound index, not a use of the first sum's."""
    assert equivalent("sum_{t=1}^{T} a_t + sum_{t=1}^{T} b_t", "sum_{t=1}^{T} (a_t + b_t)")
    assert parse("sum_{t=1}^{T} a_t + sum_{t=1}^{T} b_t") == parse("(sum_{t=1}^{T} a_t) + sum_{t=1}^{T} b_t")


# --- properties on generated trees ----------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(max_leaves=10))
def test_generated_trees(tree):
    assert equivalent(tree, tree)
    if isinstance(tree, n.Add):
        assert equivalent(tree, n.Add(tuple(reversed(tree.terms))))
    assert equivalent(n.Mul((n.Num(2.0), tree)), n.Add((tree, tree)))
    assert not equivalent(tree, n.Add((tree, n.Num(1.0))))
    assert not equivalent(n.Mul((n.Var("beta"), tree)), n.Mul((n.Var("alpha"), tree))) or \
        equivalent(tree, n.Num(0.0))
