"""The AST as sympy expressions: to print like a paper (Unicode, LaTeX) and to decide equivalence (docs/language.md §4).

Our AST stays the source of truth. `to_sympy` converts it to sympy, keeping the paper's term order
(`evaluate=False`), with small `sympy.Expr` subclasses for what sympy has no class for (expectations,
divergences, densities, indexed sums ...). Each subclass prints itself through the `_sympystr`, `_latex`
and `_pretty` hooks, always through the calling printer, so nesting and settings carry through.

`equivalent` builds a second, canonical form: sympy's own `Add`/`Mul` (which sort and combine), exact rational
numbers, parameter subscripts dropped, products expanded, and expectations and sums made linear.

>>> pretty("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))")
'𝔼_{q(z|x)}[log p(x|z)] - D_KL[q(z|x) ‖ p(z)]'
>>> equivalent("-(a - b)", "b - a")
True
"""

from __future__ import annotations

import functools
from dataclasses import fields, replace
from typing import Callable, Iterable, List, Optional, Union

import sympy
from sympy import S, Tuple as STuple
from sympy.core.symbol import Str
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pretty.stringpict import prettyForm

from ..lang import nodes as n
from ..lang import spellings
from .printing import GREEK, depth_guarded, format_number, to_latex
from .unicode import to_unicode
from . import implied

__all__ = [
    "to_sympy", "canonical", "equivalent", "pretty", "latex", "ascii_str",
    "Variable", "IndexRange", "IndexBefore", "IndexAfter", "Distribution", "FamilyDist", "LogDensity", "Expectation",
    "DivergenceOf", "Entropy", "IndexedSum", "IndexedProduct", "Fraction", "Power", "Call", "NormOf",
    "StopGradient", "GradientOf", "PartialDerivative", "LabeledTerm", "RelationChain", "Optimization", "Statements",
    "DrawOf", "WhereClause", "Unevaluated",
]

NodeOrText = Union[str, n.Node]

