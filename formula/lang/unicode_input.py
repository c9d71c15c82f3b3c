"""Unicode input: what `print(objective)` shows (`𝔼`, `‖`, `∑`, `⋅`, `θ`, `ₜ`, `²`, `x̃`, `≥`, `−`) read back.

`translate(text)` rewrites each Unicode spelling into its ASCII or LaTeX one (`θ` -> `\\theta`, `zₜ₋₁` -> `z_{t-1}`,
`x̃` -> `\\tilde{x}`, `⏟[f]_L` -> `\\underbrace{f}_L`) and keeps, for every character it writes, the range of the
original text it came from, so that spans and carets point into what the user pasted. The tables of names come
from formula/lang/spellings.py (a family's or function's Unicode spelling is one field of its row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import spellings

__all__ = ["GREEK_UNICODE", "ITALIC", "SUBSCRIPTS", "SUPERSCRIPTS", "Translation", "translate"]

_GREEK_NAMES = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon "
                "phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega").split()
_GREEK_CHARS = "αβγδεζηθικλμνξπρστυφχψωΓΔΘΛΞΠΣΥΦΨΩ"

#: Greek names (as the AST spells them) -> the letter the Unicode printer writes.
GREEK_UNICODE: Dict[str, str] = dict(zip(_GREEK_NAMES, _GREEK_CHARS))

#: ASCII character -> its subscript / superscript character.
SUBSCRIPTS: Dict[str, str] = dict(zip("0123456789+-=()aeoxhklmnpstijruv", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓₕₖₗₘₙₚₛₜᵢⱼᵣᵤᵥ"))
SUPERSCRIPTS: Dict[str, str] = dict(zip("0123456789+-()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ⁿ"))

#: Latin capital -> its mathematical italic (`𝐸`): how the Unicode printer writes a one-letter plain name that
#: would read as a keyword (`\\mathit{E}`, an energy function `𝐸_θ(x)`, not the expectation).
ITALIC: Dict[str, str] = {chr(ord("A") + i): chr(0x1D434 + i) for i in range(26)}

_FROM_SUB = {v: k for k, v in SUBSCRIPTS.items()}
_FROM_SUPER = {v: k for k, v in SUPERSCRIPTS.items()}

_SYMBOLS = {
    "‖": "\\Vert", "∥": "\\Vert", "∑": "\\sum", "∏": "\\prod", "⋅": "*", "−": "-", "∇": "\\nabla", "ℍ": "H",
    "∂": "\\partial", "…": "\\ldots", "′": "'", "″": "''", "ᵀ": "^\\top", "√": "\\sqrt", "𝔼": "\\mathbb{E}",
    "∼": "\\sim", "ϵ": "\\epsilon", "ϑ": "\\theta", "ϕ": "\\phi", "⟨": "\\langle", "⟩": "\\rangle", "∫": "\\int", "∞": "\\infty",
}
_UNDERBRACE = "⏟"


def _symbols() -> Dict[str, str]:
    """Every Unicode spelling this module rewrites: the fixed symbols, Greek letters, and the families' and
    functions' Unicode spellings from their rows (`𝒩` -> `\\mathcal{N}`, `σ` is Greek: `\\sigma(` is the logistic)."""
    table = dict(_SYMBOLS)
    table.update({c: f"\\mathit{{{name}}}" for name, c in ITALIC.items()})
    table["ℓ"] = "\\ell"
    table.update({c: "\\" + name for name, c in GREEK_UNICODE.items()})
    for row in spellings.FAMILIES.values():
        if row.unicode and not row.unicode.isascii() and row.unicode not in table:
            table[row.unicode] = row.latex
    for row in spellings.FUNCTIONS.values():
        if row.unicode and not row.unicode.isascii() and row.unicode not in table:
            table[row.unicode] = row.latex
    return table


def _marks() -> Dict[str, str]:
    return {row.unicode: row.name for row in spellings.DECORATIONS.values() if row.unicode}


@dataclass
class Translation:
    """The rewritten text and, per character of it, the `[start, end)` of the original text it came from."""

    text: str
    starts: List[int]
    ends: List[int]

    def span(self, start: int, end: int, length: int) -> Tuple[int, int]:
        """A span of the rewritten text as a span of the original (of length `length`)."""
        if not self.starts:
            return (0, length)
        start = min(max(start, 0), len(self.starts) - 1)
        last = min(max(end - 1, start), len(self.ends) - 1)
        return (self.starts[start], max(self.ends[last], self.starts[start] + 1))


