"""Printing then parsing gives the same tree (docs/language.md §4), for trees the parser builds."""

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import HypothesisWarning

import formula.lang.nodes as n
from formula.lang.parser import parse
from formula.text.printing import to_ascii, to_latex
from formula.text.symbolic import equivalent, pretty

from strategies import expressions, programs

warnings.filterwarnings("ignore", category=HypothesisWarning)  # the recursive strategy's repr is large

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(expressions())
def test_ascii_round_trip(tree):
    assert parse(to_ascii(tree)) == n.Program((tree,))


@SETTINGS
@given(expressions())
def test_latex_round_trip(tree):
    assert parse(to_latex(tree)) == n.Program((tree,))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_programs_round_trip(program):
    assert parse(to_ascii(program)) == program
    assert parse(to_latex(program)) == program


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(max_leaves=8))
def test_spellings_are_equivalent(tree):
    assert equivalent(to_ascii(tree), to_latex(tree))


@pytest.mark.parametrize("text", [
    # printing is idempotent on what users write, however they spaced or bracketed it
    "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))",
    r"\frac{1}{L}\sum_{l=1}^{L} \log p(x, z^{(l)}) - \log q(z^{(l)}|x)",
    r"\mathbb{E}_{p(x)} \mathbb{E}_{q(z|x)}[\log p(x|z)]",
    r"\log p(x) \geq \mathbb{E}_{q(z|x)}[\log p(x,z) - \log q(z|x)] =: \mathcal{L}",
    r"\mathcal{N}(x \mid \mu, \sigma^2 I)",
    r"\left|\det \frac{\partial f(x)}{\partial x}\right|",
    r"\sum_{y} q(y|x)\, f(y)",
    r"\langle f \rangle_{z \sim q}",
])
def test_printed_text_parses_to_the_same_tree(text):
    tree = parse(text)
    assert parse(to_ascii(tree)) == tree
    assert parse(to_latex(tree)) == tree
    assert to_ascii(parse(to_ascii(tree))) == to_ascii(tree)


@SETTINGS
@given(expressions())
def test_unicode_round_trip(tree):
    """What `print(objective)` shows (𝔼, ‖, ∑, ₜ, θ, ≥) pastes back to the same tree (issue 13)."""
    assert parse(pretty(tree)) == n.Program((tree,))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_programs_unicode_round_trip(program):
    assert parse(pretty(program)) == program
