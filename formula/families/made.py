"""`MADE`: a masked autoencoder (Germain et al. 2015) returning every conditional of `p(x_i | x_{<i})` at once.

The masks give hidden unit k a degree m(k) in 1..D-1 and let it see inputs 1..m(k); output i sees hidden units of
degree < i, so the parameters of dimension i depend on x_{<i} only (the natural order). Context features (the
conditions of `p(x|z)`) feed every first-layer hidden unit. The output is the parameter dict of a family, the
same as any declared network returns: `{"logits": [..., D]}` (Bernoulli), `{"logits": [..., D, C]}`
(Categorical, the inputs one-hot encoded), `{"loc", "scale": [..., D]}` (Normal).

    >>> import torch, formula as fm
    >>> made = fm.MADE(4, hidden=(16,))
    >>> made(torch.zeros(2, 4))["logits"].shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import FormulaCheckError
from .declarations import Bernoulli, Categorical, Normal

__all__ = ["MADE", "MaskedLinear"]

# per family: the parameters each dimension gets (and which of them must be positive)
_OUTPUTS = {Bernoulli: (("logits",), ()), Categorical: (("logits",), ()), Normal: (("loc", "scale"), ("scale",))}


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (a buffer: it moves and saves with it)."""

    def __init__(self, mask: torch.Tensor, bias: bool = True):
        super().__init__(mask.shape[1], mask.shape[0], bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _degrees(hidden: int, features: int) -> torch.Tensor:
    """Hidden units' degrees, 1..D-1 in turn (deterministic, every degree used when hidden >= D - 1)."""
    return torch.arange(hidden) % max(1, features - 1) + 1


class MADE(nn.Module):
    """A MADE over `features` dimensions for `family` (fm.Bernoulli, fm.Categorical with `classes=`, fm.Normal).

    `hidden` are the hidden layer sizes, `context` the number of conditioning features, passed as a second
    argument (`made(x, z)`) and concatenated when several are given.
    """

    def __init__(self, features: int, hidden: Sequence[int] = (64,), *, family: type = Bernoulli,
                 classes: int = 0, context: int = 0, activation: type = nn.ReLU):
        super().__init__()
        if family not in _OUTPUTS:
            raise FormulaCheckError(f"MADE: family must be one of {', '.join(f.__name__ for f in _OUTPUTS)}, "
                             f"got {getattr(family, '__name__', family)!r}")
        if (family is Categorical) != (classes > 0):
            raise FormulaCheckError("MADE: classes= (the number of labels, > 1) goes with family=fm.Categorical only")
        if features < 1 or not hidden:
            raise FormulaCheckError("MADE: needs features >= 1 and at least one hidden layer")
        self.features, self.classes, self.context, self.family = features, classes, context, family
        self.names, self.positive = _OUTPUTS[family]
        self.per_dim = classes if classes else len(self.names)
        width = classes or 1  # input units per dimension
        in_degree = torch.arange(1, features + 1).repeat_interleave(width)
        layers, previous = [], in_degree
        for i, size in enumerate(hidden):
            degree = _degrees(size, features)
            mask = (degree[:, None] >= previous[None, :]).float()
            if i == 0 and context:
                mask = torch.cat([mask, torch.ones(size, context)], 1)  # the context reaches every unit
            layers.append(MaskedLinear(mask))
            previous = degree
        out_degree = torch.arange(1, features + 1).repeat_interleave(self.per_dim)
        self.hidden = nn.ModuleList(layers)
        self.out = MaskedLinear((out_degree[:, None] > previous[None, :]).float())
        self.activation = activation()

    def forward(self, x: torch.Tensor, *context: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The family's parameters for every dimension, each from x_{<i} (and the context) only."""
        h = F.one_hot(x.long(), self.classes).to(self.out.weight.dtype).flatten(-2) if self.classes else x
        if self.context:
            ctx = torch.cat(context, -1) if len(context) > 1 else context[0]
            h = torch.cat([h, ctx.expand(*h.shape[:-1], ctx.shape[-1])], -1)
        for layer in self.hidden:
            h = self.activation(layer(h))
        out = self.out(h).reshape(*h.shape[:-1], self.features, self.per_dim)
        if self.classes:
            return {"logits": out}
        params: Dict[str, Any] = {}
        for j, name in enumerate(self.names):
            value = out[..., j]
            params[name] = F.softplus(value) + 1e-3 if name in self.positive else value
        return params

    def extra_repr(self) -> str:
        return (f"features={self.features}, family={self.family.__name__}"
                + (f", classes={self.classes}" if self.classes else "") + (f", context={self.context}" if self.context
                                                                           else ""))
