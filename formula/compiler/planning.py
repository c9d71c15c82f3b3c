"""Text + signatures + capabilities + options -> a `Plan`: the checked tree built into one closure per term, and
the plan steps `explain()` renders. Cached: a plan depends on nothing tied to a network."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import FrozenSet, Tuple

from ..check import resolved as R
from ..check.checker import Checked, check
from ..check.kinds import DeclKind
from ..check.resolver import Decl
from ..lang import nodes as N
from ..lang import spellings
from ..text.printing import to_ascii as var_text
from . import concat, densities, divergences, expectations, jacobian, mmd, nabla, recurrent, refs, set_sums, sums, values  # noqa: F401  (register the builders)
from . import teacher_forcing  # noqa: F401  (wraps the step-by-step sum and density builders above)
from . import plan as P
from .context import Fn
from .registry import BuildContext, Options


@dataclass(frozen=True)
class Plan:
    """A checked formula with one closure per top-level term, and the plan steps that explain it."""

    checked: Checked
    terms: Tuple[Tuple[R.Term, Fn], ...]
    steps: Tuple[P.Step, ...]
    header: Tuple[str, ...]
    data_inputs: FrozenSet[str]

    def __hash__(self) -> int:
        return id(self)

    @property
    def explanation(self) -> str:
        return "\n".join(self.header + tuple(P.render(list(self.steps))))


@functools.lru_cache(maxsize=256)
def make_plan(text: str, signatures: Tuple[Tuple[N.Dist, DeclKind], ...], capabilities: tuple,
              options: Options) -> Plan:
    from ..lang.parser import parse

    decls = [Decl(i, sig.full_name, tuple(sig.vars), tuple(sig.given), kind, var_text(sig))
             for i, (sig, kind) in enumerate(signatures)]
    checked = check(text, parse(text), decls)
    b = BuildContext(checked, capabilities, options)
    terms = []
    for term in checked.terms:
        with b.step(P.TermStep(term.sign, term.name)):
            terms.append((term, b.build(term.expr)))
    header = (f"objective: {var_text(checked.objective)}",
              f"inputs: {', '.join(checked.inputs) or 'none'}"
              + (f" (optional: {', '.join(checked.optional_inputs)})" if checked.optional_inputs else ""),
              f"draws per example: {options.samples} (values averaged over draws)")
    if not (checked.data_inputs | checked.sequences):
        header += ("batch: no data input gives one; the number of draws is batch_size= of the call (default 1)",)
    return Plan(checked, tuple(terms), tuple(b.steps), header, checked.data_inputs | checked.sequences)


def _forget_plans() -> None:
    """A change of the spelling tables can change what a text means: compiled plans and checks are dropped."""
    from ..check.checker import check_text

    make_plan.cache_clear()
    check_text.cache_clear()


spellings.on_change(_forget_plans)

__all__ = ["Plan", "make_plan"]
