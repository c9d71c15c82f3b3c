"""One network per value of a declaration's index: `fm.Normal("q(z_l|x, z_{<l})", net=PerIndex([net1, net2]))`.

The compiler says which level a use is at (the value of the declared variable's index there, `l` in `q(z_l|...)`)
and the call goes to that level's network: each layer of a hierarchy has its own weights, while the formula keeps
one declaration per letter as the paper writes it.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Optional

from torch import nn

from ..errors import FormulaInputError


class PerIndex(nn.Module):
    """Networks for the index values first, first+1, ...; called at the level the compiler selects with `at`."""

    def __init__(self, nets: Iterable[nn.Module], first: int = 1):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.first = int(first)
        self._level: Optional[int] = None

    @contextlib.contextmanager
    def at(self, level: int):
        """Calls inside the block go to the network of index value `level`."""
        saved, self._level = self._level, int(level)
        try:
            yield self
        finally:
            self._level = saved

    def forward(self, *args, **kwargs):
        level = self._level
        if level is None:
            raise FormulaInputError("a PerIndex network was called outside a use at a level: use it as the net= of a "
                                    "declaration whose variable is indexed (q(z_l|...))")
        i = level - self.first
        if not 0 <= i < len(self.nets):
            last = self.first + len(self.nets) - 1
            raise FormulaInputError(f"no network for index value {level}: this PerIndex has networks for "
                                    f"{self.first}..{last} (pass one more network per level)")
        return self.nets[i](*args, **kwargs)


def selecting(decl, level):
    """A context in which `decl`'s PerIndex network (if it has one) runs at `level`; a no-op otherwise."""
    net = getattr(decl, "net", None)
    if isinstance(net, PerIndex) and isinstance(level, int):
        return net.at(level)
    return contextlib.nullcontext()


__all__ = ["PerIndex", "selecting"]
