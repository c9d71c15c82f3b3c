"""The base of declarations pooled from member declarations (a product of experts, a mixture).

Each member is a declaration over the pooled one's variable, conditioned on some of its conditions (a prior on
none). A condition given as `None`, or left out of `sample`/`log_prob`, is missing: the members that need it
drop out of the pool.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import FormulaCheckError
from .protocol import Declaration

__all__ = ["Pooled"]


class Pooled(Declaration):
    """A declaration over `members`, each conditioned on a subset of its conditions (see the module docstring)."""

    member_word = "member"  # how messages name a member: "expert", "component"

    def _declaration_error(self, message: str) -> FormulaCheckError:
        return FormulaCheckError(f"{type(self).__name__} {self.signature_text}: {message}", self.signature_text,
                                 self._whole())

    def _set_members(self, members: Any, what: str) -> list:
        """Check `members` (a non-empty list of declarations over our variable) and keep them as `self.members`."""
        parts = list(members) if isinstance(members, (list, tuple)) else None
        if not parts:
            raise self._declaration_error(f"{what}= must be a non-empty list of declarations, got "
                                          f"{type(members).__name__}")
        for part in parts:
            self._check_member(part)
        self.members = nn.ModuleList(parts)
        self._uses = tuple(tuple(self.given_names.index(n) for n in p.given_names) for p in parts)
        return parts

    def _check_member(self, part: Any) -> None:
        word = self.member_word
        if not isinstance(part, Declaration):
            raise self._declaration_error(f"{word} {part!r} is not a declaration (fm.Normal(...), ...)")
        text = part.signature_text
        if part.var_names != self.var_names:
            raise self._declaration_error(f"{word} {text} is over {', '.join(part.var_names)}, but "
                                          f"{self.signature_text} is over {self.var_names[0]}")
        extra = [n for n in part.given_names if n not in self.given_names]
        if extra:
            raise self._declaration_error(f"{word} {text} is conditioned on {', '.join(extra)}, which "
                                          f"{self.signature_text} is not; its conditions must be among "
                                          f"{', '.join(self.given_names) or 'none'}")

    def _present(self, given_values: Sequence[Optional[torch.Tensor]],
                 validate: bool) -> Iterator[Tuple[int, Declaration, Any]]:
        """`(k, member, its conditioned distribution)` for each member whose conditions are all present."""
        self._check_count(given_values)
        found = False
        for k, (part, uses) in enumerate(zip(self.members, self._uses)):
            values = [given_values[i] for i in uses]
            if all(v is not None for v in values):
                found = True
                yield k, part, part.condition(*values, validate=validate)
        if not found:
            raise self._input_error(f"every {self.member_word}'s conditions are missing (None); give at least one "
                                    f"of {', '.join(self.given_names)}, or add an unconditioned {self.member_word} "
                                    "(a prior)")

    def _gather(self, values: Mapping[str, Any], names: Tuple[str, ...], what: str) -> list:
        """As a declaration's, except that a condition left out is missing (None)."""
        present = {**{n: None for n in self.given_names if n not in values}, **values}
        return super()._gather(present, names, what)
