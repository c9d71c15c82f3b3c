"""One table per kind of name, one row per name with every spelling it has (issue 8: adding a name is one row).

The rows feed the grammar's terminals (`parser` generates the keyword alternatives of `FUNC`, `DECOR` and `REL`
into `grammar.lark` when it builds the parser), the transformer (spelling -> node), the ASCII and LaTeX printers
(`formula.text.printing`), the Unicode printer and sympy (`formula.text.symbolic`) and the compiler (a
function's torch callable and its Python-number fallback, as dotted paths: this stage never imports torch).

>>> FUNCTIONS["tanh"].torch, FUNCTIONS["tanh"].number
('torch.tanh', 'math.tanh')
>>> RELATIONS.canonical("\\\\geq")
'>='

Adding a name from outside the package (a test, a plugin) is `register(row)`; it invalidates the built parser,
so the next `parse` knows the new spelling. `unregister(row)` takes it out again.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Generic, Iterator, List, Mapping, Optional, Tuple, TypeVar

from . import nodes as n

__all__ = [
    "Function", "FamilyName", "DivergenceName", "RelationName", "Decoration", "Table", "FUNCTIONS", "FAMILIES",
    "DIVERGENCES", "RELATIONS", "DECORATIONS", "register", "unregister", "register_function", "register_family",
    "on_change", "resolve", "keywords", "reserved_names", "GREEK_LETTERS",
]

#: Greek letters by their LaTeX names (a name such as `beta` is printed `\\beta` and is never a typo).
GREEK_LETTERS = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi varpi rho "
    "varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon "
    "Phi Psi Omega ell".split())

Builder = Callable[[n.Expr, Optional[n.Span]], n.Expr]


def _apply(name: str) -> Builder:
    return lambda arg, span: n.Apply(name, (arg,), span=span)


def _log(arg: n.Expr, span: Optional[n.Span]) -> n.Expr:
    """`log` of a distribution is its log-density; of anything else, the elementwise log."""
    if isinstance(arg, (n.Dist, n.Family)):
        return n.LogDensity(arg, span=span)
    return n.Apply("log", (arg,), span=span)


def _stopgrad(arg: n.Expr, span: Optional[n.Span]) -> n.Expr:
    return n.StopGrad(arg, span=span)


def _norm(arg: n.Expr, span: Optional[n.Span]) -> n.Expr:
    return n.Norm(arg, span=span)


def _defaults(row, **values) -> None:
    """Fill the fields of a frozen row that were left empty."""
    for name, value in values.items():
        if not getattr(row, name):
            object.__setattr__(row, name, value)


# --- rows --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    """A function with a fixed meaning (`Apply.fn == name`).

    `words` are its ASCII spellings (also accepted inside `\\operatorname{..}`, `\\mathrm{..}`, `\\text{..}`),
    `commands` its LaTeX commands without the backslash, `call_commands` commands that mean it only right before
    `(` (`\\sigma(a)`, while `\\sigma` alone is a Greek scalar). `latex`/`unicode`/`sympy` are how the printers
    write it (the ASCII printer writes `words[0]`; `sympy` names sympy's function of the same meaning where it
    has one, e.g. `Abs`). `torch` is the dotted path of the callable the compiler
    applies to a tensor, `number` of a float -> float fallback for a Python number (None: tensors only).
    `build` makes the node from the argument (default `Apply(name, (arg,))`).
    """

    name: str
    words: Tuple[str, ...] = ()
    commands: Tuple[str, ...] = ()
    call_commands: Tuple[str, ...] = ()
    latex: Optional[str] = None
    unicode: Optional[str] = None
    sympy: Optional[str] = None
    torch: Optional[str] = None
    number: Optional[str] = None
    build: Optional[Builder] = field(default=None, compare=False)

    def __post_init__(self):
        default_latex = (f"\\{self.commands[0]}" if self.commands else f"\\{self.call_commands[0]}"
                         if self.call_commands else f"\\operatorname{{{self.ascii}}}")
        object.__setattr__(self, "latex", self.latex or default_latex)
        object.__setattr__(self, "unicode", self.unicode or self.ascii)
        object.__setattr__(self, "sympy", self.sympy or self.name)
        object.__setattr__(self, "build", self.build or _apply(self.name))

    @property
    def ascii(self) -> str:
        """The ASCII printer's spelling."""
        return self.words[0] if self.words else self.name

    def spellings(self) -> Tuple[str, ...]:
        """Every spelling as a key of the transformer's lookup (the text after `\\` or inside a wrapper)."""
        return self.words + self.commands + self.call_commands


