"""`fm.Initial("h_0", size=(H,))`: the first value of a recurrent state (`h_t = f(h_{t-1}, x_t, z_t)` written as a
definition line, docs/language.md "Recurrent states"): zeros `[batch, *size]` with the inputs' device and dtype, or
with `learn=True` a learned vector (an nn.Parameter, zeros at the start) expanded to the batch.

The name is the state's variable at its first step as the formula writes it: `"h_0"`, `"h^{dec}_0"`, `"c_0"`. A
first value computed from the inputs is a definition line instead (`h_0 = g(x)`, g a declared fm.Function).

    >>> import torch
    >>> h0 = Initial("h_0", size=(3,))
    >>> h0(2, torch.ones(1, dtype=torch.float64)).shape, h0(2, torch.ones(1, dtype=torch.float64)).dtype
    (torch.Size([2, 3]), torch.float64)
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..check.kinds import DeclKind
from ..check.recurrent import INITIAL
from ..errors import FormulaCheckError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from .protocol import Capabilities, Declaration

__all__ = ["Initial"]

_CAPABILITIES = Capabilities(reparameterised=False, discrete=False, enumerable=False, has_density=False,
                             can_sample=False, family=None, label="Initial")


def _variable(name: str) -> N.Var:
    from ..lang.parser import parse

    try:
        node = parse(name).statements[-1] if isinstance(name, str) else None
    except Exception:  # noqa: BLE001  (any syntax error of the name is the same mistake)
        node = None
    if not (isinstance(node, N.Var) and len(node.index) == 1 and isinstance(node.index[0], N.Num)
            and node.index[0].value == int(node.index[0].value)):
        raise FormulaCheckError(f"Initial {name!r}: the name is the state at its first step, as the formula writes "
                                "it (\"h_0\", \"h^{dec}_0\", \"c_0\")", str(name), (0, len(str(name))))
    return node


class Initial(Declaration):
    """The first value of a state: zeros of `size` per example, or (`learn=True`) a learned vector of that size."""

    kind = DeclKind.FUNCTION

    def __init__(self, name: str, size: Union[int, Sequence[int]], learn: bool = False):
        nn.Module.__init__(self)
        var = _variable(name)
        size = (size,) if isinstance(size, int) else tuple(size)
        if not size or not all(isinstance(s, int) and s > 0 for s in size):
            raise FormulaCheckError(f"Initial {name!r}: size must be positive integers, e.g. size=(16,); got "
                                    f"{size!r}", name, (0, len(name)))
        self.variable, self.size, self.learn = var, size, bool(learn)
        self.parsed = N.Dist(INITIAL, (var,))  # the checker knows a first value by this name (formula.check.recurrent)
        self.signature_text = self.signature = var_text(var)
        self.name = INITIAL
        self.var_names, self.given_names = (var_text(var),), ()
        self.value = nn.Parameter(torch.zeros(size)) if self.learn else None

    @property
    def capabilities(self) -> Capabilities:
        """Looked up, never sampled or scored."""
        return _CAPABILITIES

    def forward(self, n: int, like: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The first value for `n` examples, `[n, *size]`: zeros shaped and placed like `like` (an input), or the
        learned vector expanded to the examples."""
        if self.learn:
            value = self.value if like is None or not like.is_floating_point() else self.value.to(like.dtype)
            return value.expand(n, *self.size)
        if like is None:
            return torch.zeros(n, *self.size)
        dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
        return torch.zeros(n, *self.size, dtype=dtype, device=like.device)

    def condition(self, *given_values, validate: bool = False):
        raise FormulaCheckError(f"Initial {self.signature_text}: a first value has no distribution; the formula "
                                f"reads it as {self.signature_text}", self.signature_text, self._whole())

    def extra_repr(self) -> str:
        return f"{self.signature_text}, size={self.size}" + (", learned" if self.learn else ", zeros")
