"""The plan as data: a tree of typed step records that `explain()` renders and tests inspect.

Builders record steps through `BuildContext.step(...)`; each record says one decision the compiler made (what is
drawn and how, which KL is closed-form, where log-sum-exp is used, which sums loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional


@dataclass
class Step:
    """A plan step; `children` are the steps made while building inside it."""

    children: List["Step"] = field(default_factory=list, init=False)

    def line(self) -> str:
        raise NotImplementedError

    def walk(self) -> Iterator["Step"]:
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class TermStep(Step):
    sign: float
    name: str

    def line(self):
        return f"term {'+' if self.sign > 0 else '-'} {self.name}"


@dataclass
class ExpectationStep(Step):
    over: str

    def line(self):
        return f"expectation {self.over}"


@dataclass
class DrawStep(Step):
    var: str
    signature: str
    family: str
    estimator: str
    set_size: Optional[str] = None

    def line(self):
        count = f", {self.set_size} draws along a new leading dimension" if self.set_size else ""
        return f"draw {self.var} ~ {self.signature} [{self.family}, {self.estimator}{count}]"


@dataclass
class DataStep(Step):
    var: str
    signature: str

    def line(self):
        return f"{self.var}: the data batch ({self.signature})"


@dataclass
class ClosedFormStep(Step):
    what: str  # "KL(q(z|x) || p(z))", "H[q(y|x)]"
    families: str  # "Normal || Normal"

    def line(self):
        return f"{self.what}: closed form [{self.families}]"


@dataclass
class MonteCarloStep(Step):
    what: str
    how: str  # "one draw from q(z|x) (analytic_kl=False; reparameterised)"

    def line(self):
        return f"{self.what}: Monte Carlo, {self.how}"


@dataclass
class LogSumExpStep(Step):
    index: str
    over: str

    def line(self):
        return f"sum over {self.index}: along the draws of {self.over} (log-sum-exp)"


@dataclass
class LoopLogSumExpStep(Step):
    index: str
    lower: str
    upper: str

    def line(self):
        return f"sum over {self.index} = {self.lower}..{self.upper} in log space (log-sum-exp of each step's log-value)"


@dataclass
class VectorSumStep(Step):
    index: str
    over: str

    def line(self):
        return f"sum over {self.index}: along the draws of {self.over}"


@dataclass
class LoopStep(Step):
    index: str
    lower: str
    upper: str

    def line(self):
        return (f"sum over {self.index} = {self.lower}..{self.upper}, step by step (draws at each step condition on "
                "the previous steps)")


@dataclass
class RepeatStep(LoopStep):
    """A sum whose body does not use its index: one evaluation times the number of steps."""

    def line(self):
        return (f"sum over {self.index} = {self.lower}..{self.upper}: the body does not use {self.index}, "
                f"evaluated once and multiplied by the number of terms")


@dataclass
class EnumerationStep(Step):
    index: str
    signature: str
    log_space: bool = False

    def line(self):
        return f"sum over the values of {self.index} (enumerating {self.signature})" + (
            " (log-sum-exp)" if self.log_space else "")


@dataclass
class Note(Step):
    """A step a registered builder describes in its own words."""

    text: str

    def line(self):
        return self.text


def render(steps: List[Step], depth: int = 0) -> List[str]:
    """The indented lines of `explain()`."""
    lines = []
    for s in steps:
        lines.append("  " * depth + s.line())
        lines.extend(render(s.children, depth + 1))
    return lines


__all__ = ["Step", "TermStep", "ExpectationStep", "DrawStep", "LoopLogSumExpStep", "DataStep", "ClosedFormStep", "MonteCarloStep",
           "LogSumExpStep", "VectorSumStep", "LoopStep", "RepeatStep", "EnumerationStep", "Note", "render"]
