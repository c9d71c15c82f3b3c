"""Node builders by node type, and the build context they work in.

A builder turns one checked node into a closure `fn(ctx) -> value` once per compiled plan:

    @builds(MyNode)
    def build_my_node(node, b: BuildContext) -> Fn: ...

`BuildContext` is the documented surface a builder may use (docs/api.md, "Extending formula"): build a child
(`build`, `build_log`), get a conditioned distribution (`conditioned`), the capabilities of a declaration, the
gradient estimator for a draw, record a plan step (`step`), and raise a check error at a node (`error`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..check import resolved as R
from ..check.checker import Checked
from ..errors import FormulaCheckError
from ..estimators import gradients
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import plan as P
from .context import Fn

Builder = Callable[[object, "BuildContext"], Fn]
_BUILDERS: Dict[type, Builder] = {}
_LOG_BUILDERS: Dict[type, Builder] = {}


def builds(*types: type, log: bool = False):
    """Register a builder for node types (`log=True`: the builder of `log(node)`, kept in log space)."""

    def deco(fn: Builder) -> Builder:
        table = _LOG_BUILDERS if log else _BUILDERS
        for t in types:
            table[t] = fn
        return fn

    return deco


@dataclass(frozen=True)
class Options:
    """Compile options every builder can read."""

    samples: int = 1
    analytic_kl: bool = True
    gradient: Optional[str] = None  # a registered gradient estimator's name, or None for the default choice


class BuildContext:
    """What a builder may use while turning a checked tree into closures (one instance per compiled plan)."""

    def __init__(self, checked: Checked, capabilities: Tuple[object, ...], options: Options):
        self.checked = checked
        self.text = checked.text
        self.options = options
        self._caps = capabilities
        self._steps: List[P.Step] = []
        self._stack: List[P.Step] = []
        self._seen: set = set()

    # -- building children --

    def build(self, node) -> Fn:
        """The closure of a checked node."""
        builder = _BUILDERS.get(type(node))
        if builder is None:
            raise self.error(f"{type(getattr(node, 'src', node)).__name__} parses and prints, but cannot be "
                             "evaluated yet", node)
        return builder(node, self)

    def build_log(self, node) -> Fn:
        """The closure of `log(node)`, computed in log space where the node allows (densities, products, sums)."""
        builder = _LOG_BUILDERS.get(type(node))
        return builder(node, self) if builder is not None else None

    # -- declarations --

    def capabilities(self, decl: int):
        """What declaration `decl` can do: reparameterised, discrete, enumerable, has a density, can be sampled."""
        return self._caps[decl]

    def declaration(self, decl: int):
        """The checker's view of declaration `decl`: its name, signature and kind."""
        return self.checked.decls[decl]

    def signature(self, factor: R.Factor) -> str:
        """A factor as used here, `q(z_t|z_{t-1}, x)`, for messages and the plan."""
        d = self.checked.decls[factor.decl]
        name, _, sub = d.name.partition("_")
        return var_text(N.Dist(name, factor.vars, factor.given, sub or None))

    def conditioned(self, bound: R.Bound) -> Fn:
        """A closure giving declaration `bound.decl` conditioned on its conditions' values, memoised per call: an
        encoder used by an expectation and a KL runs once per distinct value of its conditions."""
        from .memo import conditioned

        return conditioned(bound, self)

    def gradient_estimator(self, decl: int) -> gradients.GradientEstimator:
        """The estimator for draws from declaration `decl`, chosen once here (`gradient=` option first)."""
        return gradients.choose(self.capabilities(decl), self.options.gradient)

    # -- the plan --

    @contextlib.contextmanager
    def step(self, record: P.Step):
        """Record a plan step; steps recorded inside the `with` block are its children."""
        (self._stack[-1].children if self._stack else self._steps).append(record)
        self._stack.append(record)
        try:
            yield record
        finally:
            self._stack.pop()

    def note(self, record: P.Step) -> None:
        """Record a plan step with no children."""
        with self.step(record):
            pass

    def first_time(self, key) -> bool:
        """True the first time `key` is asked about in this plan (for a step to be shown once)."""
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    @property
    def steps(self) -> List[P.Step]:
        return self._steps

    # -- errors --

    def error(self, msg: str, node) -> FormulaCheckError:
        span = getattr(node, "span", None)
        return FormulaCheckError(msg, self.text, (span.start, span.end) if span is not None else None)


__all__ = ["builds", "BuildContext", "Options", "Builder"]
