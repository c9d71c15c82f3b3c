"""`ProductOfExperts`: a Gaussian posterior that is the normalised product of Gaussian experts (MVAE).

`fm.ProductOfExperts("q(z|x,w)", experts=[prior, q_x, q_w])` multiplies the experts' densities: for Gaussians the
product is Gaussian with precision the sum of the experts' precisions and mean their precision-weighted means
(Wu & Goodman 2018). Each expert is a Normal declaration conditioned on a subset of the product's conditions (the
prior on none); an expert whose conditions are missing -- given as `None`, or left out of `sample`/`log_prob` --
drops out of the product, so the same declaration infers from any subset of the modalities.

    >>> import torch, formula as fm
    >>> prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))
    >>> q_x = fm.Normal("q_x(z|x)", net=lambda x: {"loc": x, "scale": torch.ones_like(x)})
    >>> q = fm.ProductOfExperts("q(z|x,w)", experts=[prior, q_x])
    >>> q.condition(torch.full((1, 2), 2.0), None).mean  # two unit-precision experts at 0 and 2
    tensor([[1., 1.]])
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.distributions as D
from .pooled import Pooled
from .protocol import Capabilities, Declaration

__all__ = ["ProductOfExperts", "gaussian_product"]

_CAPABILITIES = Capabilities(reparameterised=True, discrete=False, enumerable=False, has_density=True,
                             can_sample=True, family=D.Normal, label="ProductOfExperts")


def gaussian_product(locs: Sequence[torch.Tensor], scales: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(loc, scale) of the normalised product of diagonal Gaussians: precisions add, means are precision-weighted.

    Computed in log-precision (a log-sum-exp) so that very sure and very vague experts mix without overflow."""
    log_precision = torch.stack(torch.broadcast_tensors(*[-2.0 * s.log() for s in scales]))
    weights = torch.softmax(log_precision, dim=0)  # precision_k / sum of precisions
    loc = (weights * torch.stack(torch.broadcast_tensors(*locs))).sum(0)
    scale = torch.exp(-0.5 * torch.logsumexp(log_precision, dim=0))
    return loc, scale


class ProductOfExperts(Pooled):
    """The normalised product of Gaussian experts, over any subset of its conditions that is present.

    `experts` are Normal declarations over the same variable, each conditioned on some of the product's
    conditions (by name; a prior on none). In `condition(*given)` a value of `None` is a missing modality: the
    experts that need it drop out. `subset(*names)` is the product over the experts those conditions allow.
    """

    member_word = "expert"

    def __init__(self, signature: str, experts: Sequence[Declaration]):
        super().__init__(signature)
        for expert in self._set_members(experts, "experts"):
            if expert.capabilities.family is not D.Normal:
                raise self._declaration_error(f"expert {expert.signature_text} is a {expert.capabilities.label}; "
                                              "the closed form needs Gaussian experts (fm.Normal)")

    @property
    def experts(self) -> Sequence[Declaration]:
        """The experts, in declared order."""
        return self.members

    @property
    def capabilities(self) -> Capabilities:
        """A diagonal Normal: reparameterised, with closed-form KLs against Normals."""
        return _CAPABILITIES

    def condition(self, *given_values: Optional[torch.Tensor], validate: bool = False) -> D.Distribution:
        """The product of the experts whose conditions are all present (not None), as an `Independent(Normal)`."""
        locs, scales, event_dims = [], [], set()
        for _, expert, dist in self._present(given_values, validate):
            normal, dims = self._normal_of(expert, dist)
            locs.append(normal.loc)
            scales.append(normal.scale)
            event_dims.add(dims)
        if len(event_dims) > 1:
            raise self._input_error(f"its experts have different event dims {sorted(event_dims)}; declare them "
                                    "over the same event")
        try:
            loc, scale = gaussian_product(locs, scales)
        except RuntimeError as error:
            shapes = ", ".join(str(list(s.shape)) for s in locs)
            raise self._input_error(f"its experts' parameters of shapes {shapes} do not broadcast: "
                                    f"{str(error).splitlines()[0]}") from None
        dist: D.Distribution = D.Normal(loc, scale, validate_args=False)
        dims = event_dims.pop()
        return D.Independent(dist, dims, validate_args=False) if dims else dist

    def _normal_of(self, expert: Declaration, dist: D.Distribution) -> Tuple[D.Normal, int]:
        """The Normal inside an expert's distribution and how many batch dims its `Independent`s reinterpret."""
        dims = 0
        while isinstance(dist, D.Independent):
            dims += dist.reinterpreted_batch_ndims
            dist = dist.base_dist
        if not isinstance(dist, D.Normal):
            raise self._input_error(f"expert {expert.signature_text} returned a {type(dist).__name__}, not a Normal")
        return dist, dims

    def subset(self, *names: str, signature: Optional[str] = None) -> "ProductOfExperts":
        """The product over the experts that `names` (some of its conditions) allow, sharing their networks: MVAE's
        single-modality posterior `q(z|x)` from `q(z|x,w)`. `signature` defaults to the same name over `names`."""
        unknown = [n for n in names if n not in self.given_names]
        if unknown or not names:
            raise self._declaration_error(f"subset() takes some of its conditions ({', '.join(self.given_names)}), "
                                          f"got {', '.join(names) or 'none'}")
        kept = [e for e in self.experts if all(n in names for n in e.given_names)]
        text = signature or f"{self.name}({self.var_names[0]}|{','.join(names)})"
        return ProductOfExperts(text, experts=kept)

    def extra_repr(self) -> str:
        return f"{self.signature_text}, experts=[{', '.join(e.signature_text for e in self.experts)}]"