_SUB = dict(zip("0123456789+-=()aeoxhklmnpstijruv", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ"))


def _spell(table: spellings.Table, name: str, which: str, default: Optional[str] = None) -> str:
    """A name's spelling from its row in formula/lang/spellings.py (`which`: ascii, latex, unicode, sympy)."""
    row = table.get(name)
    return (default if default is not None else name) if row is None else getattr(row, which)


# --- pretty-form helpers -----------------------------------------------------------------------------------


def _cat(*parts) -> prettyForm:
    """Side by side, baselines aligned; strings become one-line forms."""
    out = prettyForm("")
    for part in parts:
        form = prettyForm(part) if isinstance(part, str) else part
        out = prettyForm(*out.right(form))
    return out


def _text(form: prettyForm) -> Optional[str]:
    """The text of a one-line form, else None."""
    return form.picture[0] if form.height() == 1 else None


def _pretty_sub(form: prettyForm) -> prettyForm:
    """A subscript: Unicode subscript characters where every character has one, else `_x` / `_{...}`."""
    text = _text(form)
    if text is not None and text and all(c in _SUB for c in text):
        return prettyForm("".join(_SUB[c] for c in text))
    if text is not None and len(text) == 1:
        return prettyForm("_" + text)
    return _cat("_{", form, "}")


def _join(printer, items, sep: str):
    """Children printed by `printer` and joined by `sep` (a string for str/latex, a form for pretty)."""
    return sep.join(printer._print(i) for i in items)


def _pjoin(printer, items, sep: str) -> prettyForm:
    parts = []
    for i, item in enumerate(items):
        if i:
            parts.append(sep)
        parts.append(printer._print(item))
    return _cat(*parts) if parts else prettyForm("")


def _name_latex(name: str) -> str:
    if name in GREEK:
        return "\\" + name
    return name if len(name) == 1 else f"\\mathrm{{{name}}}"


def _tex_sub(text: str) -> str:
    return f"_{text}" if len(text) == 1 else f"_{{{text}}}"


def _str_sub(text: str) -> str:
    return f"_{text}" if len(text) == 1 and text.isalnum() else f"_{{{text}}}"


def _paren_if(printer, item, level: int):
    """`printer.parenthesize` for str/latex; a parenthesised form for pretty when `item` binds looser."""
    from sympy.printing.precedence import precedence

    form = printer._print(item)
    if precedence(item) <= level:
        if isinstance(form, prettyForm):
            return prettyForm(*form.parens())
        if printer.printmethod == "_latex":
            return f"\\left({form}\\right)"
        return f"({form})"
    return form


# --- the sympy classes ---------------------------------------------------------------------------------------


class _Node(sympy.Expr):
    """Base of our sympy classes: commutative scalars whose args are sympy objects (strings as `Str`)."""

    is_commutative = True

    def __new__(cls, *args):
        return sympy.Expr.__new__(cls, *args)


class IndexRange(_Node):
    """`1:T` in `x_{1:T}`."""

    def _sympystr(self, p):
        return f"{p._print(self.args[0])}:{p._print(self.args[1])}"

    _latex = _sympystr

    def _pretty(self, p):
        return _cat(p._print(self.args[0]), ":", p._print(self.args[1]))


class IndexBefore(_Node):
    """`<t` (args: bound, inclusive flag as 0/1)."""

    def _op(self, strict: str, inclusive: str) -> str:
        return inclusive if self.args[1] else strict

    def _sympystr(self, p):
        return self._op("<", "<=") + p._print(self.args[0])

    def _latex(self, p):
        return self._op("<", "\\le ") + p._print(self.args[0])

    def _pretty(self, p):
        return _cat(self._op("<", "≤"), p._print(self.args[0]))


class IndexAfter(IndexBefore):
    """`>t`, `\\geq t` (args: bound, inclusive flag as 0/1)."""

    def _sympystr(self, p):
        return self._op(">", ">=") + p._print(self.args[0])

    def _latex(self, p):
        return self._op(">", "\\geq ") + p._print(self.args[0])

    def _pretty(self, p):
        return _cat(self._op(">", "≥"), p._print(self.args[0]))


class Variable(_Node):
    """A variable or scalar: args `(Str name, Tuple index, Str mark, Integer primes, Str label)`."""

    @property
    def name(self) -> str:
        return self.args[0].name

    def _parts(self):
        name, index, mark, primes, _ = self.args
        return name.name, tuple(index), mark.name, int(primes)

    @property
    def label(self) -> str:
        return self.args[4].name

    def _sympystr(self, p):
        name, index, mark, primes = self._parts()
        text = f"{_spell(spellings.DECORATIONS, mark, 'latex')}{{{name}}}" if mark else name
        text += "'" * primes + (f"^{{{self.label}}}" if self.label else "")
        if index:
            text += _str_sub(",".join(p._print(i) for i in index).replace(" - ", "-").replace(" + ", "+"))
        return text

    def _latex(self, p):
        name, index, mark, primes = self._parts()
        text = _name_latex(name)
        if mark:
            text = f"{_spell(spellings.DECORATIONS, mark, 'latex')}{{{text}}}"
        text += "'" * primes + (f"^{{{_name_latex(self.label)}}}" if self.label else "")
        if index:
            text += _tex_sub(",".join(p._print(i) for i in index).replace(" - ", "-").replace(" + ", "+"))
        return text

    def _pretty(self, p):
        name, index, mark, primes = self._parts()
        form = p._print(sympy.Symbol(name))
        if mark:
            accent = _spell(spellings.DECORATIONS, mark, "unicode", "")
            form = prettyForm(_text(form) + accent) if _text(form) and len(_text(form)) == 1 else form
        form = _cat(form, "′" * primes)
        if self.label:
            form = _cat(form, "^", self.label)
        if index:
            items = _pjoin(p, index, ",")
            text = _text(items)
            if text is not None:
                items = prettyForm(text.replace(" - ", "-").replace(" + ", "+"))
            form = _cat(form, _pretty_sub(items))
        return form


class Distribution(_Node):
    """`name_sub(vars | given ; params)`: args `(Str name, Str sub, Tuple vars, Tuple given, Tuple params, Str mark)`."""

    def _parts(self):
        name, sub, vars_, given, params = self.args[:5]
        return name.name, sub.name, tuple(vars_), tuple(given), tuple(params)

    @property
    def mark(self) -> str:
        return self.args[5].name if len(self.args) > 5 else ""

    def _sympystr(self, p):
        name, sub, vars_, given, params = self._parts()
        head = (f"{_spell(spellings.DECORATIONS, self.mark, 'latex')}{{{name}}}" if self.mark else name)
        head += _str_sub(sub) if sub else ""
        if not (vars_ or given or params):
            return head
        inner = _join(p, vars_, ", ") + ("|" + _join(p, given, ", ") if given else "")
        inner += "; " + _join(p, params, ", ") if params else ""
        return f"{head}({inner})"

    def _latex(self, p):
        name, sub, vars_, given, params = self._parts()
        head = _name_latex(name)
        head = f"{_spell(spellings.DECORATIONS, self.mark, 'latex')}{{{head}}}" if self.mark else head
        head += _tex_sub(_name_latex(sub)) if sub else ""
        if not (vars_ or given or params):
            return head
        inner = _join(p, vars_, ", ") + (" \\mid " + _join(p, given, ", ") if given else "")
        inner += "; " + _join(p, params, ", ") if params else ""
        return f"{head}({inner})"

    def _pretty(self, p):
        name, sub, vars_, given, params = self._parts()
        head = p._print(sympy.Symbol(name))
        if self.mark and _text(head) and len(_text(head)) == 1:
            head = prettyForm(_text(head) + _spell(spellings.DECORATIONS, self.mark, "unicode", ""))
        if sub:
            head = _cat(head, _pretty_sub(p._print(sympy.Symbol(sub))))
        if not (vars_ or given or params):
            return head
        parts = [head, "(", _pjoin(p, vars_, ", ")]
        if given:
            parts += ["|", _pjoin(p, given, ", ")]
        if params:
            parts += ["; ", _pjoin(p, params, ", ")]
        return _cat(*parts, ")")


class FamilyDist(_Node):
    """An explicit family `𝒩(x|μ, σ²)`: args `(Str family, Tuple vars, Tuple args)`."""

    def _inner(self, p, join, mid):
        _, vars_, args = self.args
        if vars_ and args:
            return join(p, vars_, ", "), mid, join(p, args, ", ")
        return (join(p, vars_ or args, ", "),)

    def _integers(self) -> bool:
        """`𝒰{1, …, T}`: the discrete uniform is written as its set."""
        return self.args[0].name == "UniformDiscrete" and not self.args[1] and len(self.args[2]) == 2

    def _sympystr(self, p):
        family = self.args[0].name
        head = _spell(spellings.FAMILIES, family, "ascii", f"\\mathrm{{{family}}}")
        if self._integers():
            return head + "\\{" + _join(p, self.args[2], ", ..., ") + "\\}"
        return head + "(" + "".join(self._inner(p, _join, "|")) + ")"

    def _latex(self, p):
        family = self.args[0].name
        head = _spell(spellings.FAMILIES, family, "latex", f"\\mathrm{{{family}}}")
        if self._integers():
            return head + "\\{" + _join(p, self.args[2], ", \\ldots, ") + "\\}"
        return head + "\\left(" + "".join(self._inner(p, _join, " \\mid ")) + "\\right)"

    def _pretty(self, p):
        family = self.args[0].name
        if self._integers():
            return _cat(_spell(spellings.FAMILIES, family, "unicode"), "{", _pjoin(p, self.args[2], ", …, "), "}")
        return _cat(_spell(spellings.FAMILIES, family, "unicode"), "(", *self._inner(p, _pjoin, "|"), ")")


class LogDensity(_Node):
    """`log p(x|z)`."""

    precedence = PRECEDENCE["Func"]

    def _sympystr(self, p):
        return _spell(spellings.FUNCTIONS, "log", "ascii") + " " + p._print(self.args[0])

    def _latex(self, p):
        return _spell(spellings.FUNCTIONS, "log", "latex") + " " + p._print(self.args[0])

    def _pretty(self, p):
        return _cat(_spell(spellings.FUNCTIONS, "log", "unicode") + " ", p._print(self.args[0]))


class Expectation(_Node):
    """`𝔼_{q(z|x)}[f]`: args `(Tuple dists, Tuple draws, body[, joined])`; no dists and no draws for a bare
    `𝔼[f]`, no dists for a bare variable (`𝔼_{t}`). A `joined` expectation right inside another is written in
    its subscript list, as the text printers do (`printing.joined_samplers`)."""

    def _chain(self):
        """[(dists, draws), ...] of this subscript list, and the body inside the brackets."""
        items, node = [], self
        while True:
            dists, draws, body = node.args[:3]
            items.append((dists, draws))
            inner = body
            if not (isinstance(inner, Expectation) and len(inner.args) > 3 and inner.args[3]
                    and (inner.args[0] or inner.args[1]) and (dists or draws)):
                return items, body
            node = inner

    @staticmethod
    def _item(p, dists, draws, join, sim, dots):
        drawn = join(p, [_DrawSet(d, dots) for d in draws], ", ")
        if not dists:
            return drawn
        text = join(p, dists, " ")
        if len(draws) > 1 and not all(isinstance(d, Variable) and _DrawSet(d, dots)._ends() for d in draws):
            drawn = _cat("(", drawn, ")") if isinstance(drawn, prettyForm) else f"({drawn})"
        if draws:
            return _cat(drawn, sim, text) if isinstance(text, prettyForm) else drawn + sim + text
        return text

    def _sub(self, p, join, sim, dots):
        items, body = self._chain()
        if not (items[0][0] or items[0][1]):
            return None, body
        return [self._item(p, d, w, join, sim, dots) for d, w in items], body

    def _sympystr(self, p):
        subs, body = self._sub(p, _join, " ~ ", "...")
        return "E" + (f"_{{{', '.join(subs)}}}" if subs else "") + f"[{p._print(body)}]"

    def _latex(self, p):
        subs, body = self._sub(p, _join, " \\sim ", "\\ldots")
        head = "\\mathbb{E}" + (f"_{{{', '.join(subs)}}}" if subs else "")
        return head + f"\\left[{p._print(body)}\\right]"

    def _pretty(self, p):
        subs, body = self._sub(p, _pjoin, " ~ ", "…")
        parts = ["𝔼"]
        if subs:
            joined = []
            for i, sub in enumerate(subs):
                joined += ([", "] if i else []) + [sub]
            parts += ["_{", _cat(*joined), "}"]
        return _cat(*parts, "[", p._print(body), "]")


class _DrawSet(_Node):
    """A draw `z_{1:K}` written as the sampling set `z_1,...,z_K` (printing only)."""

    def __new__(cls, var, dots):
        obj = _Node.__new__(cls, var)
        obj._dots = dots
        return obj

    def _ends(self):
        var = self.args[0]
        if isinstance(var, Variable) and len(var.args[1]) == 1 and isinstance(var.args[1][0], IndexRange):
            lo, hi = var.args[1][0].args
            make = lambda i: Variable(var.args[0], STuple(i), *var.args[2:])  # noqa: E731
            return make(lo), make(hi)
        return None

    def _render(self, p, join):
        ends = self._ends()
        if ends is None:
            return p._print(self.args[0])
        return join(p._print(ends[0]), self._dots, p._print(ends[1]))

    def _sympystr(self, p):
        return self._render(p, lambda a, d, b: f"{a},{d},{b}")

    _latex = _sympystr

    def _pretty(self, p):
        return self._render(p, lambda a, d, b: _cat(a, ",", d, ",", b))


class DivergenceOf(_Node):
    """`D_KL[q ‖ p]`: args `(Str kind, left, right)` (not named `Divergence`: sympy keys printing precedence on
    class names, and its vector `Divergence` would claim this one)."""

    def _head(self, which: str, default: str) -> str:
        return _spell(spellings.DIVERGENCES, self.args[0].name, which, default)

    @property
    def sub(self) -> str:
        return self.args[3].name if len(self.args) > 3 else ""

    def _sympystr(self, p):
        kind = self.args[0].name
        head = kind + _str_sub(self.sub) if self.sub else self._head('ascii', kind)
        return f"{head}({p._print(self.args[1])} || {p._print(self.args[2])})"

    def _latex(self, p):
        head = self._head("latex", f"D_{{\\mathrm{{{self.args[0].name}}}}}")
        if self.sub:
            head = _name_latex(self.args[0].name) + _tex_sub(",".join(_name_latex(s) for s in self.sub.split(",")))
        return f"{head}\\left({p._print(self.args[1])} \\,\\|\\, {p._print(self.args[2])}\\right)"

    def _pretty(self, p):
        head = self._head("unicode", f"D_{self.args[0].name}")
        if self.sub:
            head = _text(_cat(self.args[0].name, _pretty_sub(p._print(sympy.Symbol(self.sub)))))
        return _cat(f"{head}[", p._print(self.args[1]), " ‖ ", p._print(self.args[2]), "]")


class Entropy(_Node):
    """`H[q(z|x)]`."""

    def _sympystr(self, p):
        return f"H[{p._print(self.args[0])}]"

    def _latex(self, p):
        return f"\\mathcal{{H}}\\left[{p._print(self.args[0])}\\right]"

    def _pretty(self, p):
        return _cat("ℍ[", p._print(self.args[0]), "]")


class IndexedSum(_Node):
    """`∑_{t=1}^{T} f`: args `(index, body, lower, upper, within, where)`, absent bounds as `S.EmptySet`."""

    precedence = PRECEDENCE["Mul"]
    _ops = ("sum", "\\sum", "∑")

    def _bounds(self, p, join_in, eq):
        index, _, lower, upper, within, where = self.args
        idx = p._print(index)
        if where is not S.EmptySet:
            sub = p._print(where)
        elif within is not S.EmptySet:
            sub = join_in(idx, p._print(within))
        elif lower is not S.EmptySet:
            sub = eq(idx, p._print(lower))
        else:
            sub = idx
        return sub, (None if upper is S.EmptySet else p._print(upper))

    def _body(self, p):
        return _paren_if(p, self.args[1], PRECEDENCE["Mul"] - 1)

    def _sympystr(self, p):
        sub, upper = self._bounds(p, lambda a, b: f"{a} \\in {b}", lambda a, b: f"{a}={b}")
        return f"{self._ops[0]}_{{{sub}}}" + (f"^{{{upper}}}" if upper else "") + " " + self._body(p)

    def _latex(self, p):
        sub, upper = self._bounds(p, lambda a, b: f"{a} \\in {b}", lambda a, b: f"{a}={b}")
        return f"{self._ops[1]}_{{{sub}}}" + (f"^{{{upper}}}" if upper else "") + " " + self._body(p)

    def _pretty(self, p):
        sub, upper = self._bounds(p, lambda a, b: _cat(a, " ∈ ", b), lambda a, b: _cat(a, "=", b))
        parts = [self._ops[2], "_{", sub, "}"]
        if upper is not None:
            parts += ["^{", upper, "}"]
        return _cat(*parts, " ", self._body(p))


class IndexedProduct(IndexedSum):
    """`∏_{t=1}^{T} f`."""

    _ops = ("prod", "\\prod", "∏")


class Fraction(_Node):
    """`a/b` on one line, `\\frac{a}{b}` in LaTeX (printing form; the canonical form uses `Mul`/`Pow`)."""

    precedence = PRECEDENCE["Mul"]

    def _sympystr(self, p):
        return f"{_paren_if(p, self.args[0], PRECEDENCE['Mul'])} / {_paren_if(p, self.args[1], PRECEDENCE['Mul'])}"

    def _latex(self, p):
        return f"\\frac{{{p._print(self.args[0])}}}{{{p._print(self.args[1])}}}"

    def _pretty(self, p):
        return _cat(_paren_if(p, self.args[0], PRECEDENCE["Mul"]), "/",
                    _paren_if(p, self.args[1], PRECEDENCE["Mul"]))


_SUPER = dict(zip("0123456789+-()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ⁿ"))


class Power(_Node):
    """`a^b` on one line (`x²` where the exponent has superscript characters)."""

    precedence = PRECEDENCE["Pow"]

    def _sympystr(self, p):
        return f"{_paren_if(p, self.args[0], PRECEDENCE['Pow'])}^{{{p._print(self.args[1])}}}"

    def _latex(self, p):
        return f"{_paren_if(p, self.args[0], PRECEDENCE['Pow'])}^{{{p._print(self.args[1])}}}"

    def _pretty(self, p):
        base, exp = _paren_if(p, self.args[0], PRECEDENCE["Pow"]), p._print(self.args[1])
        text = _text(exp)
        if text and all(c in _SUPER for c in text):
            return _cat(base, "".join(_SUPER[c] for c in text))
        return _cat(base, "^(", exp, ")")


class Call(_Node):
    """An elementwise or calculus function with a fixed meaning: args `(Str fn, *args)`."""

    def _sympystr(self, p):
        fn, args = self.args[0].name, self.args[1:]
        if fn == "transpose":
            return f"{_paren_if(p, args[0], PRECEDENCE['Pow'])}^{{\\top}}"
        return f"{_spell(spellings.FUNCTIONS, fn, 'ascii')}({_join(p, args, ', ')})"

    def _latex(self, p):
        fn, args = self.args[0].name, self.args[1:]
        if fn == "transpose":
            return f"{_paren_if(p, args[0], PRECEDENCE['Pow'])}^{{\\top}}"
        if fn == "abs":
            return f"\\left|{_join(p, args, ', ')}\\right|"
        if fn == "sqrt":
            return f"\\sqrt{{{_join(p, args, ', ')}}}"
        head = _spell(spellings.FUNCTIONS, fn, "latex", f"\\operatorname{{{fn}}}")
        return f"{head}\\left({_join(p, args, ', ')}\\right)"

    def _pretty(self, p):
        fn, args = self.args[0].name, self.args[1:]
        if fn == "transpose":
            return _cat(_paren_if(p, args[0], PRECEDENCE["Pow"]), "ᵀ")
        if fn == "abs":
            return _cat("|", _pjoin(p, args, ", "), "|")
        return _cat(_spell(spellings.FUNCTIONS, fn, "unicode"), "(", _pjoin(p, args, ", "), ")")


class NormOf(_Node):
    """`‖a‖`, `‖a‖₂`: args `(arg, ord)` with `S.EmptySet` for no order."""

    def _sympystr(self, p):
        ord_ = "" if self.args[1] is S.EmptySet else _str_sub(p._print(self.args[1]))
        return f"\\|{p._print(self.args[0])}\\|{ord_}"

    def _latex(self, p):
        ord_ = "" if self.args[1] is S.EmptySet else _tex_sub(p._print(self.args[1]))
        return f"\\left\\|{p._print(self.args[0])}\\right\\|{ord_}"

    def _pretty(self, p):
        parts = ["‖", p._print(self.args[0]), "‖"]
        if self.args[1] is not S.EmptySet:
            parts.append(_pretty_sub(p._print(self.args[1])))
        return _cat(*parts)


class StopGradient(_Node):
    """`sg[a]`."""

    def _sympystr(self, p):
        return f"{_spell(spellings.FUNCTIONS, 'sg', 'ascii')}[{p._print(self.args[0])}]"

    def _latex(self, p):
        return f"{_spell(spellings.FUNCTIONS, 'sg', 'latex')}\\left[{p._print(self.args[0])}\\right]"

    def _pretty(self, p):
        return _cat(_spell(spellings.FUNCTIONS, "sg", "unicode") + "[", p._print(self.args[0]), "]")


class GradientOf(_Node):
    """`∇_x f`: args `(Tuple wrt, arg)` (named apart from sympy's vector `Gradient`, as `DivergenceOf`)."""

    precedence = PRECEDENCE["Mul"]

    def _sympystr(self, p):
        return f"\\nabla_{{{_join(p, self.args[0], ', ')}}} {_paren_if(p, self.args[1], PRECEDENCE['Mul'])}"

    _latex = _sympystr

    def _pretty(self, p):
        return _cat("∇", _pretty_sub(_pjoin(p, self.args[0], ",")), " ",
                    _paren_if(p, self.args[1], PRECEDENCE["Mul"]))


class PartialDerivative(_Node):
    """`∂f(x)/∂x`: args `(num, wrt)`."""

    def _sympystr(self, p):
        num = _paren_if(p, self.args[0], PRECEDENCE["Mul"])
        return f"\\frac{{\\partial {num}}}{{\\partial {_paren_if(p, self.args[1], PRECEDENCE['Mul'])}}}"

    _latex = _sympystr

    def _pretty(self, p):
        return _cat("∂", _paren_if(p, self.args[0], PRECEDENCE["Mul"]), "/∂",
                    _paren_if(p, self.args[1], PRECEDENCE["Mul"]))


class LabeledTerm(_Node):
    """`\\underbrace{f}_{L}`: a named term (the Unicode form is `⏟[f]_L`)."""

    def _sympystr(self, p):
        return f"\\underbrace{{{p._print(self.args[0])}}}_{{{p._print(self.args[1])}}}"

    _latex = _sympystr

    def _pretty(self, p):
        return _cat("⏟[", p._print(self.args[0]), "]", _pretty_sub(p._print(self.args[1])))


class Unevaluated(_Node):
    """What the compiler does not evaluate (integrals, arg-min, tuples, placeholders, prose labels, coordinate
    derivatives): args `(Str kind, *parts)`, compared by form; printed in the ASCII spelling of its parts."""

    def _sympystr(self, p):
        return f"{self.args[0].name}({', '.join(p._print(a) for a in self.args[1:])})"

    _latex = _sympystr

    def _pretty(self, p):
        return _cat(self.args[0].name, "(", _pjoin(p, self.args[1:], ", "), ")")


class RelationChain(_Node):
    """`a = b ≥ c`: args `(Tuple members, Tuple ops as Str)`."""

    precedence = PRECEDENCE["Relational"]

    def _pairs(self):
        members, ops = self.args
        return list(members), [o.name for o in ops]

    def _sympystr(self, p):
        members, ops = self._pairs()
        out = p._print(members[0])
        for op, m in zip(ops, members[1:]):
            out += f" {_spell(spellings.RELATIONS, op, 'ascii')} {p._print(m)}"
        return out

    def _latex(self, p):
        members, ops = self._pairs()
        out = p._print(members[0])
        for op, m in zip(ops, members[1:]):
            out += f" {_spell(spellings.RELATIONS, op, 'latex')} {p._print(m)}"
        return out

    def _pretty(self, p):
        members, ops = self._pairs()
        parts = [p._print(members[0])]
        for op, m in zip(ops, members[1:]):
            parts += [f" {_spell(spellings.RELATIONS, op, 'unicode')} ", p._print(m)]
        return _cat(*parts)


class DrawOf(_Node):
    """`ε ~ 𝒰(0, 1)`, `(x, y) ~ p̃ₗ`: args `(Tuple vars, dist)`."""

    precedence = PRECEDENCE["Relational"]

    def _drawn(self, p, join):
        vars_ = self.args[0]
        text = join(p, vars_, ", ")
        if len(vars_) == 1:
            return text
        return _cat("(", text, ")") if isinstance(text, prettyForm) else f"({text})"

    def _sympystr(self, p):
        return f"{self._drawn(p, _join)} ~ {p._print(self.args[1])}"

    def _latex(self, p):
        return f"{self._drawn(p, _join)} \\sim {p._print(self.args[1])}"

    def _pretty(self, p):
        return _cat(self._drawn(p, _pjoin), " ~ ", p._print(self.args[1]))


class WhereClause(_Node):
    """`body where a = b, ε ~ 𝒰(0, 1)`: args `(body, Tuple defs)`."""

    precedence = PRECEDENCE["Relational"]

    def _sympystr(self, p):
        return f"{p._print(self.args[0])} where {_join(p, self.args[1], ', ')}"

    def _latex(self, p):
        return f"{p._print(self.args[0])} \\quad \\text{{where}} \\quad {_join(p, self.args[1], ', ')}"

    def _pretty(self, p):
        return _cat(p._print(self.args[0]), " where ", _pjoin(p, self.args[1], ", "))


class Optimization(_Node):
    """`min_G max_D V`: args `(Str sense, Tuple over, body)`."""

    precedence = PRECEDENCE["Relational"]

    def _sympystr(self, p):
        return f"\\{self.args[0].name}_{{{_join(p, self.args[1], ', ')}}} {p._print(self.args[2])}"

    _latex = _sympystr

    def _pretty(self, p):
        return _cat(self.args[0].name, _pretty_sub(_pjoin(p, self.args[1], ",")), " ", p._print(self.args[2]))


class Statements(_Node):
    """A text of several statements, printed one a line."""

    def _sympystr(self, p):
        return "\n".join(p._print(s) for s in self.args)

    _latex = _sympystr

    def _pretty(self, p):
        lines = [line for s in self.args for line in p._print(s).picture]
        width = max(len(line) for line in lines)
        return prettyForm("\n".join(line.ljust(width) for line in lines))  # left-aligned, one under another


# --- AST -> sympy --------------------------------------------------------------------------------------------


def _parse(item: NodeOrText) -> n.Node:
    if isinstance(item, str):
        from ..lang.parser import parse

        return parse(item)
    if not isinstance(item, n.Node):
        raise TypeError(f"expected a formula string or an AST node, got {type(item).__name__}")
    return item


def _opt(value) -> sympy.Basic:
    return S.EmptySet if value is None else value


class _Converter:
    """AST -> sympy, by node class name. `canonical=False` keeps the written form for printing;
    `canonical=True` builds the normal form that `equivalent` compares."""

    def __init__(self, canonical: bool):
        self.canonical = canonical

    def __call__(self, node: n.Node) -> sympy.Basic:
        method: Callable = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise TypeError(f"no sympy form for {type(node).__name__}")
        return method(node)

    def many(self, items: Iterable[n.Node]) -> STuple:
        return STuple(*[self(i) for i in items])

    # arithmetic
    def _Num(self, node: n.Num):
        if self.canonical:
            return sympy.Rational(repr(float(node.value)))
        text = format_number(node.value)
        return sympy.Integer(text) if "." not in text else sympy.Float(text, max(15, len(text)))

    def _Add(self, node: n.Add):
        return sympy.Add(*[self(t) for t in node.terms], evaluate=self.canonical)

    def _Neg(self, node: n.Neg):
        arg = self(node.arg)
        if self.canonical or arg.is_Number:
            return -arg
        if isinstance(arg, sympy.Mul) and arg.args[0] != S.NegativeOne:  # -(a b) prints as -a b
            return sympy.Mul(S.NegativeOne, *arg.args, evaluate=False)
        return sympy.Mul(S.NegativeOne, arg, evaluate=False)

    def _Mul(self, node: n.Mul):
        return sympy.Mul(*[self(f) for f in node.factors], evaluate=self.canonical)

    def _Div(self, node: n.Div):
        if self.canonical:
            num, den = self(node.num), self(node.den)
            return _defined(num / den, lambda: Fraction(num, den))
        return Fraction(self(node.num), self(node.den))

    def _Pow(self, node: n.Pow):
        if self.canonical:
            base, exp = self(node.base), self(node.exp)
            return _defined(sympy.Pow(base, exp), lambda: Power(base, exp))
        return Power(self(node.base), self(node.exp))

    def _Apply(self, node: n.Apply):
        return Call(Str(node.fn), *[self(a) for a in node.args])

    # names
    def _index(self, item):
        if isinstance(item, n.Range):
            return IndexRange(self(item.lo), self(item.hi))
        if isinstance(item, n.Before):
            return IndexBefore(self(item.bound), sympy.Integer(int(item.inclusive)))
        if isinstance(item, n.After):
            return IndexAfter(self(item.bound), sympy.Integer(int(item.inclusive)))
        return self(item)

    def _Var(self, node: n.Var):
        return Variable(Str(node.name), STuple(*[self._index(i) for i in node.index]), Str(node.mark or ""),
                        sympy.Integer(node.primes), Str(node.label or ""))

    def _Dist(self, node: n.Dist):
        sub, params = node.sub or "", self.many(node.params)
        if self.canonical:
            # A Greek subscript is a parameter subscript (`q_\phi` is `q`); parameters after `;` do not
            # change which density is meant either.
            sub = "" if sub in GREEK else sub
            params = STuple()
        if node.script:  # a structured subscript (`\\mathbb{P}_{\\hat x}`) compares by its nodes
            sub = sub + "|" + sympy.srepr(self.many(node.script))
        name = node.name + (f"^{node.label}" if node.label else "")
        return Distribution(Str(name), Str(sub), self.many(node.vars), self.many(node.given), params,
                            Str(node.mark or ""))

    def _Family(self, node: n.Family):
        return FamilyDist(Str(node.family), self.many(node.vars), self.many(node.args))

    # probabilistic operators
    def _LogDensity(self, node: n.LogDensity):
        return LogDensity(self(node.dist))

    def _Expect(self, node: n.Expect):
        if node.params:  # `E[f; m, s^2]`
            return self._unevaluated(node)
        dists = self.many(node.over.dists) if node.over else STuple()
        draws = self.many(node.over.draws) if node.over else STuple()
        body = self(node.body)
        if not self.canonical:
            return Expectation(dists, draws, body, sympy.Integer(int(node.joined)))
        sampled = _names(draws) | _names(*[d.args[2] for d in dists if isinstance(d, Distribution)]) | \
            _names(*[d.args[1] for d in dists if isinstance(d, FamilyDist)])
        if not dists or any(isinstance(d, Distribution) and not d.args[2] for d in dists):
            sampled = None  # `E[f]`, `E_q[f]`: what is sampled is not written, so only numbers are constants
        return _linear(body, sampled, lambda b: Expectation(dists, draws, b), constant_is_itself=True)

    def _Divergence(self, node: n.Divergence):
        if node.function_class is not None:  # `MMD[F, p, q]`
            return self._unevaluated(node)
        return DivergenceOf(Str(node.kind), self(node.left), self(node.right), Str(node.sub or ""))

    def _Entropy(self, node: n.Entropy):
        return Entropy(self(node.dist))

    def _sum_like(self, node, cls):
        index = self(node.index)
        rest = [_opt(None if v is None else self(v)) for v in (node.lower, node.upper, node.within, node.where)]
        body = self(node.body)
        if not self.canonical or cls is IndexedProduct:
            return cls(index, body, *rest)
        return _linear(body, {index.name}, lambda b: cls(index, b, *rest), constant_is_itself=False)

    def _Sum(self, node: n.Sum):
        return self._sum_like(node, IndexedSum)

    def _Prod(self, node: n.Prod):
        return self._sum_like(node, IndexedProduct)

    # math and calculus
    def _Norm(self, node: n.Norm):
        ord_ = node.ord
        if self.canonical and ord_ is None:
            ord_ = n.Num(2.0)  # the Euclidean norm is the default: \|a\| is \|a\|_2
        return NormOf(self(node.arg), _opt(None if ord_ is None else self(ord_)))

    def _StopGrad(self, node: n.StopGrad):
        return StopGradient(self(node.arg))

    def _Grad(self, node: n.Grad):
        return GradientOf(self.many(node.wrt), self(node.arg))

    def _Partial(self, node: n.Partial):
        return PartialDerivative(self(node.num), self(node.wrt))

    def _Labeled(self, node: n.Labeled):
        if self.canonical:  # a name for a term does not change its value
            return self(node.body)
        return LabeledTerm(self(node.body), self(node.label))

    # what parses and prints but is not evaluated: compared by its form
    def _unevaluated(self, node: n.Node):
        parts = []
        for f in fields(node):
            if f.name == "span":
                continue
            value = getattr(node, f.name)
            if isinstance(value, n.Node):
                parts.append(self(value))
            elif isinstance(value, tuple):
                parts.append(STuple(*[self(v) if isinstance(v, n.Node) else Str(str(v)) for v in value]))
            else:
                parts.append(S.EmptySet if value is None else Str(str(value)))
        return Unevaluated(Str(type(node).__name__), *parts)

    _Integral = _ArgOpt = _ArgTuple = _Concat = _Placeholder = _Text = _Derivative = _SuchThat = _unevaluated

    # statements
    def _Relation(self, node: n.Relation):
        return RelationChain(self.many(node.members), STuple(*[Str(o) for o in node.ops]))

    def _Draw(self, node: n.Draw):
        return DrawOf(self.many(node.vars), self(node.dist))

    def _Where(self, node: n.Where):
        return WhereClause(self(node.body), self.many(node.defs))

    def _Optimize(self, node: n.Optimize):
        return Optimization(Str(node.sense), self.many(node.over), self(node.body))

    def _Program(self, node: n.Program):
        if len(node.statements) == 1:
            return self(node.statements[0])
        return Statements(*[self(s) for s in node.statements])


def _expand(expr: sympy.Expr) -> sympy.Expr:
    """Distribute products over sums, and nothing else (no `(a+b)^n` blow-up, no log or power rules)."""
    return sympy.expand(expr, deep=True, mul=True, multinomial=False, power_exp=False, power_base=False,
                        log=False, basic=False)


_UNDEFINED = (S.NaN, S.ComplexInfinity, S.Infinity, S.NegativeInfinity)


def _defined(value: sympy.Expr, as_written: Callable[[], sympy.Expr]) -> sympy.Expr:
    """`value`, unless evaluating made it undefined (`0/0`, `1/0`): then the operation as an opaque term, so that
    it still compares by its form (nan absorbs everything in sympy, which would make `0/0 + 1` equal `0/0`)."""
    return as_written() if value.has(*_UNDEFINED) else value


def _names(*exprs: sympy.Basic) -> set:
    """Names of the variables occurring in `exprs` (inside indices too)."""
    out: set = set()
    for e in exprs:
        out |= _names_of(e)
    return out


@functools.lru_cache(maxsize=4096)
def _names_of(expr: sympy.Basic) -> frozenset:
    if isinstance(expr, Variable):
        return frozenset({expr.name}) | _names_of(expr.args[1])
    return frozenset().union(*[_names_of(a) for a in expr.args])


def _linear(body: sympy.Expr, bound: Optional[set], wrap: Callable[[sympy.Expr], sympy.Expr],
            constant_is_itself: bool):
    """Linearity of an expectation or a sum: `wrap(a + c b)` becomes `wrap(a) + c wrap(b)` for `c` free of the
    `bound` variables (`bound=None`: only numbers are free). An expectation of a constant is the constant; a
    sum of one keeps `wrap(1)`."""
    body = _expand(body)
    out = []

    def depends(factor) -> bool:
        return not factor.is_number if bound is None else bool(_names(factor) & bound)

    for term in sympy.Add.make_args(body):
        coeff, factors = term.as_coeff_mul()
        inside = [f for f in factors if depends(f)]
        outside = [f for f in factors if not depends(f)]
        if not inside and constant_is_itself:
            out.append(term)
            continue
        out.append(coeff * sympy.Mul(*outside) * wrap(sympy.Mul(*inside)))
    return sympy.Add(*out)


_PRINTING = _Converter(canonical=False)
_CANONICAL = _Converter(canonical=True)


@depth_guarded
def to_sympy(node_or_text: NodeOrText) -> sympy.Expr:
    """A sympy expression for a formula (string or AST), in the order and form it was written."""
    return _PRINTING(_parse(node_or_text))


@depth_guarded
def canonical(node_or_text: NodeOrText) -> sympy.Expr:
    """The normal form `equivalent` compares: sorted, expanded, exact, linear in expectations and sums."""
    return _expand(_CANONICAL(_parse(node_or_text)))


def _statements(node: n.Node) -> List[n.Node]:
    return list(node.statements) if isinstance(node, n.Program) else [node]


@depth_guarded
def _is_name(node: n.Node) -> bool:
    """`\\mathcal{L}`, `ELBO`, `L(x; \\theta)`, `V(D, G)`: what names an objective (not a density such as p(x))."""
    if isinstance(node, n.Var):
        return True
    return (isinstance(node, n.Dist) and node.name[:1].isupper() and not node.given
            and all(isinstance(a, n.Var) for a in node.vars + node.params))


def named_body(statement: n.Node) -> n.Node:
    """A named objective is its body: `\\mathcal{L}(x) = body`, `body =: \\mathcal{L}`, `\\min_G V(D,G) = body`
    compare as `body` (with the prefixes kept); anything else as written."""
    if isinstance(statement, n.Optimize):
        return replace(statement, body=named_body(statement.body))
    if not isinstance(statement, n.Relation):
        return statement
    members, ops = statement.members, statement.ops
    if len(members) == 2 and ops[0] in ("=", ":=") and _is_name(members[0]) and not _is_name(members[1]):
        return members[1]
    if ops[-1] == "=:" and _is_name(members[-1]):
        return members[-2]
    return statement


def equivalent(a: NodeOrText, b: NodeOrText, distributions: Optional[Iterable[object]] = None) -> bool:
    """Whether two formulas denote the same objective up to algebra that keeps its value (docs/language.md §4).

    Multi-statement texts are compared statement by statement. With `distributions` (declarations, or signature
    strings as `formula check --dist` takes them) the objectives (last statements) are compared after what the
    declarations and the texts' factorisation lines imply (`formula.text.implied`): the chain rule, KL and entropy
    as expectations, and a named objective as its body.
    """
    if distributions is not None:
        return _equivalent_given(_statements(_parse(a)), _statements(_parse(b)), list(distributions))
    sa, sb = _statements(_parse(a)), _statements(_parse(b))
    if len(sa) != len(sb):
        return False
    for x, y in zip(sa, sb):
        cx, cy = canonical(named_body(x)), canonical(named_body(y))
        if cx != cy and _expand(cx - cy) != 0:
            return False
    return True


def _equivalent_given(sa: List[n.Node], sb: List[n.Node], distributions: list) -> bool:
    model = implied.model_of(distributions, sa[:-1] + sb[:-1])
    x, y = (implied.expand(named_body(s[-1]), model) for s in (sa, sb))
    cx, cy = canonical(x), canonical(y)
    return cx == cy or _expand(cx - cy) == 0


@depth_guarded
def pretty(node_or_text: NodeOrText) -> str:
    """Unicode, the way a paper prints it, on one line a statement: `𝔼_{q(z|x)}[log p(x|z)] - D_KL[q(z|x) ‖ p(z)]`.
    It reads back (`parse(pretty(t)) == parse(t)`): `formula.text.unicode` writes it with the ASCII printer's
    brackets. `sympy.pretty(to_sympy(t))` gives sympy's own layout through the classes' `_pretty` hooks."""
    return to_unicode(_parse(node_or_text))


@depth_guarded
def latex(node_or_text: NodeOrText) -> str:
    """The LaTeX a paper prints (`printing.to_latex`, which reads back to the same tree). sympy's own
    `sympy.latex(to_sympy(x), order="none")` gives much the same through our classes' `_latex` hooks, but its
    spacing of products (`a \\left(b\\right)`) can read back as a call."""
    return to_latex(_parse(node_or_text))


@depth_guarded
def ascii_str(node_or_text: NodeOrText) -> str:
    """sympy's `str` of the formula (plain ASCII, close to the input spelling)."""
    return sympy.sstr(to_sympy(node_or_text), order="none")
