"""`EnergyBased`: a distribution known up to its normaliser, p_theta(x) = exp(-E_theta(x)) / Z(theta), whose draws
run a declared sampler (short-run Langevin with a replay buffer by default).

Its draws let the contrastive objective of maximum-likelihood EBM training (Du & Mordatch 2019, eq. 2) compile
through the ordinary expectation machinery::

    E = fm.Function(r"\\mathit{E}_\\theta(x)", net=energy_net)  # \\mathit: a plain name, not an expectation
    p = fm.EnergyBased("p_theta(x)", energy=E, shape=(2,), sampler=fm.Langevin(steps=60, step_size=0.01, buffer=10000))
    loss = fm.compile(r"E_{p_data(x)}[\\mathit{E}_\\theta(x)] - E_{p_theta(x')}[\\mathit{E}_\\theta(x')]",
                      [E, p, fm.Data("p_data(x)")])     # x' : the model's draws, told apart from the data x

Its gradient is the likelihood's: the draws are constants (the chain is detached unless the sampler was built with
`create_graph=True`), so differentiating the second term gives E_{p_theta}[grad E_theta(x)] and nothing for
the dependence of the draws on theta. That is why the draws count as pathwise (`reparameterised`): a pathwise
estimator differentiates through the draw, and through a detached chain that is zero.

Its density is unnormalised: `log p_theta(x)` would need log Z(theta), which nothing here computes, so a formula
that scores it is refused (`has_density` is False) and `log_prob` raises a FormulaCheckError that says so; what
is known, -E_theta(x), is `unnormalised_log_prob`.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.distributions as D
from torch import nn
from torch.distributions import constraints

from ..errors import FormulaCheckError, FormulaError
from ..samplers import Langevin
from .protocol import Capabilities, Declaration

__all__ = ["EnergyBased", "ChainSamples"]

UNNORMALISED = ("its density is unnormalised: log p(x) = -E(x) - log Z and the normaliser Z is unknown; write "
                "the energy itself (-E(x)) or the contrastive objective E_{p_data}[E(x)] - E_{p}[E(x)]")


class ChainSamples(D.Distribution):
    """What `EnergyBased.condition()` returns: `rsample(shape)` runs the declaration's sampler for
    `prod(shape)` chains; there is no `log_prob` (the density is unnormalised)."""

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(self, owner: "EnergyBased"):
        self.owner = owner
        super().__init__(batch_shape=torch.Size(), event_shape=owner.shape, validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.owner.shape))

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """`[*sample_shape, *event]` chain ends; differentiable only where the sampler keeps the graph."""
        shape = torch.Size(sample_shape)
        x = self.owner.draw(max(1, math.prod(shape)))
        return x.reshape(shape + self.owner.shape)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.rsample(sample_shape).detach()


class EnergyBased(Declaration):
    """`fm.EnergyBased("p_theta(x)", energy=E, shape=(2,), sampler=fm.Langevin(...))`: p(x) proportional to
    exp(-E(x)). `energy` is a `fm.Function` or any module or callable mapping `[n, *shape]` to energies `[n]`
    (or `[n, 1]`); `sampler` is a `fm.Langevin` (its replay buffer, if any, lives in this module's state)."""

    def __init__(self, signature: str, energy: Callable, *, shape: Sequence[int], sampler: Optional[Langevin] = None):
        super().__init__(signature)
        if self.given_names:
            raise FormulaCheckError(f"EnergyBased {signature}: a conditional energy-based model is not supported "
                                    "yet; declare p(x) over one variable", signature, self._whole())
        if not callable(energy):
            raise FormulaCheckError(f"EnergyBased {signature}: energy= must be a fm.Function, a module or a "
                                    f"callable x -> E(x), got {type(energy).__name__}", signature, self._whole())
        if sampler is None:
            sampler = Langevin()
        if not isinstance(sampler, Langevin):
            raise FormulaCheckError(f"EnergyBased {signature}: sampler= must be a fm.Langevin, got "
                                    f"{type(sampler).__name__}", signature, self._whole())
        self.energy = energy  # a module becomes a submodule: its parameters train with the objective
        self.shape = torch.Size(shape)
        self.sampler = sampler
        self.replay = sampler.make_buffer(self.shape)  # a submodule (state_dict, .to) or None

    @property
    def capabilities(self) -> Capabilities:
        """Sampled by the chain, pathwise (see the module docstring), with no density."""
        return Capabilities(reparameterised=True, discrete=False, enumerable=False, has_density=False,
                            can_sample=True, family=ChainSamples, label="unnormalised EnergyBased")

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """The chain's distribution (nothing to validate: the energy has no constrained parameters)."""
        self._check_count(given_values)
        return ChainSamples(self)

    def energy_of(self, x: torch.Tensor) -> torch.Tensor:
        """E(x), one value per example `[n]`."""
        try:
            e = self.energy(x)
        except FormulaError:
            raise
        except (RuntimeError, ValueError, TypeError) as error:
            raise self._net_error(self.energy, self.var_names, (x,), error) from None
        return e.reshape(x.shape[0], -1).sum(-1) if e.dim() > 1 else e

    def draw(self, n: int, progress: Optional[bool] = None) -> torch.Tensor:
        """`[n, *shape]` draws by the sampler, from the replay buffer where there is one."""
        like = self._like()
        return self.sampler.sample(n, like, self.shape, energy=self.energy_of, buffer=self.replay,
                                   progress=progress)

    def _like(self) -> torch.Tensor:
        """A tensor of the model's dtype and device (the replay buffer, or the energy's first parameter)."""
        if self.replay is not None:
            return self.replay.samples
        first = next(self.parameters(), None)
        return first.detach() if first is not None else torch.empty(0, dtype=torch.get_default_dtype())

    def unnormalised_log_prob(self, **values: torch.Tensor) -> torch.Tensor:
        """-E(x): the log-density up to the unknown -log Z."""
        (x,) = self._gather(values, self.var_names, "unnormalised_log_prob")
        return -self.energy_of(x)

    def log_prob(self, **values: torch.Tensor) -> torch.Tensor:
        """Refused: the normaliser is unknown (see `unnormalised_log_prob`)."""
        raise FormulaCheckError(f"EnergyBased {self.signature_text}: {UNNORMALISED}", self.signature_text,
                                self._whole())

    def extra_repr(self) -> str:
        return f"{self.signature_text}, shape={tuple(self.shape)}, sampler={self.sampler!r}"
