"""The limits of parse, print and compare agree (issue 9): what parses prints, compares and reads back; what
cannot is a FormulaError at parse time, never a sympy ValueError or a RecursionError."""

import pytest

import formula as fm
import formula.lang.nodes as n
from formula.errors import FormulaError, FormulaSyntaxError
from formula.lang.parser import MAX_TREE_DEPTH, parse
from formula.text import printing
from formula.text.printing import to_ascii, to_latex

DEEP = MAX_TREE_DEPTH - 2  # the program node and the leaf take two levels


@pytest.mark.parametrize("call, args", [
    (fm.pretty, ("1e309",)), (fm.to_sympy, ("x^1e999",)), (fm.equivalent, ("1e309", "1e309")),
    (fm.latex, ("1e400 x",)), (fm.parse, ("x_{1e309}",)),
])
def test_numbers_too_large_for_a_float_are_syntax_errors(call, args):
    with pytest.raises(FormulaSyntaxError, match="too large") as info:
        call(*args)
    assert info.value.span is not None


def test_the_largest_float_still_prints():
    tree = parse("1.7e308 x")
    assert parse(to_ascii(tree)) == tree and fm.equivalent(tree, tree)


@pytest.mark.parametrize("text", [r"\exp " * 165 + "x", "exp " * 165 + "x", "sum_k " * 150 + "x"])
def test_too_deep_for_the_printers_is_refused_by_parse(text):
    for call in (fm.latex, fm.pretty, lambda t: to_ascii(parse(t)), lambda t: fm.equivalent(t, t)):
        with pytest.raises(FormulaSyntaxError, match="nested too deeply"):
            call(text)


CHAINS = {
    "exp": "\\exp " * DEEP + "x",
    "sum": "sum_k " * DEEP + "x",
    "neg": "-(" * (DEEP // 2) + "x" + ")" * (DEEP // 2),
    "pow": "x" + "^2" * (DEEP - 1),
    "bracketed exp": "exp(" * DEEP + "x" + ")" * DEEP,
    "product": "a*(" * (DEEP // 2) + "x" + ")" * (DEEP // 2),
    "abs": "|" * DEEP + "x" + "|" * DEEP,
    "frac": "\\frac{1}{" * (DEEP // 2) + "x" + "}" * (DEEP // 2),
    "stop-gradient": "sg[" * DEEP + "x" + "]" * DEEP,
}


def _in_deep_stack(depth, fn):
    """`fn()` called `depth` frames below here (a caller that is itself deep in its stack)."""
    return fn() if depth == 0 else _in_deep_stack(depth - 1, fn)


@pytest.mark.parametrize("name", CHAINS)
def test_the_deepest_trees_that_parse_print_and_compare(name):
    tree = parse(CHAINS[name])

    def everything():
        assert parse(to_ascii(tree)) == tree
        assert parse(to_latex(tree)) == tree
        assert fm.pretty(tree)
        assert fm.equivalent(tree, to_ascii(tree))

    _in_deep_stack(200, everything)


def test_a_hand_built_tree_deeper_than_the_limit_is_a_formula_error_not_a_crash():
    tree = n.Var("x")
    for _ in range(5000):
        tree = n.Apply("exp", (tree,))
    for call in (to_ascii, to_latex, fm.pretty, fm.to_sympy):
        with pytest.raises(FormulaError, match="nested too deeply"):
            call(tree)


def test_printing_visits_each_node_once(monkeypatch):
    """Nested products look at their last factor twice (precedence, open right end): memoised, the work is linear
    in the tree, not 2^depth."""
    calls = []
    original = printing._Printer.piece

    def counting(self, node):
        calls.append(node)
        return original(self, node)

    tree = parse("a*(" * 20 + "x" + ")" * 20)  # 2^20 visits without the memo
    monkeypatch.setattr(printing._Printer, "piece", counting)
    to_ascii(tree)
    distinct = sum(1 for _ in tree.walk())
    assert len(calls) <= 4 * distinct
