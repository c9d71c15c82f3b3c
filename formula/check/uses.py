"""Which declarations a checked expression uses: every density, draw and call in it, by declaration index.

A game's step evaluates only the terms that depend on the stepping player's declarations (`formula.train.games`);
this walk over the checked tree says which those are. Torch-free.
"""

from __future__ import annotations

import dataclasses
from typing import FrozenSet, Set

from ..lang import nodes as N
from . import resolved as R


def declarations_used(expr: object) -> FrozenSet[int]:
    """The indices of the declarations `expr` (a checked node) reads: factors of densities and draws, calls."""
    found: Set[int] = set()
    stack = [expr]
    seen: Set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, R.Factor):
            found.add(node.decl)
            continue
        if isinstance(node, R.Call):
            found.add(node.decl)
        if isinstance(node, tuple):
            stack.extend(node)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in dataclasses.fields(node)
                         if f.name not in ("src", "span") and not _plain_ast(getattr(node, f.name)))
        extra = getattr(node, "uses", None)  # a checked node that reads declarations outside its fields
        if isinstance(extra, (tuple, frozenset)):
            found.update(i for i in extra if isinstance(i, int))
    return frozenset(found)


def children(node: object) -> list:
    """What lies under a checked node in a walk: its fields but the AST it came from (`src`, `span`), or a tuple's
    items; nothing under a leaf."""
    if isinstance(node, (tuple, list)):
        return list(node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [getattr(node, f.name) for f in dataclasses.fields(node) if f.name not in ("src", "span")]
    return []


def _plain_ast(value: object) -> bool:
    """An AST leaf with no checked node below it (names, numbers): nothing to find there."""
    return isinstance(value, (N.Var, N.Num, str, int, float, bool)) or value is None


__all__ = ["declarations_used", "children"]
