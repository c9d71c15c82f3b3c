"""The grammar text with its keyword terminals generated from the spelling tables (formula/lang/spellings.py).

`grammar.lark` holds `@FUNCTIONS@`, `@DECORATIONS@` and `@RELATIONS@` where the alternatives of `FUNC`,
`DECOR` and `REL` go; `grammar_text()` fills them in, so a new spelling is one table row.
"""

from __future__ import annotations

import importlib.resources
import re
from typing import Iterable

from . import spellings

__all__ = ["grammar_text", "functions_regex", "decorations_regex", "relations_regex", "greek_call_regex",
           "decorated_call_regex"]

#: sizing commands allowed between `\sigma` and its `(`
_SIZING = r"\\(?:left|bigl|Bigl|biggl|Biggl|big|Big|bigg|Bigg)(?![A-Za-z])\s*"
_WRAPPERS = r"\\(?:operatorname|mathrm|text|textrm)\s*\{\s*"


def _alternation(words: Iterable[str]) -> str:
    """`(?:a|b)` of the escaped words, longest first (Python's `re` takes the first alternative that matches)."""
    unique = sorted(set(words), key=lambda w: (-len(w), w))
    return "(?:" + "|".join(re.escape(w) for w in unique) + ")"


def functions_regex() -> str:
    """`\\log`, `\\sigma(` (only before a bracket), `log`, `\\operatorname{softplus}` ... from FUNCTIONS."""
    rows = list(spellings.FUNCTIONS.values())
    commands = [c for r in rows for c in r.commands]
    call_commands = [c for r in rows for c in r.call_commands]
    words = [w for r in rows for w in r.words]
    parts = []
    if commands:
        parts.append(r"\\" + _alternation(commands) + r"(?![A-Za-z])")
    if call_commands:
        parts.append(r"(?<![_^])\\" + _alternation(call_commands) + r"(?=\s*(?:" + _SIZING + r")?\()")
    if words:
        parts.append(_alternation(words) + r"(?![A-Za-z0-9])")
        parts.append(_WRAPPERS + _alternation(words) + r"\s*\}")
    return "|".join(parts)


def decorations_regex() -> str:
    """`\\tilde`, `\\widehat`, `\\overline` ... from DECORATIONS."""
    return r"\\" + _alternation(c for r in spellings.DECORATIONS.values() for c in r.commands) + r"(?![A-Za-z])"


def relations_regex() -> str:
    """`=`, `:=`, `\\geq`, `≥` ... from RELATIONS; a command may not run on into a longer name (`\\in` is not
    `\\infty`)."""
    written = [s for r in spellings.RELATIONS.values() for s in r.spellings()]
    commands = [s[1:] for s in written if s.startswith("\\")]
    symbols = [s for s in written if not s.startswith("\\") and not s.isalpha()]
    words = [s for s in written if s.isalpha()]  # `propto`: a word, not the start of a longer name
    out = r"\\" + _alternation(commands) + r"(?![A-Za-z])|" + _alternation(symbols)
    return out + (r"|(?<![A-Za-z0-9\\])" + _alternation(words) + r"(?![A-Za-z0-9])" if words else "")


_SUB = r"(?:_(?:\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}|\\[A-Za-z]+|[A-Za-z0-9]+))?"
#: a superscript that is part of a called name: a star `f^*(t)` (a convex conjugate, an optimum `\\pi^*(a|s)`)
_STAR = r"\^\s*(?:\*|\\ast(?![A-Za-z])|\\star(?![A-Za-z])|\{\s*(?:\*|\\ast|\\star)\s*\})"
#: or a capital letter label `\\widetilde{\\mathcal{L}}^{A}(..)` (not T, a transpose)
_LABEL = r"\^\s*(?:[A-SU-Z]|\{\s*[A-SU-Z]\s*\})"
#: a Greek name's letter label, only right before its subscript: `\\eta^q_\\phi(h)` (`\\gamma^t(r)` stays a power)
_GREEK_LABEL = r"\^\s*(?:[A-SU-Za-z]|\{\s*[A-Za-z]+\s*\})(?=\s*_)"
#: the per-example superscript `^{(i)}` of a called name, `\\mathcal{L}^{(i)}(x)` (dropped, as on a variable)
_EXAMPLE = r"\^\s*\{\s*\(\s*[in]\s*\)\s*\}"
_SUBSCRIPT_THEN_CALL = r"(?=" + _SUB + "(?:" + _STAR + "|" + _GREEK_LABEL + "|" + _EXAMPLE + ")?" + _SUB + r"\()"


def greek_call_regex() -> str:
    """A Greek letter (command or ASCII word) directly followed by `(`, after an optional subscript, and not
    itself a subscript (`q_\\phi(z)` is q's): except `sigma`, whose call is the logistic function."""
    names = sorted(spellings.GREEK_LETTERS - {"sigma", "varsigma"})
    words = [w for w in names if w.islower() and not w.startswith("var")]
    bold = r"\\(?:mathbf|boldsymbol|bm|vec)\s*\{\s*\\" + _alternation(names) + r"\s*\}"
    return (r"(?<![_^\\A-Za-z])(?:" + bold + r"|\\" + _alternation(names) + "|" + _alternation(words)
            + r")(?![A-Za-z0-9])" + _SUBSCRIPT_THEN_CALL)


_CALL_AFTER = r"(?=" + _SUB + "(?:" + _STAR + "|" + _LABEL + "|" + _EXAMPLE + ")?" + _SUB + r"\s*(?:" + _SIZING + r")?\()"


def decorated_call_regex() -> str:
    """A decorated name right before `(` or `[` (after an optional subscript): `\\bar q(z)`, `\\tilde{p}_l(x, y)`,
    `\\hat{\\pi}(a|s)`; the decoration makes it a name of its own (`Dist.mark`)."""
    greek = r"\\" + _alternation(spellings.GREEK_LETTERS) + r"(?![A-Za-z])"
    wrapped = r"\\(?:mathcal|mathbf|boldsymbol|bm|mathrm)\s*\{\s*(?:[A-Za-z][A-Za-z0-9]*|" + greek + r")\s*\}"
    name = r"(?:[A-Za-z][A-Za-z0-9]*|" + greek + "|" + wrapped + ")"
    return decorations_regex() + r"(?:\s*\{\s*" + name + r"\s*\}|\s+[A-Za-z][A-Za-z0-9]*|\s*" + greek + ")" + _CALL_AFTER


def _lark_literal(regex: str) -> str:
    return regex.replace("/", "\\/")


def grammar_text() -> str:
    """The grammar shipped in the package with the generated terminals filled in."""
    text = importlib.resources.files("formula.lang").joinpath("grammar.lark").read_text(encoding="utf-8")
    for marker, build in (("@FUNCTIONS@", functions_regex), ("@DECORATIONS@", decorations_regex),
                          ("@RELATIONS@", relations_regex), ("@GREEK_CALL@", greek_call_regex),
                          ("@DECOR_CALL@", decorated_call_regex)):
        text = text.replace(marker, _lark_literal(build()))
    return text
