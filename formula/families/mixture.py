"""`Mixture`: a finite mixture of declared components, scored by log-sum-exp (a GMM prior, MMVAE's experts).

`fm.Mixture("p(z)", components=gaussians, weights=pi)` takes either one declaration whose distribution has the
components stacked along its rightmost batch dimension (`fm.Normal("c(z)", loc=mu [K, D], scale=s [K, D])`: a
`torch.distributions.MixtureSameFamily`), or a list of declarations, each conditioned on some of the mixture's
conditions (MMVAE's `q(z|x,w) = 1/2 (q(z|x) + q(z|w))`). `log p(z) = logsumexp_k(log pi_k + log p_k(z))`: the
log-weights are added in log space, never the densities multiplied out of it.

The weights are given (`weights=` probabilities, uniform by default) or learned (`learn_weights=True`: logits
initialised from `weights`). A draw picks a component, then draws from it; with given weights and
reparameterised components that draw is reparameterised (pathwise in the components' parameters, the choice
carrying no gradient because the weights have none); learned weights get a score-function estimator instead.
In the list form a component whose conditions are missing (`None`) drops out and the others' weights are
renormalised, as `ProductOfExperts` drops an expert.

    >>> import torch, formula as fm
    >>> parts = fm.Normal("c(z)", loc=torch.tensor([[-2.0], [2.0]]), scale=torch.ones(2, 1), event_dims=1)
    >>> gmm = fm.Mixture("p(z)", components=parts)
    >>> gmm.condition().log_prob(torch.zeros(1, 1)).shape
    torch.Size([1])
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.distributions as D
from torch import nn

from .pooled import Pooled
from .protocol import Capabilities, Declaration

__all__ = ["Mixture", "ListMixture", "StackedMixture"]


def _pick(draws: torch.Tensor, choice: torch.Tensor, event_dims: int) -> torch.Tensor:
    """From `draws [*lead, K, *event]`, the component `choice [*lead]` of each: a gather, so gradients reach it."""
    event = draws.shape[draws.dim() - event_dims:] if event_dims else torch.Size()
    index = choice.reshape(*choice.shape, 1, *([1] * event_dims)).expand(*choice.shape, 1, *event)
    return draws.gather(choice.dim(), index).squeeze(choice.dim())


class StackedMixture(D.MixtureSameFamily):
    """torch's `MixtureSameFamily`, with a reparameterised draw when the weights are given (see the module)."""

    def __init__(self, mixture_distribution, component_distribution, reparameterised: bool = False,
                 validate_args=None):
        super().__init__(mixture_distribution, component_distribution, validate_args=validate_args)
        self.has_rsample = reparameterised

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """A component chosen by the weights, then its reparameterised draw."""
        shape = torch.Size(sample_shape)
        choice = self.mixture_distribution.sample(shape + self.batch_shape)
        return _pick(self.component_distribution.rsample(shape), choice, len(self.event_shape))


class ListMixture(D.Distribution):
    """A mixture of any torch distributions of one event shape: `logits [..., K]`, `components` a list of K."""

    arg_constraints = {}

    def __init__(self, logits: torch.Tensor, components: Sequence[D.Distribution], reparameterised: bool = False):
        self.logits = logits
        self.components = list(components)
        event = self.components[0].event_shape
        batch = torch.broadcast_shapes(logits.shape[:-1], *[c.batch_shape for c in self.components])
        self.has_rsample = reparameterised
        super().__init__(batch, event, validate_args=False)

    @property
    def support(self):
        return self.components[0].support

    @property
    def mean(self) -> torch.Tensor:
        weights = self._weights()
        return sum(w * c.mean for w, c in zip(weights, self.components))

    def _weights(self):
        """Each component's weight, shaped to broadcast against its values `[*batch, *event]`."""
        probs = torch.softmax(self.logits, -1)
        return [probs[..., k].reshape(*probs.shape[:-1], *([1] * len(self.event_shape)))
                for k in range(len(self.components))]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """`logsumexp_k(log pi_k + log p_k(value))`."""
        scores = torch.stack(torch.broadcast_tensors(*[c.log_prob(value) for c in self.components]), -1)
        return torch.logsumexp(torch.log_softmax(self.logits, -1) + scores, -1)

    def _draw(self, sample_shape, draw) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        lead = shape + self.batch_shape
        logits = self.logits.expand(*self.batch_shape, self.logits.shape[-1])
        choice = D.Categorical(logits=logits, validate_args=False).sample(shape)
        parts = [draw(c, shape).expand(lead + self.event_shape) for c in self.components]
        return _pick(torch.stack(parts, len(lead)), choice, len(self.event_shape))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self._draw(sample_shape, lambda c, s: c.sample(s))

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """A component chosen by the weights, then its reparameterised draw (pathwise in the components only)."""
        return self._draw(sample_shape, lambda c, s: c.rsample(s))


