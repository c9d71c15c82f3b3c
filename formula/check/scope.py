"""What is available at a point of the checker's walk: drawn variables, bound sum indices, sampling sets, loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Optional, Tuple

from ..lang import nodes as N


@dataclass(frozen=True)
class Scope:
    """Immutable: each method returns the scope of a sub-expression."""

    drawn: FrozenSet[N.Var] = frozenset()
    indices: FrozenSet[str] = frozenset()
    sets: Tuple = ()  # ((base name, set var), ...)
    vector: FrozenSet[str] = frozenset()
    loops: Tuple = ()  # ((index name, lower, frozenset of bases drawn per step), ...)

    def __post_init__(self):
        object.__setattr__(self, "sets", dict(self.sets) if not isinstance(self.sets, dict) else self.sets)

    def _with(self, **changes) -> "Scope":
        fields = dict(drawn=self.drawn, indices=self.indices, sets=tuple(self.sets.items()), vector=self.vector,
                      loops=self.loops)
        fields.update(changes)
        return Scope(**fields)

    def drawing(self, vs) -> "Scope":
        return self._with(drawn=self.drawn | set(vs))

    def with_set(self, set_var: N.Var) -> "Scope":
        sets = dict(self.sets)
        sets[set_var.name] = set_var
        return self._with(sets=tuple(sets.items()))

    def vectorising(self, name: str) -> "Scope":
        return self._with(indices=self.indices | {name}, vector=self.vector | {name}, drawn=self._unbinding(name))

    def looping(self, name: str, lower, drawn_here) -> "Scope":
        return self._with(indices=self.indices | {name}, loops=self.loops + ((name, lower, frozenset(drawn_here)),),
                          drawn=self._unbinding(name))

    def _unbinding(self, name: str) -> FrozenSet[N.Var]:
        """A sum that binds `name` again shadows it: a draw indexed by the outer `name` is not visible inside."""
        return frozenset(v for v in self.drawn
                         if not any(isinstance(w, N.Var) and w.name == name for i in v.index for w in i.walk()))

    def loop_of(self, v: N.Var):
        """For `z_t` or `z_{t-c}` inside a loop over t: (t, lower, c, bases drawn per step)."""
        if len(v.index) != 1:
            return None
        shift = shift_of(v.index[0])
        if shift is None:
            return None
        name, c = shift
        for t, lower, drawn_here in self.loops:
            if t == name:
                if v.name in drawn_here and c == 0:
                    return None if v in self.drawn else (t, lower, 0, drawn_here)
                return (t, lower, c, drawn_here)
        return None


def shift_of(item) -> Optional[Tuple[str, int]]:
    """`t` -> ("t", 0); `t-1` -> ("t", 1); anything else -> None."""
    if isinstance(item, N.Var) and not item.index:
        return item.name, 0
    if isinstance(item, N.Add) and len(item.terms) == 2 and isinstance(item.terms[0], N.Var):
        other = item.terms[1]
        if isinstance(other, N.Neg) and isinstance(other.arg, N.Num) and other.arg.value == int(other.arg.value):
            return item.terms[0].name, int(other.arg.value)
    return None


__all__ = ["Scope", "shift_of"]
