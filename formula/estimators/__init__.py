"""How a value and its gradient are estimated: draw shapes, gradient estimators (pathwise, score function), closed
forms. Each estimator is an object chosen once at compile time and named in the plan."""

from .draws import per_example, sample_shape
from .gradients import GradientEstimator, Reparameterised, ScoreFunction, choose, register_estimator, score_surrogate

__all__ = ["GradientEstimator", "Reparameterised", "ScoreFunction", "choose", "register_estimator",
           "score_surrogate", "sample_shape", "per_example"]

from . import dreg, nvil, stl, straight_through, vimco  # noqa: E402,F401  (register the built-in estimators)
