"""Every extension point of formula in one place (docs/api.md, "Extending formula").

- `register_check(NodeType)` and `builds(CheckedType)`: how a construct is checked and compiled;
  `BuildContext` is what a builder may use.
- `register_divergence(NAME, left=Needs..., right=Needs...)`: a divergence, its argument needs and its estimator.
- `register_estimator(GradientEstimator())`: a gradient estimator chosen with `fm.compile(..., gradient=NAME)`.
- `Declaration`: the protocol of declared distributions and functions (subclass it for a new kind).
- `UpdateRule`: what one training step does (`fm.Trainer(..., update=rule)`).
"""

from .check.checker import register_check
from .check.divergences import Needs
from .compiler.divergences import register_divergence
from .compiler.registry import BuildContext, builds
from .estimators.gradients import GradientEstimator, register_estimator

__all__ = ["register_check", "builds", "BuildContext", "register_divergence", "Needs", "register_estimator",
           "GradientEstimator", "Declaration", "UpdateRule"]


def __getattr__(name):
    # The declaration protocol and the update rules live in later stages; imported on first use.
    if name == "Declaration":
        from .families.protocol import Declaration

        return Declaration
    if name == "UpdateRule":
        from .train.updates import UpdateRule

        return UpdateRule
    raise AttributeError(f"module 'formula.extend' has no attribute {name!r}")
