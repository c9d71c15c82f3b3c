"""`[a, b]`: values joined along their last dimension, as DRAW writes an RNN's input `[r_t, h^{dec}_{t-1}]`.

Checked here (torch-free) into a `Concatenation` of its checked items; `formula.compiler.concat` evaluates it with
`torch.cat` after broadcasting the items' leading dimensions (a draw's `[K, batch, ...]` meets an input's
`[batch, ...]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from ..lang import nodes as N
from . import resolved as R
from .checker import register_check


@dataclass(frozen=True, eq=False)
class Concatenation(R.Checked_):
    """`[a, b, ...]`: the checked items, joined along the last dimension."""

    items: Tuple[object, ...]


@register_check(N.Concat)
def check_concat(node: N.Concat, checker, scope) -> Concatenation:
    """Each item is a value a network is given: a variable is data (`[batch, features]`), as a call's argument."""
    return Concatenation(node, tuple(checker.ref(item, scope) for item in node.items))
