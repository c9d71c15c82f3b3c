"""A declaration's signature (`q(z|x)`) and how its network is called with the conditioning values.

Parsing goes through the formula parser, so a bad signature is a `FormulaCheckError` with a caret. A network is
called by keyword when every argument name is a Python identifier and its `forward` accepts those keywords,
positionally otherwise (docs/api.md, "Declaring distributions").
"""

from __future__ import annotations

import inspect
import keyword
from typing import Any, Callable, Optional, Sequence, Tuple

from torch import nn

from ..errors import FormulaCheckError, FormulaError
from ..lang import nodes
from ..text.printing import to_ascii as var_text

__all__ = ["parse_declaration", "spans", "keywords_for"]


def parse_declaration(signature: Any, kind: str) -> nodes.Dist:
    """Parse a declaration's signature; every mistake is a FormulaCheckError with a caret into it."""
    if not isinstance(signature, str):
        raise FormulaCheckError(f"{kind}: the signature must be a string such as 'q(z|x)', got {signature!r}")
    from ..lang.parser import parse_signature  # lazy: the parser is the heavier import

    try:
        node = parse_signature(signature)  # a Dist over at least one variable, all its arguments variables
    except FormulaError as error:
        span = error.span if error.span is not None else (0, len(signature))
        raise FormulaCheckError(f"{kind}: bad signature {signature!r}: {error.message}", signature, span) from None
    items = node.vars + node.given
    names = [var_text(v) for v in items]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise FormulaCheckError(f"{kind}: variable {name} appears twice in the signature", signature,
                                    items[i].span or (0, len(signature)))
    return node


def spans(items: Sequence[nodes.Node], text: str) -> Tuple[int, int]:
    """The span covering `items`, or the whole text when they carry none."""
    found = [item.span for item in items if item.span is not None]
    if not found:
        return (0, len(text))
    return (min(s.start for s in found), max(s.end for s in found))


def keywords_for(net: Callable, names: Tuple[str, ...], kind: str, signature: str) -> Optional[Tuple[str, ...]]:
    """Keyword names to call `net` with, or None to call it positionally (names are distinct already).

    Keywords when every name is a Python identifier and the net's signature binds them; a net that cannot take
    those keywords but can take the values positionally (`forward(self, inputs)`) is called positionally.
    """
    if not names or not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
        return None
    try:
        sig = inspect.signature(net.forward if isinstance(net, nn.Module) else net)
    except (TypeError, ValueError):
        return names
    try:
        sig.bind(**{n: None for n in names})
        return names
    except TypeError:
        pass
    try:
        sig.bind(*names)
        return None
    except TypeError:
        raise FormulaCheckError(f"{kind} {signature}: its net must take the arguments {', '.join(names)}, but "
                                f"its signature is {sig}", signature, (0, len(signature))) from None
