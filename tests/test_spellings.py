"""One spelling table per kind of name (formula/lang/spellings.py): a new name is one row (issue 8 item 3)."""

import importlib.resources
import math

import pytest

import formula.lang.nodes as n
from formula.errors import FormulaSyntaxError
from formula.lang import spellings
from formula.lang.parser import parse, parse_expr
from formula.text.printing import to_ascii, to_latex
from formula.text.symbolic import equivalent, pretty


@pytest.fixture
def row():
    """Registers the rows a test passes, and takes them out again afterwards."""
    added = []

    def add(new):
        added.append(spellings.register(new))
        return new

    yield add
    for r in reversed(added):
        spellings.unregister(r)


def _round_trips(text, tree):
    assert parse_expr(text) == tree
    for printed in (to_ascii(tree), to_latex(tree)):
        assert parse_expr(printed) == tree, printed


def test_a_function_is_one_row(row):
    with pytest.raises(FormulaSyntaxError):
        parse(r"\arctan x")  # not known yet
    row(spellings.Function("arctan", ("arctan", "atan"), ("arctan",), unicode="atan", torch="torch.atan",
                           number="math.atan"))
    x, y = n.Var("x"), n.Var("y")
    tree = n.Add((n.Apply("arctan", (x,)), n.Apply("arctan", (y,))))
    _round_trips(r"\arctan(x) + atan(y)", tree)
    assert parse_expr(r"\operatorname{arctan}(x)") == tree.terms[0]
    assert to_ascii(tree) == "arctan(x) + arctan(y)"
    assert to_latex(tree) == r"\arctan\left(x\right) + \arctan\left(y\right)"
    assert pretty(tree) == "atan(x) + atan(y)"
    assert equivalent(r"\arctan(x) + atan(y)", "atan(y) + arctan(x)")
    fn = spellings.FUNCTIONS["arctan"]
    assert fn.torch == "torch.atan" and spellings.resolve(fn.number)(1.0) == math.atan(1.0)


def test_register_function_shorthand(row):
    fn = row(spellings.Function("relu", ("relu",), torch="torch.relu"))
    assert fn.latex == r"\operatorname{relu}" and fn.number is None
    _round_trips("relu(a) * 2", n.Mul((n.Apply("relu", (n.Var("a"),)), n.Num(2.0))))
    spellings.unregister(fn)
    made = spellings.register_function("relu", torch="torch.relu")
    try:
        assert parse_expr("relu a") == n.Apply("relu", (n.Var("a"),))
    finally:
        spellings.unregister(made)
    assert parse_expr("relu(a)") == n.Dist("relu", (n.Var("a"),))  # gone again: a call of a name


def test_a_family_is_one_row(row):
    row(spellings.FamilyName("StudentT", ("StudentT",), ("T",), unicode="𝒯"))
    tree = n.Family("StudentT", (n.Var("x"),), (n.Num(0.0), n.Num(1.0)))
    _round_trips(r"\mathcal{T}(x \mid 0, 1)", tree)
    assert parse_expr("StudentT(x | 0, 1)") == tree
    assert to_latex(tree) == r"\mathcal{T}(x \mid 0, 1)"
    assert pretty(tree) == "𝒯(x|0, 1)"


def test_a_registered_family_helper(row):
    fam = spellings.register_family("Cauchy", "Cauchy", latex=r"\mathrm{Cauchy}")
    try:
        _round_trips(r"\mathrm{Cauchy}(0, 1)", n.Family("Cauchy", (), (n.Num(0.0), n.Num(1.0))))
    finally:
        spellings.unregister(fam)


def test_a_divergence_relation_and_decoration_are_one_row_each(row):
    row(spellings.DivergenceName("SKL", latex=r"D_{\mathrm{SKL}}", unicode="D_SKL"))
    row(spellings.RelationName("prec", ("\\prec", "≺"), ascii="\\prec", unicode="≺"))
    row(spellings.Decoration("check", ("check",), unicode="\u030c"))
    p, q = n.Dist("p", (n.Var("z"),)), n.Dist("q", (n.Var("z"),))
    _round_trips("SKL(q(z), p(z))", n.Divergence("SKL", q, p))
    rel = n.Relation((n.Var("a"), n.Var("b")), ("prec",))
    _round_trips(r"a \prec b", rel)
    assert parse_expr("a ≺ b") == rel and pretty(rel) == "a ≺ b"
    checked = n.Var("x", mark="check")
    _round_trips(r"\check{x}", checked)


def test_rows_cannot_steal_a_spelling():
    with pytest.raises(ValueError, match="already spell log"):
        spellings.register(spellings.Function("logarithm", ("ln",)))
    assert spellings.FUNCTIONS.canonical("ln") == "log"


def test_every_function_row_says_how_to_evaluate_it():
    import torch

    for name, fn in spellings.FUNCTIONS.items():
        if fn.torch is not None:
            assert callable(spellings.resolve(fn.torch)), name
        if fn.number is not None:
            spellings.resolve(fn.number)(0.5)
    x = torch.tensor([[0.3, -2.0], [1.5, 4.0]])
    for name in ("sigmoid", "softplus", "tanh", "exp", "abs"):
        fn = spellings.FUNCTIONS[name]
        on_number = spellings.resolve(fn.number)
        on_tensor = spellings.resolve(fn.torch)
        assert math.isclose(on_number(-2.0), float(on_tensor(torch.tensor(-2.0))), rel_tol=1e-6), name
    assert torch.equal(spellings.resolve(spellings.FUNCTIONS["transpose"].torch)(x), x.transpose(-1, -2))
    assert spellings.resolve("formula.lang.scalar_math.softplus")(800.0) == 800.0


def test_the_grammar_takes_its_keywords_from_the_tables():
    text = importlib.resources.files("formula.lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    for marker in ("@FUNCTIONS@", "@DECORATIONS@", "@RELATIONS@"):
        assert marker in text
    assert "softplus" not in text.split("// Terminals.")[1].split("%declare")[0]


def test_keywords_hold_every_reserved_word():
    words = spellings.keywords()
    for w in ("log", "exp", "KL", "E", "H", "sum", "softplus", "Normal"):
        assert w in words


@pytest.mark.parametrize("text, tree", [
    ("x_{in}", n.Var("x", (n.Var("in"),))), ("inputs + approx", n.Add((n.Var("inputs"), n.Var("approx")))),
    ("W_in x", n.Mul((n.Var("W", (n.Var("in"),)), n.Var("x")))), ("normal", n.Var("normal")),
])
def test_canonical_names_of_rows_are_not_keywords(text, tree):
    """A relation's canonical name (`in`, `approx`) is not one of its spellings: names that contain it parse."""
    assert parse_expr(text) == tree


def test_every_relation_row_reads_its_own_printed_forms():
    for rel in spellings.RELATIONS.values():
        for written in {rel.ascii, rel.latex, rel.unicode}:
            assert parse_expr(f"a {written} b") == n.Relation((n.Var("a"), n.Var("b")), (rel.name,)), written