@dataclass(frozen=True, kw_only=True)
class _Printed:
    """How the printers write a name; a field left empty gets the default of its row's kind."""

    latex: Optional[str] = None
    unicode: Optional[str] = None
    ascii: Optional[str] = None


@dataclass(frozen=True)
class FamilyName(_Printed):
    """An explicit family (`Family.family == name`): `words` are accepted bare or wrapped (`Normal(..)`,
    `\\mathrm{Bern}(..)`), `calligraphic` only inside `\\mathcal{..}` (`\\mathcal{N}`). The ASCII printer
    writes `ascii` (default: the LaTeX spelling, since mixing spellings is legal)."""

    name: str
    words: Tuple[str, ...] = ()
    calligraphic: Tuple[str, ...] = ()

    def __post_init__(self):
        word = self.words[0] if self.words else self.name
        _defaults(self, latex=f"\\mathcal{{{self.calligraphic[0]}}}" if self.calligraphic else f"\\mathrm{{{word}}}",
                  unicode=word)
        _defaults(self, ascii=self.latex)

    def spellings(self) -> Tuple[str, ...]:
        return self.words + tuple(f"mathcal:{c}" for c in self.calligraphic)


@dataclass(frozen=True)
class DivergenceName(_Printed):
    """A divergence (`Divergence.kind == name`): `words` may be written `NAME(a, b)`, `D_{NAME}(a, b)`,
    `\\text{NAME}(a, b)` as well as with `||` (with `||` any upper-case name is a divergence)."""

    name: str
    words: Tuple[str, ...] = ()

    def __post_init__(self):
        _defaults(self, words=(self.name,), latex=f"D_{{\\mathrm{{{self.name}}}}}", unicode=f"D_{self.name}",
                  ascii=self.name)

    def spellings(self) -> Tuple[str, ...]:
        return self.words


@dataclass(frozen=True)
class RelationName(_Printed):
    """A relation (`Relation.ops[i] == name`) with every input spelling; `\\cmd` spellings are LaTeX commands."""

    name: str
    written: Tuple[str, ...] = ()

    def __post_init__(self):
        _defaults(self, ascii=self.name)
        _defaults(self, latex=self.ascii, unicode=self.ascii)

    def spellings(self) -> Tuple[str, ...]:
        """Every input spelling: the written forms and the Unicode the printer writes (the canonical name is a
        spelling only where it is written so: `approx` and `in` are names, `\\approx` and `\\in` spellings)."""
        return tuple(dict.fromkeys(self.written + (self.unicode,)))


@dataclass(frozen=True)
class Decoration(_Printed):
    """A meaningful mark on a variable (`Var.mark == name`): LaTeX `commands` (`tilde`, `widetilde`), the
    LaTeX the printers write, and the Unicode combining character."""

    name: str
    commands: Tuple[str, ...] = ()

    def __post_init__(self):  # ASCII has no decorations of its own: the LaTeX spelling (mixing is legal)
        _defaults(self, commands=(self.name,))
        _defaults(self, latex=f"\\{self.commands[0]}", unicode="")
        _defaults(self, ascii=self.latex)

    def spellings(self) -> Tuple[str, ...]:
        return self.commands


# --- tables ------------------------------------------------------------------------------------------------

Row = TypeVar("Row")
_LISTENERS: List[Callable[[], None]] = []


