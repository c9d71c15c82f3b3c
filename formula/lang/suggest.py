""""Did you mean ...?" for names one edit away from a keyword or a declared name (issue 9: `lg`, `Log`, `exp_`).

One edit is one inserted, deleted, replaced or swapped character, or a change of case; an exact match, a name
two edits away, a one-letter name (`K`, `T`) and a Greek letter's name (`beta`, `gamma`: scalars, not typos of
the families Beta and Gamma) get no suggestion.

>>> did_you_mean("lg", ["log", "exp"])
'log'
>>> did_you_mean("beta", ["log", "exp"]) is None
True
"""

from __future__ import annotations

from typing import Iterable, Optional

from .spellings import GREEK_LETTERS, keywords

__all__ = ["did_you_mean", "one_edit_apart", "vocabulary"]


def vocabulary() -> list:
    """The keywords of the spelling tables (function words, divergences, families, E, H, sum ...)."""
    return keywords()


def one_edit_apart(a: str, b: str) -> bool:
    """Whether `a` becomes `b` by one insertion, deletion, replacement, swap of neighbours or change of case."""
    if a == b:
        return False
    if a.lower() == b.lower():
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def did_you_mean(name: str, vocabulary_: Optional[Iterable[str]] = None) -> Optional[str]:
    """The first word of `vocabulary_` (default: the language's keywords) one edit away from `name`, or None.
    A case-only difference wins over other edits (`Log` is log, not Lg)."""
    words = list(vocabulary() if vocabulary_ is None else vocabulary_)
    if name in words or len(name) < 2 or name in GREEK_LETTERS:
        return None
    same_letters = [w for w in words if w != name and w.lower() == name.lower()]
    if same_letters:
        return same_letters[0]
    return next((w for w in words if len(w) > 1 and one_edit_apart(name, w)), None)
