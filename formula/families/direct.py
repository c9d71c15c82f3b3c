"""torch distributions built without re-broadcasting parameters that already agree (a network's outputs).

torch's constructors broadcast their parameters (`broadcast_all`) on every call; a declaration whose net returns
`loc` and `scale` of one shape pays for a broadcast that changes nothing, once per use per call. `direct(family,
params)` builds the same object, the same attributes set as the constructor sets them, when every parameter is a
tensor of one shape (and not while torch.compile traces: there the constructor is used as is), and None otherwise
(the caller then calls the constructor). Densities, samples and KLs are torch's own: only the construction is
shortened. A family is added with `register_direct(family, build)`.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import torch
import torch.distributions as D

__all__ = ["direct", "register_direct"]

_DIRECT: Dict[type, Callable[[Mapping[str, torch.Tensor]], Optional[D.Distribution]]] = {}


def register_direct(family: type, build: Callable[[Mapping[str, torch.Tensor]], Optional[D.Distribution]]) -> None:
    """`build(params)` -> the `family` distribution (validate_args=False), or None where it does not apply."""
    _DIRECT[family] = build


def direct(family: type, params: Mapping[str, torch.Tensor]) -> Optional[D.Distribution]:
    build = _DIRECT.get(family)
    if build is None or torch.compiler.is_compiling():
        return None
    return build(params)


def _unchecked(dist: D.Distribution, batch_shape: torch.Size) -> D.Distribution:
    D.Distribution.__init__(dist, batch_shape, validate_args=False)
    return dist


def _loc_scale(family: type):
    def build(params):
        if len(params) != 2:
            return None
        loc, scale = params.get("loc"), params.get("scale")
        if (type(loc) is not torch.Tensor or type(scale) is not torch.Tensor or loc.shape != scale.shape
                or loc.device != scale.device):  # the constructor's error (and message) where they disagree
            return None
        dist = family.__new__(family)
        dist.loc, dist.scale = loc, scale
        return _unchecked(dist, loc.shape)

    return build


def _bernoulli(params):
    if len(params) != 1:
        return None
    logits = params.get("logits")
    if type(logits) is not torch.Tensor:
        return None  # probs (or anything else): the constructor
    dist = D.Bernoulli.__new__(D.Bernoulli)
    dist.logits = dist._param = logits
    return _unchecked(dist, logits.shape)


register_direct(D.Normal, _loc_scale(D.Normal))
register_direct(D.Laplace, _loc_scale(D.Laplace))
register_direct(D.Bernoulli, _bernoulli)