class Table(Mapping, Generic[Row]):
    """Rows of one kind by canonical name, plus the lookup from any spelling to its row."""

    def __init__(self, kind: type, rows: Tuple = ()):
        self.kind = kind
        self._rows: Dict[str, Row] = {}
        self._by_spelling: Dict[str, Row] = {}
        for row in rows:
            self._add(row)

    def __getitem__(self, name: str) -> Row:
        return self._rows[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, spelling: str) -> Optional[Row]:
        """The row that `spelling` names, or None."""
        return self._by_spelling.get(spelling)

    def canonical(self, spelling: str) -> Optional[str]:
        row = self.lookup(spelling)
        return None if row is None else row.name

    def spellings(self) -> List[str]:
        return list(self._by_spelling)

    def _add(self, row) -> None:
        taken = [s for s in row.spellings() if s in self._by_spelling and self._by_spelling[s].name != row.name]
        if taken:
            raise ValueError(f"{', '.join(taken)} already spell {self._by_spelling[taken[0]].name}")
        if row.name in self._rows:
            self._remove(self._rows[row.name])
        self._rows[row.name] = row
        for s in row.spellings():
            self._by_spelling[s] = row

    def _remove(self, row) -> None:
        old = self._rows.pop(row.name, None)
        if old is not None:
            for s in old.spellings():
                self._by_spelling.pop(s, None)


FUNCTIONS: Table[Function] = Table(Function, (
    Function("log", ("log", "ln"), ("log", "ln"), torch="torch.log", number="math.log", build=_log),
    Function("exp", ("exp",), ("exp",), torch="torch.exp", number="math.exp"),
    Function("sqrt", ("sqrt",), ("sqrt",), unicode="√", torch="torch.sqrt", number="math.sqrt"),
    Function("abs", ("abs",), latex="\\left|", sympy="Abs", torch="torch.abs", number="builtins.abs"),
    Function("det", ("det",), ("det",), torch="torch.linalg.det"),
    Function("tanh", ("tanh",), ("tanh",), torch="torch.tanh", number="math.tanh"),
    Function("sigmoid", ("sigmoid",), call_commands=("sigma",), unicode="σ", torch="torch.sigmoid",
             number="formula.lang.scalar_math.sigmoid"),
    Function("softplus", ("softplus",), torch="torch.nn.functional.softplus",
             number="formula.lang.scalar_math.softplus"),
    Function("sg", ("sg", "stopgrad"), latex="\\text{sg}", build=_stopgrad),
    # `norm(a)`, the ASCII spelling of the Euclidean norm \|a\| (a Norm node, printed with bars)
    Function("norm", ("norm",), build=_norm),
    # written only as a postfix `^\top` (the grammar's TOP); the row carries what the compiler needs
    Function("transpose", (), latex="^\\top", unicode="ᵀ", torch="torch.adjoint"),
))

FAMILIES: Table[FamilyName] = Table(FamilyName, (
    FamilyName("Normal", ("Normal", "Gaussian", "MVN"), ("N",), unicode="𝒩"),
    FamilyName("Bernoulli", ("Bern", "Bernoulli", "Ber")),
    FamilyName("Categorical", ("Cat", "Categorical")),
    FamilyName("Laplace", ("Laplace", "Lap")),
    FamilyName("Uniform", ("Uniform", "Unif"), ("U",), unicode="𝒰"),
    # `\mathcal{U}\{1, \ldots, T\}`: uniform on the integers lo..hi (the parser builds it from the braced set)
    FamilyName("UniformDiscrete", ("UniformDiscrete",), latex="\\mathcal{U}", unicode="𝒰", ascii="\\mathcal{U}"),
    FamilyName("Beta", ("Beta",)),
    FamilyName("Dirichlet", ("Dir", "Dirichlet")),
    FamilyName("Poisson", ("Pois", "Poisson"), latex="\\mathrm{Poisson}"),
    FamilyName("Gamma", ("Gamma",)),
    FamilyName("Exponential", ("Exp", "Exponential"), latex="\\mathrm{Exponential}"),
))

DIVERGENCES: Table[DivergenceName] = Table(DivergenceName, tuple(
    DivergenceName(name) for name in ("KL", "JS", "MMD", "W", "TV", "H2", "CHI2", "RENYI", "F")))

