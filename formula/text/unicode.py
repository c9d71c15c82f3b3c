"""AST -> the Unicode a paper prints, on one line: `𝔼_{q(z|x)}[log p(x|z)] - D_KL[q(z|x) ‖ p(z)]`.

This is what `print(objective)` and `formula pretty` show, so it must read back: the printer is the ASCII printer
with Unicode spellings (`𝔼`, `‖`, `∑`, `⋅`, Greek letters, sub- and superscript characters, combining marks), each
of which `formula.lang.unicode_input` turns back into its ASCII or LaTeX spelling before parsing. Precedence and
brackets are the ASCII printer's, so `parse(to_unicode(t)) == t` for every tree the parser builds.
"""

from __future__ import annotations

from ..lang import nodes as n
from ..lang import spellings
from ..lang.unicode_input import GREEK_UNICODE, ITALIC, SUBSCRIPTS, SUPERSCRIPTS
from .printing import ADD, ATOM, MUL, POW, PREFIX, AsciiPrinter, Piece, depth_guarded

__all__ = ["UnicodePrinter", "to_unicode"]

_TO_SUB = SUBSCRIPTS
_TO_SUPER = SUPERSCRIPTS


class UnicodePrinter(AsciiPrinter):
    """The ASCII printer's structure with the Unicode spellings of every name and operator."""

    times = "⋅"
    ldots = "…"
    parallel = " ‖ "
    expect = "𝔼"
    entropy = "ℍ"
    le, ge = "≤", "≥"
    spelling = "unicode"
    where_word = " where "

    def mul_sep(self, left: str, right: str) -> str:
        return self.times

    def name(self, name: str) -> str:
        return GREEK_UNICODE.get(name, {"ell": "ℓ", "infty": "∞"}.get(name, name))

    def plain(self, name: str, call: bool = False, sub=None) -> str:
        """A one-letter name that would read as a keyword (`E`, `H`) in mathematical italic, `𝐸`, as a paper sets
        it (formula.lang.unicode_input reads it back as `\\mathit{E}`); longer ones as `\\mathit{..}`."""
        text = super().plain(name, call, sub)
        if text == f"\\mathit{{{name}}}" and len(name) == 1 and name in ITALIC:
            return ITALIC[name]
        return text

    def subscript(self, text: str) -> str:
        if text and all(c in _TO_SUB for c in text):
            return "".join(_TO_SUB[c] for c in text)
        return super().subscript(text)

    def superscript(self, text: str) -> str:
        if text and all(c in _TO_SUPER for c in text):
            return "".join(_TO_SUPER[c] for c in text)
        return "^" + self.script(text)

    def marked(self, text: str, mark: str) -> str:
        """`x̃` (a combining mark) on a one-character name, else the LaTeX `\\tilde{..}` (mixing is legal)."""
        row = spellings.DECORATIONS.get(mark)
        if row is not None and row.unicode and len(text) == 1:
            return text + row.unicode
        return f"{self.spelled(spellings.DECORATIONS, mark, mark) if row is None else row.latex}{{{text}}}"

    def _print_Var(self, node: n.Var) -> Piece:
        text = self.plain(node.name)
        if node.mark:
            text = self.marked(text, node.mark)
        text += "′" * node.primes
        if node.label == "*":  # `G^*`
            text += "^*"
        elif node.label is not None:
            text += self.superscript(self.plain(node.label))
        if node.index:
            items = ",".join(self.index_item(i) for i in node.index)
            text += self.subscript(items.replace(" - ", "-").replace(" + ", "+"))
        return Piece(text, ATOM)

    placeholder = "·"
    integral = "∫"

    def differential(self, v: n.Var) -> str:
        text = self(v)
        return ("d" + text) if (len(v.name) == 1 or v.name in GREEK_UNICODE) and not v.primes else f"d {text}"

    def arg_op(self, sense: str) -> str:
        return f"arg{sense}"

    def _print_Derivative(self, node: n.Derivative) -> Piece:
        return Piece(f"∂{self.subscript(self.at(node.index, ADD))} {self.body(node.arg)}", MUL, True)

    def dist_name(self, name: str, sub, call: bool = True, mark=None) -> str:
        text = super().dist_name(name, sub, call)
        if not mark:
            return text
        head = self.plain(name, call, sub)
        return self.marked(head, mark) + text[len(head):]

    def _print_Pow(self, node: n.Pow) -> Piece:
        inner = self.piece(node.base)
        base = inner.text if inner.prec == PREFIX and not inner.open_right else self.at(node.base, ATOM)
        if n.superscript_is_label(node.base, node.exp):
            base = self.paren(base)
        return Piece(f"{base}{self.superscript(self.at(node.exp, ADD))}", POW)

    def _print_Divergence(self, node: n.Divergence) -> Piece:
        inner = f"{self.at(node.left, ADD)}{self.parallel}{self.at(node.right, ADD)}"
        if node.function_class is not None:  # `MMD[ℱ, p, q]`
            inner = self.args((node.function_class, node.left, node.right))
        head = self.divergence_head(node.kind) if node.sub is None else self.divergence_sub_head(node.kind, node.sub)
        return Piece(f"{head}[{inner}]", ATOM)

    def _print_Norm(self, node: n.Norm) -> Piece:
        text = f"‖{self.at(node.arg, ADD)}‖"
        if node.ord is not None:
            text += self.subscript(self.at(node.ord, ADD))
        return Piece(text, ATOM)

    def _print_Apply(self, node: n.Apply) -> Piece:
        if node.fn == "transpose":
            return Piece(f"{self.at(node.args[0], ATOM)}ᵀ", POW)
        return super()._print_Apply(node)

    def abs_(self, text: str) -> Piece:
        return Piece(f"|{text}|", ATOM)

    def sqrt(self, text: str) -> str:
        return f"√({text})"

    def big(self, op: str) -> str:
        return {"sum": "∑", "prod": "∏"}[op]

    def _print_Sum(self, node, op="sum") -> Piece:
        piece = super()._print_Sum(node, op)
        if node.within is None:
            return piece
        return Piece(piece.text.replace(" \\in ", " ∈ ", 1), piece.prec, piece.open_right)

    def _print_Grad(self, node: n.Grad) -> Piece:
        wrt = ", ".join(self.at(w, ADD) for w in node.wrt)
        sub = self.subscript(wrt) if "," not in wrt else f"_{{{wrt}}}"
        return Piece(f"∇{sub} {self.body(node.arg)}", MUL, True)

    def _print_Partial(self, node: n.Partial) -> Piece:
        # `∂A/∂B` reads as a quotient: it binds like a product, so a partial inside another is bracketed
        return Piece(f"∂{self.at(node.num, POW)}/∂{self.at(node.wrt, POW)}", MUL)

    def _print_Labeled(self, node: n.Labeled) -> Piece:
        return Piece(f"⏟[{self.at(node.body, ADD)}]_{{{self.at(node.label, ADD)}}}", ATOM)

    def optimize_head(self, node: n.Optimize) -> str:
        over = ", ".join(self.at(o, ADD) for o in node.over)
        return f"{node.sense}{self.subscript(over)} "

    def _print_Family(self, node: n.Family) -> Piece:
        if node.family == "UniformDiscrete" and not node.vars and len(node.args) == 2:  # `𝒰{1, …, T}`
            lo, hi = (self.at(a, ADD) for a in node.args)
            return Piece(f"{self.family_head(node.family)}{{{lo}, {self.ldots}, {hi}}}", ATOM)
        return super()._print_Family(node)


_UNICODE = UnicodePrinter()


@depth_guarded
def to_unicode(node: n.Node) -> str:
    """The Unicode spelling of a `Program` or any `Expr` (what `print(objective)` shows); `parse` reads it back to
    an equal tree."""
    return _UNICODE.top(node)