class _Writer:
    """Builds the rewritten text unit by unit; a unit is the rewriting of a run of original characters."""

    def __init__(self) -> None:
        self.units: List[Tuple[str, int, int]] = []

    def add(self, text: str, start: int, end: int) -> None:
        self.units.append((text, start, end))

    def wrap_last(self, mark: str, end: int) -> None:
        """A combining mark after a character: `x̃` -> `\\tilde{x}`."""
        if not self.units:
            return
        text, start, _ = self.units.pop()
        self.add(f"\\{mark}{{{text}}}", start, end)

    def result(self) -> Translation:
        text, starts, ends = [], [], []
        for piece, start, end in self.units:
            text.append(piece)
            starts.extend([start] * len(piece))
            ends.extend([end] * len(piece))
        return Translation("".join(text), starts, ends)


def _script(text: str, i: int, out: _Writer) -> int:
    """A run of sub- or superscript characters (`ₜ₋₁`) as one braced script (`_{t-1}`); returns where it ends."""
    table, caret = (_FROM_SUB, "_") if text[i] in _FROM_SUB else (_FROM_SUPER, "^")
    j = i
    while j < len(text) and text[j] in table:
        j += 1
    out.add(caret + "{" + "".join(table[ch] for ch in text[i:j]) + "}", i, j)
    return j


_OPENERS = {"(": ")", "[": "]", "{": "}"}


def _partial_ends(text: str, i: int) -> Optional[Tuple[int, int]]:
    """For `∂A/∂B` starting at `i`: where `/∂` is and where B ends (at bracket depth 0), or None."""
    depth, k = 0, i + 1
    while k < len(text) - 1:
        c = text[k]
        depth += c in "([{"
        depth -= c in ")]}"
        if depth < 0:
            return None
        if depth == 0 and c == "/" and text[k + 1] == "∂":
            break
        k += 1
    else:
        return None
    depth, e = 0, k + 2
    while e < len(text):
        c = text[e]
        if depth == 0 and (c.isspace() or c in ",|)]}/+-⋅*‖;=<>~"):
            break
        depth += c in "([{"
        depth -= c in ")]}"
        e += 1
    return k, e


def translate(text: str) -> Optional[Translation]:
    """`text` with its Unicode spellings rewritten, or None when it has none (plain ASCII or LaTeX)."""
    if text.isascii():
        return None
    symbols, marks = _symbols(), _marks()
    families = {row.unicode for row in spellings.FAMILIES.values() if row.unicode and not row.unicode.isascii()}
    out = _Writer()
    closers: List[str] = []  # what each open bracket closes with (`⏟[..]` closes with `}`, `𝒰{..}` with `\}`)
    inserts: Dict[int, str] = {}  # text written before position i (the `}` that ends `∂A/∂B`'s denominator)
    middles: set = set()  # positions of the `/∂` of a `∂A/∂B`
    i = 0
    while i < len(text):
        c = text[i]
        if i in inserts:
            out.add(inserts.pop(i), i, i + 1)
        if i in middles:
            out.add("}{\\partial ", i, i + 2)
            i += 2
            continue
        ends = _partial_ends(text, i) if c == "∂" else None
        if ends:
            out.add("\\frac{\\partial ", i, i + 1)
            middles.add(ends[0])
            inserts[ends[1]] = inserts.get(ends[1], "") + "}"
            i += 1
            continue
        if c in families and text[i + 1:i + 2] == "{":
            out.add(symbols.get(c, c) + "\\{", i, i + 2)
            closers.append("\\}")
            i += 2
            continue
        if c in marks:
            out.wrap_last(marks[c], i + 1)
        elif c in _FROM_SUB or c in _FROM_SUPER:
            i = _script(text, i, out)
            continue
        elif c == _UNDERBRACE and text[i + 1:i + 2] == "[":
            out.add("\\underbrace{", i, i + 2)
            closers.append("}")
            i += 2
            continue
        elif c in "([{":
            out.add(c, i, i + 1)
            closers.append(_OPENERS[c])
        elif c in ")]}":
            out.add(closers.pop() if closers else c, i, i + 1)
        elif c in symbols:
            word = symbols[c]
            after = text[i + 1:i + 2]
            if word.startswith("\\") and word[-1].isalpha() and after.isalnum() and after not in _FROM_SUB \
                    and after not in _FROM_SUPER:
                word += " "  # `\theta x`, `\Vert H`, not `\thetax`
            out.add(word, i, i + 1)
        else:
            out.add(c, i, i + 1)
        i += 1
    if len(text) in inserts:
        out.add(inserts.pop(len(text)), len(text) - 1, len(text))
    return out.result()
