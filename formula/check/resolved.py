"""The checked tree: the AST with every reference replaced by what the checker decided it is.

A density of declaration i, a call of function j, a draw, an input, a sum index, a sum evaluated in a given way:
each is an explicit node here, so the compiler builds from the tree alone and never re-decides (or re-looks-up) what
the checker decided. Arithmetic nodes of `formula.lang.nodes` stay as they are, with checked children.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..lang import nodes as N


@dataclass(frozen=True)
class Factor:
    """One declared distribution bound to a use: the use's variable(s) and conditions, in the declaration's order."""

    decl: int
    vars: Tuple[N.Expr, ...]
    given: Tuple[N.Expr, ...]


@dataclass(frozen=True)
class Joint:
    """A distribution as a product of bound factors, in sampling order (each factor's conditions are inputs or
    drawn by an earlier factor)."""

    factors: Tuple[Factor, ...]

    @property
    def vars(self) -> Tuple[N.Expr, ...]:
        return tuple(v for f in self.factors for v in f.vars)


@dataclass(frozen=True, eq=False)
class Checked_:
    """Base of checked nodes: `src` is the AST node it came from (for carets and printing)."""

    src: N.Node

    @property
    def span(self):
        return self.src.span


# --- references -------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class InputRef(Checked_):
    """A value the caller supplies by name: data `x`, a scalar `beta`, a concrete step `x_3`."""

    name: str


@dataclass(frozen=True, eq=False)
class DrawnRef(Checked_):
    """A variable drawn by an enclosing expectation (or enumerated by a sum): read from the trace."""

    var: N.Var


@dataclass(frozen=True, eq=False)
class IndexRef(Checked_):
    """The current value of a bound sum index (`t` inside `\\sum_t`)."""

    name: str


@dataclass(frozen=True, eq=False)
class StepRef(Checked_):
    """An indexed variable whose index is known only while evaluating (`z_{t-1}`, `x_t`): a draw of this step if
    there is one, else an input of the concrete name (`z_0`), else a start value drawn from a declaration (`p(z_0)`),
    else the step of a sequence input (`x` of shape [batch, T, ...])."""

    var: N.Var
    sequence: str  # the base name of the sequence input holding the steps
    starts: Tuple[Tuple[str, int], ...] = ()  # concrete name -> declaration drawn at first use


@dataclass(frozen=True, eq=False)
class SliceRef(Checked_):
    """A slice of a sequence input (`x_{1:T}`, `x_{<t}`): today the whole input `name`."""

    name: str


# --- declarations used --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Call(Checked_):
    """A call of declared function `decl` on checked arguments: `D(x)`, `G(z)`, `\\sigma(a)` when declared."""

    decl: int
    args: Tuple[object, ...]


@dataclass(frozen=True, eq=False)
class Bound:
    """A factor with the checked references of its variables (None where integrated over) and conditions."""

    factor: Factor
    values: Tuple[object, ...]
    given: Tuple[object, ...]

    @property
    def decl(self) -> int:
        return self.factor.decl


@dataclass(frozen=True, eq=False)
class Density(Checked_):
    """A joint of declared factors: as a value, its density at the values of its variables (`p(x|z)`); inside a KL
    or an entropy, the distribution integrated over (its variables' references are None there)."""

    factors: Tuple[Bound, ...]

    @property
    def joint(self) -> Joint:
        return Joint(tuple(b.factor for b in self.factors))


@dataclass(frozen=True, eq=False)
class LogDensity(Checked_):
    """`log p(x, z)`: the sum of the log-densities of the joint's factors."""

    density: Density


@dataclass(frozen=True, eq=False)
class ExplicitFamily(Checked_):
    """An explicit family written in the formula (`\\mathcal{N}(x | \\mu, \\sigma^2 I)`): its name, the checked
    variable(s) it is over (empty inside a KL) and its checked parameters (`I` is the identity, as 1)."""

    family: str
    vars: Tuple[object, ...]
    args: Tuple[object, ...]
    identity: bool = False  # `I` was written among its parameters: a vector, shaped like what it meets


@dataclass(frozen=True, eq=False)
class FamilyLogDensity(Checked_):
    """`log \\mathcal{N}(x | \\mu, \\sigma^2 I)`."""

    family: ExplicitFamily


@dataclass(frozen=True, eq=False)
class FamilyEntropy(Checked_):
    """`H[\\mathcal{N}(\\mu, \\sigma^2 I)]`: the entropy of an explicit family."""

    family: ExplicitFamily


# --- expectations, sums, divergences -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Draw:
    """One factor of an expectation's sampling distribution: what is drawn (or, for the data, read from the batch:
    `values` holds the batch input's reference) and, for a sampling set z_1,...,z_K, the checked `set_size` K."""

    bound: Bound
    data: bool = False
    set_size: object = None

    @property
    def var(self) -> N.Var:
        return self.bound.factor.vars[0]


@dataclass(frozen=True, eq=False)
class FamilyDraw:
    """A draw from an explicit family (`\\epsilon \\sim \\mathcal{N}(0, I)`): the variable, the checked family, and
    `like`, the checked expression whose value gives the draw its shape (what it is added to), or None."""

    var: N.Var
    family: ExplicitFamily
    like: object = None
    partner: Optional[N.Expr] = None  # the AST of `like`, for the plan
    data = False
    set_size = None


@dataclass(frozen=True, eq=False)
class Expectation(Checked_):
    """`E_{q}[body]`: draw every factor in order, then evaluate the body."""

    draws: Tuple[Draw, ...]
    body: object


@dataclass(frozen=True, eq=False)
class LoopSum(Checked_):
    """A sum over an integer range evaluated step by step (draws at each step see the previous steps)."""

    index: str
    lower: object
    upper: object  # checked bound; an upper bound that may come from a sequence's length names it in `sequences`
    body: object
    sequences: Tuple[str, ...] = ()
    uses_index: bool = True  # False: every step has the same value (`\sum_{i=1}^{N} f(x^{(i)})`), computed once


@dataclass(frozen=True, eq=False)
class VectorSum(Checked_):
    """A sum over the draws of a sampling set `z_{1:K}`, along the draws' leading dimension."""

    index: str
    set_var: N.Var
    body: object


@dataclass(frozen=True, eq=False)
class SupportSum(Checked_):
    """`\\sum_y f(y)`: enumerate the support of the discrete declaration over y, along a new leading dimension."""

    index: N.Var
    bound: Bound
    body: object


@dataclass(frozen=True, eq=False)
class Divergence(Checked_):
    """`KL(q || p)` and other registered divergences: each side a checked `Density` (a joint, integrated over its
    variables) or an `ExplicitFamily`."""

    kind: str
    left: object
    right: object


@dataclass(frozen=True, eq=False)
class Entropy(Checked_):
    """`H[q]`."""

    density: Density


@dataclass(frozen=True)
class Term:
    """A top-level term of the objective: its (unique) printed name, its sign in the total, its checked expression,
    and the AST it came from."""

    name: str
    sign: float
    expr: object
    src: N.Expr


CHECKED_TYPES = (InputRef, DrawnRef, IndexRef, StepRef, SliceRef, Call, Density, LogDensity, ExplicitFamily,
                 FamilyLogDensity, FamilyEntropy, Expectation, LoopSum, VectorSum, SupportSum, Divergence, Entropy)

__all__ = [t.__name__ for t in CHECKED_TYPES] + ["Factor", "Joint", "Bound", "Draw", "FamilyDraw", "Term", "Checked_"]
