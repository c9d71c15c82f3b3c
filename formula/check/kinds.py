"""What a declaration is, as the checker sees it: a distribution, the data's empirical distribution, or a function.

Torch-free, so the checker and `formula check` can use it; `formula.families` declarations carry one as `kind`.
"""

from __future__ import annotations

import enum


class DeclKind(enum.Enum):
    """The kind of a declared name: what a use of it in a formula may mean."""

    DISTRIBUTION = "dist"  # has a density and/or can be sampled: q(z|x), p(x|z), p(z)
    DATA = "data"  # the empirical distribution of the batch: can be drawn from (the batch), has no density
    FUNCTION = "function"  # a network called on values: D(x), G(z), mu(x)

    @classmethod
    def of(cls, value: "DeclKind | str") -> "DeclKind":
        """Accept the enum or its value ("dist", "data", "function"), as the command line spells it."""
        return value if isinstance(value, cls) else cls(value)


__all__ = ["DeclKind"]