class Mixture(Pooled):
    """A mixture of declared components with given or learned weights (see the module docstring)."""

    member_word = "component"

    def __init__(self, signature: str, components: Any, *, weights: Any = None, learn_weights: bool = False):
        super().__init__(signature)
        self.stacked = isinstance(components, Declaration)
        parts = self._set_members([components] if self.stacked else components, "components")
        logits = self._initial_logits(weights, None if self.stacked else len(parts))
        if learn_weights:
            self.logits = nn.Parameter(logits)
        else:
            self.register_buffer("logits", logits)
        self.learn_weights = bool(learn_weights)
        caps = [c.capabilities for c in parts]
        self._capabilities = Capabilities(
            reparameterised=not learn_weights and all(c.reparameterised for c in caps),
            discrete=all(c.discrete for c in caps), enumerable=False,
            has_density=all(c.has_density for c in caps), can_sample=all(c.can_sample for c in caps),
            family=StackedMixture if self.stacked else ListMixture, label="Mixture")

    @property
    def components(self) -> Sequence[Declaration]:
        """The component declarations (one, with stacked parameters, in the stacked form)."""
        return self.members

    def _initial_logits(self, weights: Any, count: Optional[int]) -> torch.Tensor:
        """Log-weights from the given probabilities (checked), or uniform over the components."""
        if weights is None:
            count = count if count is not None else self._stacked_count()
            return torch.zeros(count, dtype=torch.get_default_dtype())
        probs = torch.as_tensor(weights)
        probs = probs if probs.is_floating_point() else probs.to(torch.get_default_dtype())
        if probs.dim() != 1 or (count is not None and probs.shape[0] != count):
            raise self._declaration_error(f"weights= must be {count or 'K'} probabilities, one per component, got "
                                          f"shape {list(probs.shape)}")
        if probs.device.type != "meta":
            if not bool((probs > 0).all()) or abs(float(probs.sum()) - 1.0) > 1e-4:
                raise self._declaration_error(f"weights= must be positive and sum to 1, got {probs.tolist()}")
        return probs.log()

    def _stacked_count(self) -> int:
        """K for uniform weights over stacked components: the rightmost batch dim of the unconditioned distribution."""
        part = self.components[0]
        if part.given_names:
            raise self._declaration_error("uniform weights over stacked components conditioned on inputs need "
                                          "their number: pass weights= (K probabilities)")
        batch = part.condition().batch_shape
        if not batch:
            raise self._declaration_error(f"component {part.signature_text} has no batch dimension to stack along; "
                                          "give its parameters a component dimension K (loc [K, D])")
        return batch[-1]

    @property
    def capabilities(self) -> Capabilities:
        """Read from the components: reparameterised when the weights are given and every component is."""
        return self._capabilities

    @property
    def weights(self) -> torch.Tensor:
        """The mixture weights (probabilities) now."""
        return torch.softmax(self.logits, -1)

    def condition(self, *given_values: Optional[torch.Tensor], validate: bool = False) -> D.Distribution:
        """The mixture given the conditions in declared order; in the list form, `None` drops the components
        that need it (the other weights renormalised)."""
        reparameterised = self._capabilities.reparameterised
        present = list(self._present(given_values, validate))
        if self.stacked:
            return self._stacked(present[0][2], reparameterised)
        kept = [k for k, _, _ in present]
        logits = self.logits if len(kept) == len(self.components) else self.logits[kept]
        return self._listed(logits, [dist for _, _, dist in present], reparameterised)

    def _stacked(self, part: D.Distribution, reparameterised: bool) -> D.Distribution:
        if not part.batch_shape or part.batch_shape[-1] != self.logits.shape[0]:
            raise self._input_error(f"its component {self.components[0].signature_text} has batch shape "
                                    f"{list(part.batch_shape)}, whose last dimension should be the "
                                    f"{self.logits.shape[0]} components")
        return StackedMixture(D.Categorical(logits=self.logits, validate_args=False), part, reparameterised,
                              validate_args=False)

    def _listed(self, logits: torch.Tensor, dists: Sequence[D.Distribution], reparameterised: bool) -> ListMixture:
        shapes = {tuple(d.event_shape) for d in dists}
        if len(shapes) > 1:
            raise self._input_error(f"its components have different event shapes {sorted(shapes)}; declare them "
                                    "over the same event (event_dims=)")
        try:
            return ListMixture(logits, dists, reparameterised)
        except RuntimeError as error:
            batches = ", ".join(str(list(d.batch_shape)) for d in dists)
            raise self._input_error(f"its components' batch shapes {batches} do not broadcast: "
                                    f"{str(error).splitlines()[0]}") from None

    def extra_repr(self) -> str:
        parts = ", ".join(c.signature_text for c in self.components)
        return (f"{self.signature_text}, components={'stacked ' if self.stacked else ''}[{parts}], "
                f"learn_weights={self.learn_weights}")
