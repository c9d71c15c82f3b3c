"""The builder of a divergence estimated with a critic (formula.check.critic_divergences): its expectations, under
a plan step that says which estimator it is and which critic it uses."""

from __future__ import annotations

from ..check.critic_divergences import CriticEstimate
from ..text.printing import to_ascii as var_text
from . import plan as P
from .registry import builds


@builds(CriticEstimate)
def build_critic_estimate(node: CriticEstimate, b):
    """The checked expectations of the estimate, recorded as one Monte Carlo step of the plan."""
    how = (f"{node.how}; the critic {node.critic} is trained by its own objective (\\max_{node.critic}), and the "
           "estimate is exact only at its optimum")
    with b.step(P.MonteCarloStep(var_text(node.src), how)):
        return b.build(node.value)


__all__ = ["build_critic_estimate"]
