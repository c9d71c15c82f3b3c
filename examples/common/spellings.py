"""The check every example makes of the formula it prints: the paper's LaTeX and the ASCII are the same formula."""

from __future__ import annotations

from typing import Tuple


def check_spellings(*pairs: Tuple[str, str]) -> None:
    """Exit with both texts unless each (LaTeX, ASCII) pair parses to the same formula (`fm.equivalent`)."""
    import formula as fm

    for latex, ascii_ in pairs:
        if not fm.equivalent(latex, ascii_):
            raise SystemExit(f"not equivalent:\n  {latex}\n  {ascii_}")
