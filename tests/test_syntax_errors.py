"""Bad text gets a FormulaSyntaxError in words, with the caret at the right place, and nothing else escapes."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formula.errors import FormulaError, FormulaSyntaxError
from formula.lang.parser import MAX_LENGTH, MAX_NESTING, MAX_TREE_DEPTH, last_work, parse, parse_expr, parse_signature

from strategies import VALID_FORMULAS

VALID = VALID_FORMULAS


def _error(text):
    with pytest.raises(FormulaSyntaxError) as info:
        parse(text)
    return info.value


# --- messages and carets ----------------------------------------------------------------------------------


def test_missing_operand_says_what_was_expected():
    err = _error("E_q(z|x)[log p(x|z)] - * 2")
    assert err.message.startswith("unexpected '*'; expected a distribution such as q(z|x), a number or '('")
    assert err.span == (23, 24)
    assert err.text == "E_q(z|x)[log p(x|z)] - * 2"
    assert "^" in str(err) and "E_q(z|x)" in str(err)


def test_formula_ending_early():
    with pytest.raises(FormulaSyntaxError, match="the formula ends too early"):
        parse("E_q(z|x)[log p(x|z)] -")
    with pytest.raises(FormulaSyntaxError, match="the formula ends too early"):
        parse("log")
    assert _error(r"\frac{a}").span == (7, 8)


def test_unclosed_bracket_is_named_and_pointed_at():
    err = _error("KL(q(z|x)||p(z)")
    assert err.message == "unclosed '(': the formula ends before it is closed"
    assert err.span == (2, 3)
    err = _error(r"\mathbb{E}_{q(z|x)}\left[\log p(x|z)")
    assert "unclosed '['" in err.message and err.span == (24, 25)


def test_mismatched_and_unmatched_brackets():
    err = _error("(a]")
    assert re.match(r"the '\(' opened at character 0 is closed by '\]'; expected '\)'", err.message)
    assert err.span == (2, 3)
    err = _error("a )")
    assert err.message == "unmatched ')': no bracket is open here" and err.span == (2, 3)


def test_unknown_latex_command():
    err = _error(r"\foo{x} + 1")
    assert err.message == r"unknown command \foo" and err.span == (0, 4)
    with pytest.raises(FormulaSyntaxError, match=r"unknown command \\mathfrak"):
        parse(r"a + \mathfrak{x}")


def test_unexpected_character():
    err = _error("x @ y")
    assert err.message == "unexpected character '@'" and err.span == (2, 3)


def test_conditions_after_a_condition():
    err = _error("p(x|z|y)")
    assert err.message.startswith("unexpected '|'; expected") and err.span == (5, 6)


def test_double_bar_outside_a_divergence():
    err = _error("q(z|x) || p(z)")
    assert err.message.startswith("this '||' opens a norm that is never closed; between two distributions '||' "
                                  "belongs inside a divergence such as KL(q || p)")
    assert err.span == (7, 9)
    err = _error("E_q[f] - |x")
    assert err.message.startswith("this '|' opens an absolute value that is never closed") and err.span == (9, 10)


def test_lower_case_divergence_name():
    err = _error("q(a||b)")
    assert "upper-case name" in err.message and err.span == (0, 1)


def test_empty_text():
    for text in ("", "   ", "\n\n"):
        with pytest.raises(FormulaSyntaxError, match="the formula is empty"):
            parse(text)


def test_not_a_string():
    for value in (b"E_q[f]", ["E_q[f]"], None):
        with pytest.raises(FormulaSyntaxError, match="a formula is a string"):
            parse(value)  # type: ignore[arg-type]


def test_messages_never_show_lark_terminal_names():
    broken = ["E_q(z|x)[", "a + + ", "q(z|", "KL(q ||", r"\sum_", "E_{}[f]", "z_", "a = ", "x^", r"\frac{1}",
              r"\underbrace{a}", "(a b", "a b)", "q(z;", "sum_{t=1}^", r"\langle f \rangle", "p(x|z|y)", "|a"]
    for text in broken:
        with pytest.raises(FormulaSyntaxError) as info:
            parse(text)
        assert not re.search(r"\b_?[A-Z]{2,}_[A-Z]+\b|\$END|Token\(|_RPAR|_LBRACE|CALL_NAME", info.value.message), \
            (text, info.value.message)


def test_parse_expr_wants_one_statement():
    with pytest.raises(FormulaSyntaxError, match="expected one statement, found 2") as info:
        parse_expr("a = b; c")
    assert info.value.span == (7, 8)


@pytest.mark.parametrize("text,match,span", [
    ("q(z|x) p(z)", "a signature is one distribution", (0, 11)),
    ("KL(q||p)", "a signature is one distribution", (0, 8)),
    ("x", "a signature is one distribution", (0, 1)),
    ("q(z+1|x)", "arguments must be variables", (2, 5)),
    ("p(x|z_{t}, 2)", "arguments must be variables", (11, 12)),
])
def test_parse_signature_errors(text, match, span):
    with pytest.raises(FormulaSyntaxError, match=match) as info:
        parse_signature(text)
    assert info.value.span == span


# --- limits: bounded work, not seconds (a loaded machine makes timings meaningless) ---------------------


def _refused(text):
    """The error for `text`, and the parser's work on it (tokens lexed, nodes visited)."""
    parse.cache_clear()
    with pytest.raises(FormulaError) as info:
        parse(text)
    return info.value, last_work()


