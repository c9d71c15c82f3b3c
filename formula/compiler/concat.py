"""`[a, b]` evaluated: `torch.cat` along the last dimension, the items' leading dimensions broadcast first."""

from __future__ import annotations

import torch

from ..check.concat import Concatenation
from ..errors import FormulaInputError
from ..text.printing import to_ascii as var_text
from .refs import span_of
from .registry import builds


@builds(Concatenation)
def build_concat(node: Concatenation, b):
    items = [b.build(item) for item in node.items]
    texts = [var_text(item) for item in node.src.items]
    text, span = b.text, span_of(node.src)

    def concat(ctx):
        values = [f(ctx) for f in items]
        for name, v in zip(texts, values):
            if not torch.is_tensor(v) or v.dim() < 2:  # [batch, features] at least
                shape = list(v.shape) if torch.is_tensor(v) else type(v).__name__
                raise FormulaInputError(f"[..] joins vectors along their last dimension, but {name} is {shape}: "
                                        "each item needs a feature dimension, [batch, features]", text, span)
        try:
            lead = torch.broadcast_shapes(*[v.shape[:-1] for v in values])
        except RuntimeError:
            shapes = ", ".join(f"{n} {list(v.shape)}" for n, v in zip(texts, values))
            raise FormulaInputError(f"[..] cannot join {shapes}: all but the last dimension must broadcast", text,
                                    span) from None
        return torch.cat([v.expand(*lead, v.shape[-1]) for v in values], dim=-1)

    return concat
