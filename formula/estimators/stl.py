"""STL, "sticking the landing" (Roeder, Wu & Duvenaud 2017): the path derivative of the ELBO. Reparameterised
draws, and log q at its own draw with q's parameters stopped: the score term, zero in expectation, is dropped."""

from __future__ import annotations

from .gradients import Reparameterised, register_estimator
from .own_draws import remember, stopped_log_prob


class StickingTheLanding(Reparameterised):
    """Pathwise draws; log q(z|x) at the draw itself has its parameters stopped (gradient through z only)."""

    name = "stl"
    label = "reparameterised, sticking the landing (log q at its own draw: q's parameters stopped)"
    keeps_draws = stops_own_score = True
    uses_log_weights = True  # only to refuse IWAE, where STL is biased (Tucker et al. 2018)

    def keep(self, ctx, key, dist, z, is_set, decl):
        ctx.put(key, z)
        remember(ctx, key, decl, self)
        return None

    def own_log_prob(self, dist, z):
        return stopped_log_prob(dist, z)

    def log_weights(self, ctx, key, log_w, lse, error, power=1.0):
        raise error("gradient='stl' is biased for the log of a mean of importance weights (Tucker et al. 2018); "
                    "use gradient='dreg' for IWAE-style bounds")


STL = register_estimator(StickingTheLanding())

__all__ = ["StickingTheLanding", "STL"]
