"""The errors a user sees: every mistake in a formula, a declaration or a call is a `FormulaError`.

Each error carries the formula text and the span it points at, and renders as the message, the quoted line
and a caret under the span (docs/language.md §6).
"""

from __future__ import annotations

from typing import Optional, Tuple


class FormulaError(ValueError):
    """A formula, declaration or call that `formula` cannot accept; `.text` and `.span` say where."""

    def __init__(self, message: str, text: Optional[str] = None, span: Optional[Tuple[int, int]] = None):
        self.message = message
        self.text = text
        if span is not None and not isinstance(span, tuple):  # accept nodes.Span
            span = (span.start, span.end)
        self.span = span
        super().__init__(self._render())

    def _render(self) -> str:
        if self.text is None or self.span is None:
            return self.message
        return f"{self.message}\n{caret(self.text, self.span)}"


class FormulaSyntaxError(FormulaError):
    """The text does not parse."""


class FormulaCheckError(FormulaError):
    """The text parses but does not fit the declared distributions and functions."""


class FormulaInputError(FormulaError):
    """A call of a compiled objective lacks an input or passes one of the wrong shape."""


_CONTEXT = 70  # characters of a long line shown either side of the caret


def caret(text: str, span: Tuple[int, int]) -> str:
    """The line of `text` holding `span`, indented, with `^` under the span (at least one caret)."""
    start, end = span
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    if line_end == -1:
        line_end = len(text)
    end = min(end, line_end) if end > start else end
    # Keep very long lines readable: show a window around the span.
    lo = max(line_start, start - _CONTEXT)
    hi = min(line_end, max(end, start + 1) + _CONTEXT)
    prefix = "..." if lo > line_start else ""
    suffix = "..." if hi < line_end else ""
    line = prefix + text[lo:hi] + suffix
    width = max(1, end - start)
    pad = len(prefix) + (start - lo)
    return f"  {line}\n  {' ' * pad}{'^' * width}"


__all__ = ["FormulaError", "FormulaSyntaxError", "FormulaCheckError", "FormulaInputError", "caret"]
