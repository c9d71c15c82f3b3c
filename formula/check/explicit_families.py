"""What the checker knows of each explicit family written in a formula (`\\mathcal{N}(0, I)`, `\\mathcal{U}[0, 1]`):
its parameters as papers write them, which may be left out, and how to write it (for messages).

Torch-free; the compiler registers how each family becomes a torch distribution (`formula.compiler.
explicit_families.register_family`), which fills this table too, so a new family is one registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ..lang import nodes as N
from .divergences import Needs, register_spec


@dataclass(frozen=True)
class FamilySpec:
    """An explicit family by canonical name (`Family.family`): its parameters in written order, how many trailing
    ones may be left out (`\\mathcal{N}(\\mu)` has variance 1), and an example of how to write it."""

    name: str
    params: Tuple[str, ...]
    optional: int = 0
    usage: str = ""

    def arity_ok(self, n: int) -> bool:
        return len(self.params) - self.optional <= n <= len(self.params)

    def arity_text(self) -> str:
        need = len(self.params) - self.optional
        count = str(need) if not self.optional else f"{need} to {len(self.params)}"
        return f"{self.name} takes {count} parameter(s) ({', '.join(self.params)}): {self.usage}"


_SPECS: Dict[str, FamilySpec] = {}


def register_family_spec(spec: FamilySpec) -> FamilySpec:
    """Make an explicit family known to the checker (the compiler's `register_family` calls this)."""
    _SPECS[spec.name] = spec
    return spec


def family_spec(name: str) -> Optional[FamilySpec]:
    return _SPECS.get(name)


def known_families() -> str:
    return ", ".join(sorted(_SPECS)) or "none"


for _spec in (
    FamilySpec("Normal", ("mean", "variance"), 1, r"\mathcal{N}(x \mid \mu, \sigma^2 I)"),
    FamilySpec("Laplace", ("location", "scale"), 1, r"\mathrm{Laplace}(x \mid \mu, b)"),
    FamilySpec("Bernoulli", ("probability",), 0, r"\mathrm{Bern}(x \mid \lambda)"),
    FamilySpec("Categorical", ("probabilities",), 0, r"\mathrm{Cat}(y \mid \pi)"),
    FamilySpec("Beta", ("alpha", "beta"), 0, r"\mathrm{Beta}(x \mid a, b)"),
    FamilySpec("Uniform", ("low", "high"), 0, r"\mathcal{U}[0, 1]"),
    FamilySpec("UniformDiscrete", ("low", "high"), 0, r"\mathcal{U}\{1, \ldots, T\}"),
    FamilySpec("Gamma", ("shape", "rate"), 0, r"\mathrm{Gamma}(x \mid \alpha, \beta)"),
    FamilySpec("Exponential", ("rate",), 0, r"\mathrm{Exp}(x \mid \lambda)"),
    FamilySpec("Poisson", ("rate",), 0, r"\mathrm{Pois}(k \mid \lambda)"),
    FamilySpec("Dirichlet", ("concentration",), 0, r"\mathrm{Dir}(\pi \mid \alpha)"),
):
    register_family_spec(_spec)



def _scales(term: N.Expr, var: N.Var) -> bool:
    """Whether `term` is `var` times something (`\\sqrt{1 - \\bar\\alpha_t} \\epsilon`, `\\sigma \\epsilon`, `-\\epsilon`)."""
    while isinstance(term, N.Neg):
        term = term.arg
    if term == var:
        return True
    if isinstance(term, N.Mul):
        return any(_scales(f, var) for f in term.factors)
    return isinstance(term, N.Div) and _scales(term.num, var)


def shape_partner(body: N.Expr, var: N.Var, available: Callable[[N.Expr], bool]) -> Optional[N.Expr]:
    """The first expression that `var` (or a multiple of it) is added to or subtracted from in `body`, free of
    `var` and evaluable before `var` is drawn (`available`): a draw of `var` takes its shape. None if there is none."""
    for node in body.walk():
        if not isinstance(node, N.Add):
            continue
        terms = [t.arg if isinstance(t, N.Neg) else t for t in node.terms]
        if not any(_scales(t, var) for t in terms):
            continue
        for t in terms:
            if var not in list(t.walk()) and available(t) and any(isinstance(n, (N.Var, N.Dist)) for n in t.walk()):
                return t
    return None


def has_references(fam: N.Family) -> bool:
    """Whether a family's parameters name anything but numbers and the identity `I` (their value may give a shape)."""
    return any(isinstance(n, (N.Var, N.Dist)) and n != N.Var("I") for a in fam.args for n in a.walk())


def unknown_shape_message(var: str, fam: str) -> str:
    """Why a draw from a parameter-free vector family has no shape, and the three ways to give it one."""
    return (f"the shape of {var} ~ {fam} cannot be known: its parameters are constants and it is not added to a "
            f"value of known shape; add it to one (mu(x) + sigma(x) {var}), give a parameter that shape "
            f"(\\mathcal{{N}}(\\mu(x), I)), or declare it with a shape (fm.Normal(\"p({var})\", loc=0.0, scale=1.0, "
            f"shape=(D,))) and write E_{{p({var})}}[...]")


__all__ = ["FamilySpec", "register_family_spec", "family_spec", "known_families", "shape_partner", "has_references",
           "unknown_shape_message"]

# KL(p || q): either side may be an explicit family (`KL(\mathcal{N}(\mu, \sigma^2 I) || p(z))`); the compiler's
# `formula.compiler.explicit_families` registers the estimator under the same spec.
register_spec("KL", Needs.DENSITY | Needs.SAMPLES | Needs.FAMILY, Needs.DENSITY | Needs.FAMILY)
