"""`fm.Flow`: a normalizing flow as a declared distribution, over zuko (or any module returning a distribution).

    >>> import torch, zuko, formula as fm
    >>> p = fm.Flow("p(x)", zuko.flows.NSF(features=2, transforms=2, hidden_features=(16,)))
    >>> q = fm.Flow("q(z|x)", zuko.flows.MAF(features=2, context=3, hidden_features=(16,)))
    >>> q.capabilities.reparameterised, q.capabilities.label
    (True, 'NormalizingFlow')

A zuko flow's `forward(c)` returns a `zuko.distributions.NormalizingFlow`: `log_prob` is exact (the base's
log-density plus the log-determinant of the transform, zuko's own computation) and `rsample` maps base draws
through the inverse transform, so draws are reparameterised where the base is. Its capabilities are known
without calling it (no `example=` is needed). Several conditions (`q(z|x,y)`) are concatenated along their last
dimension into zuko's one context. Any other module whose `forward(*conditions)` returns a torch distribution
is taken as `fm.LazyDistribution` takes it (pass `example=` for a conditional one).
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from .lazy import LazyDistribution
from .protocol import Capabilities
from .signatures import parse_declaration

__all__ = ["Flow"]


def _zuko_flow_class() -> Optional[type]:
    """`zuko.lazy.Flow` (the class of every zuko flow), or None when zuko is not importable."""
    try:
        from zuko.lazy import Flow as ZukoFlow
    except ImportError:  # pragma: no cover - zuko is a dependency; a module returning a distribution still works
        return None
    return ZukoFlow


def _flow_capabilities(flow: nn.Module) -> Capabilities:
    """A zuko flow returns a NormalizingFlow: continuous, exact density, sampled by the inverse transform;
    reparameterised when its base is (read from an unconditional base; zuko's bases are)."""
    from zuko.distributions import NormalizingFlow

    reparameterised = True
    try:
        reparameterised = bool(flow.base().has_rsample)
    except (TypeError, RuntimeError):  # a conditional base: NormalizingFlow.has_rsample is what zuko says
        pass
    return Capabilities(reparameterised=reparameterised, discrete=False, enumerable=False, has_density=True,
                        can_sample=True, family=NormalizingFlow, label="NormalizingFlow")


class _Concatenated(nn.Module):
    """A zuko flow given several conditions: they are one context, concatenated along the last dimension."""

    def __init__(self, flow: nn.Module):
        super().__init__()
        self.flow = flow

    def forward(self, *conditions: torch.Tensor):
        return self.flow(torch.cat(conditions, dim=-1))


class Flow(LazyDistribution):
    """A normalizing flow declared under a signature: `fm.Flow("p(x)", zuko.flows.NSF(2))`,
    `fm.Flow("q(z|x)", zuko.flows.MAF(2, context=10))`; the flow's parameters train with the objective.

    `flow` is a zuko flow (`zuko.lazy.Flow`) or any module whose `forward(*conditions)` returns a torch
    distribution; `example=`, `capabilities=` and `event_dims=` are those of `fm.LazyDistribution`.
    """

    def __init__(self, signature: str, flow: Callable, *, event_dims: int = 0,
                 example: Union[Mapping[str, torch.Tensor], Sequence[torch.Tensor], None] = None,
                 capabilities: Optional[Capabilities] = None):
        zuko_flow = _zuko_flow_class()
        is_zuko = zuko_flow is not None and isinstance(flow, zuko_flow)
        if is_zuko and capabilities is None:
            capabilities = _flow_capabilities(flow)
        several = len(parse_declaration(signature, type(self).__name__).given) > 1
        module = _Concatenated(flow) if is_zuko and several else flow  # zuko takes one context tensor
        super().__init__(signature, module, event_dims=event_dims, capabilities=capabilities)
        self.is_zuko = is_zuko
        if example is not None:
            self._probe(self._example_values(example))

    @property
    def flow(self) -> nn.Module:
        """The flow module as given (a zuko flow, or the module returning a distribution)."""
        return self.module.flow if isinstance(self.module, _Concatenated) else self.module