def test_one_megabyte_is_refused_before_lexing():
    err, work = _refused("a + " * 250_000)
    assert "too long" in err.message and str(MAX_LENGTH) in err.message
    assert err.span == (MAX_LENGTH, MAX_LENGTH + 1)
    assert work.tokens == 0 and work.nodes == 0


def test_ten_thousand_nested_brackets_are_refused_before_lexing():
    err, work = _refused("(" * 10_000 + "x" + ")" * 10_000)
    assert isinstance(err, FormulaSyntaxError) and work.tokens == 0
    err, work = _refused("[" * 10_000)
    assert "nested too deeply" in err.message and err.span == (MAX_NESTING, MAX_NESTING + 1)
    assert work.tokens == 0
    err, work = _refused("(" * 3000 + "x" + ")" * 3000)
    assert "nested too deeply" in err.message and work.tokens == 0


@pytest.mark.parametrize("text", ["-" * 2000 + "x", r"\log " * 1500 + "x", "x" + "^2" * 2000,
                                  "|" * 2000 + "x" + "|" * 2000, "sum_k " * 1500 + "x"])
def test_deep_trees_without_brackets_are_refused_in_linear_work(text):
    err, work = _refused(text)
    assert isinstance(err, FormulaSyntaxError)
    assert work.tokens <= len(text) + 1  # one pass of the lexer, at most a token a character
    assert work.nodes <= MAX_TREE_DEPTH + 2 * len(text)


def test_tree_depth_limit_points_at_the_deepest_node():
    parse("exp " * (MAX_TREE_DEPTH - 2) + "x")  # the program, 98 calls and x: 100 levels
    text = "exp " * (MAX_TREE_DEPTH - 1) + "x"
    err = _error(text)
    assert "nested too deeply" in err.message and f"more than {MAX_TREE_DEPTH} levels" in err.message
    assert err.span == (len(text) - 1, len(text))


def test_two_signs_in_a_row_are_refused():
    for text, span in (("a -- b", (2, 4)), ("a + -b", (2, 5)), ("--x", (0, 2)), ("-+x", (0, 2)),
                       ("E_q[f] - - KL(q||p)", (7, 10))):
        err = _error(text)
        assert err.message.startswith("two signs in a row") and err.span == span, text
    # a bracket says it on purpose
    assert parse_expr("a - (-b)") == parse_expr("a - (-(b))")
    assert parse_expr("-(-x)").arg.arg.name == "x"


def test_one_bar_between_two_distributions_in_a_divergence_suggests_two():
    for text in ("KL(q(z|x)|p(z))", r"D_{KL}(q(z|x) \mid p(z))", "JS(q(z) | N(0, 1))"):
        err = _error(text)
        assert "separated by '||'" in err.message, text
    parse("KL(q(z|x) || p(z))")


def test_long_flat_formula_within_the_limit_parses_in_linear_work():
    text = " + ".join(["x"] * 2000)
    parse.cache_clear()
    assert len(parse_expr(text).terms) == 2000
    work = last_work()
    assert work.tokens == 3999 and work.nodes == 2002  # Program, Add, 2000 terms


# --- property: only FormulaSyntaxError escapes ------------------------------------------------------------

ALPHABET = list("()[]{}|\\_^~;,.=+-*/<>:'! \nqpzxyKLEHD0123") + [
    r"\left", r"\right", r"\|", r"\mathbb{E}", r"\sum", r"\log", r"\frac", "||", r"\mid", r"\sim", r"\ldots",
    r"\langle", r"\rangle", r"\underbrace", r"\nabla", r"\partial", r"\mathcal{N}", r"\beta", r"\tilde", "^{(",
    r"\text{sg}", "\\", "&", r"\\", "log ", "sum_", "E_",
]


def _only_syntax_errors(text):
    parse.cache_clear()
    try:
        result = parse(text)
    except FormulaSyntaxError as err:
        assert err.text == text or err.text is None
        return
    assert result.statements


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ALPHABET), max_size=40).map("".join))
def test_random_token_soup_raises_only_syntax_errors(text):
    _only_syntax_errors(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_random_unicode_raises_only_syntax_errors(text):
    _only_syntax_errors(text)


@st.composite
def _mutated(draw):
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert"]))
        if kind == "delete":
            text = text[:i] + text[i + 1:]
        elif kind == "duplicate":
            text = text[:i] + text[i:i + 1] * 2 + text[i + 1:]
        elif kind == "swap" and len(text) > 1:
            j = draw(st.integers(0, len(text) - 1))
            chars = list(text)
            i = min(i, len(text) - 1)
            chars[i], chars[j] = chars[j], chars[i]
            text = "".join(chars)
        else:
            text = text[:i] + draw(st.sampled_from(ALPHABET)) + text[i:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_formulas_raise_only_syntax_errors(text):
    _only_syntax_errors(text)


def test_valid_seeds_parse():
    for text in VALID:
        parse(text)