RELATIONS: Table[RelationName] = Table(RelationName, (
    RelationName("=", ("=", "\\equiv")),
    RelationName(":=", (":=", "\\coloneqq", "\\triangleq", "\\leftarrow"), unicode="≔"),
    RelationName("=:", ("=:", "\\eqqcolon"), unicode="≕"),
    RelationName(">=", (">=", "\\geq", "\\ge", "\u2265"), latex="\\geq", unicode="≥"),
    RelationName("<=", ("<=", "\\leq", "\\le", "\u2264"), latex="\\leq", unicode="≤"),
    RelationName(">", (">",)),
    RelationName("<", ("<",)),
    RelationName("!=", ("!=", "\\neq", "\\ne", "\u2260"), latex="\\neq", unicode="≠"),
    RelationName("approx", ("\\approx", "\u2248", "\\simeq"), ascii="\\approx", unicode="≈"),
    RelationName("in", ("\\in",), ascii="\\in", unicode="∈"),
    RelationName("propto", ("\\propto", "propto", "\u221d"), latex="\\propto", unicode="∝"),
))

DECORATIONS: Table[Decoration] = Table(Decoration, (
    Decoration("tilde", ("tilde", "widetilde"), unicode="\u0303"),
    Decoration("hat", ("hat", "widehat"), unicode="\u0302"),
    Decoration("bar", ("bar", "overline"), unicode="\u0304"),
))

_TABLES = (FUNCTIONS, FAMILIES, DIVERGENCES, RELATIONS, DECORATIONS)


def _table_for(row) -> Table:
    for table in _TABLES:
        if isinstance(row, table.kind):
            return table
    raise TypeError(f"{type(row).__name__} is not a spelling row")


def on_change(callback: Callable[[], None]) -> None:
    """Call `callback` after every `register`/`unregister` (the parser drops its built grammar)."""
    _LISTENERS.append(callback)


def _changed() -> None:
    reserved_names.cache_clear()
    for callback in _LISTENERS:
        callback()


def register(row):
    """Add (or replace) a row in the table of its kind; the next parse and print know it. Returns the row."""
    _table_for(row)._add(row)
    _changed()
    return row


def unregister(row) -> None:
    """Take a row (by its canonical name) out of its table again."""
    _table_for(row)._remove(row)
    _changed()


def register_function(name: str, *words: str, **fields) -> Function:
    """`register_function("relu", "relu", torch="torch.relu", number=None)`: one row in FUNCTIONS."""
    return register(Function(name, tuple(words) or (name,), **fields))


def register_family(name: str, *words: str, **fields) -> FamilyName:
    """`register_family("StudentT", "StudentT", "\\\\mathrm{t}")`: one row in FAMILIES."""
    return register(FamilyName(name, tuple(words) or (name,), **fields))


def resolve(path: str):
    """The object a row's dotted path names (`"torch.nn.functional.softplus"`): for the compiler, which owns
    torch. Only table paths come here, never a user's text."""
    module, _, attr = path.rpartition(".")
    if not module:
        raise ValueError(f"{path!r} is not a dotted path")
    return getattr(importlib.import_module(module), attr)


_OPERATOR_WORDS = ("E", "sum", "prod", "min", "max")


@functools.lru_cache(maxsize=None)
def reserved_names() -> Tuple[frozenset, frozenset]:
    """Names that a printer must not write plainly: `(as a value, as a call)`. A value named `E` or `log`, or a
    call named `H`, `KL`, `Normal` or `sigma`, would read back as the keyword; printers escape them."""
    functions = {w for row in FUNCTIONS.values() for w in row.words + row.commands}
    value = frozenset(functions | set(_OPERATOR_WORDS))
    call = value | {"H", "sigma"} | {w for row in DIVERGENCES.values() for w in row.words}
    call |= {w for row in FAMILIES.values() for w in row.words}
    return value, frozenset(call)


def keywords() -> List[str]:
    """Every reserved word a user might mistype (function words, divergence and family names, E, H, sum ...):
    the vocabulary of `formula.lang.suggest.did_you_mean`."""
    words = [w for row in FUNCTIONS.values() for w in row.words + row.commands]
    words += [w for row in DIVERGENCES.values() for w in row.words]
    words += [w for row in FAMILIES.values() for w in row.words]
    words += ["H", *_OPERATOR_WORDS]
    return list(dict.fromkeys(words))
