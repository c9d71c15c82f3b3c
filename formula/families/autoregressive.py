"""`Autoregressive`: `p(x) = prod_i p(x_i | x_{<i})` over the D dimensions of x, from one masked network.

`fm.Autoregressive("p(x)", net=fm.MADE(64), family=fm.Bernoulli)` holds a network that returns the parameters of
every conditional at once (a MADE, or any net whose output for dimension i depends on x_{<i} only, in the natural
order), so `log p(x)` is exact in one pass: the family's elementwise log-density summed over the D dimensions. A
draw takes D passes, dimension by dimension. Conditioned forms (`p(x|z)`) call `net(x, *conditions)`.

Draws are a function of noise drawn up front, one slice per dimension (uniforms for a Bernoulli, standard normals
for a Normal, Gumbels for a Categorical), so dimension i's value depends on the noise of dimensions <= i only
(`sample_with_noise`), and a Normal's draw is reparameterised through every pass. Other elementwise families draw
each dimension from the family in its own pass.

    >>> import torch, formula as fm
    >>> p = fm.Autoregressive("p(x)", net=fm.MADE(5, hidden=(16,)), family=fm.Bernoulli)
    >>> x = p.sample((3,))["x"]
    >>> x.shape, p.log_prob(x=x).shape
    (torch.Size([3, 5]), torch.Size([3]))
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

import torch
import torch.distributions as D
from torch.distributions import constraints

from ..errors import FormulaCheckError
from . import validation
from .declarations import Bernoulli, Distribution
from .protocol import Capabilities, Declaration

__all__ = ["Autoregressive", "AutoregressiveDistribution", "NoiseRule"]


class NoiseRule:
    """How a family's draw is a function of noise of the parameters' shape (Bernoulli: uniforms)."""

    reparameterised = False
    integer = False  # whether values are integer labels (and the noise has a trailing class dimension)

    def noise(self, base: D.Distribution) -> torch.Tensor:
        raise NotImplementedError

    def value(self, base: D.Distribution, noise: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _BernoulliNoise(NoiseRule):
    def noise(self, base):
        return torch.rand(base.probs.shape, dtype=base.probs.dtype, device=base.probs.device)

    def value(self, base, noise):
        return (noise < base.probs).to(base.probs.dtype)


class _NormalNoise(NoiseRule):
    reparameterised = True

    def noise(self, base):
        return torch.randn(base.loc.shape, dtype=base.loc.dtype, device=base.loc.device)

    def value(self, base, noise):
        return base.loc + base.scale * noise


class _GumbelNoise(NoiseRule):
    integer = True

    def noise(self, base):
        logits = base.logits
        u = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device)
        return -torch.log(-torch.log(u.clamp(torch.finfo(logits.dtype).tiny, 1.0)))

    def value(self, base, noise):
        return (base.logits + noise).argmax(-1)


NOISE_RULES: Dict[type, NoiseRule] = {D.Bernoulli: _BernoulliNoise(), D.Normal: _NormalNoise(),
                                      D.Categorical: _GumbelNoise()}
"""A torch family's noise rule; families without one draw each dimension from the family itself."""


class AutoregressiveDistribution(D.Distribution):
    """The distribution of one conditioning: `log_prob` in one pass of `conditionals(x)`, draws in D passes."""

    arg_constraints = {}

    def __init__(self, conditionals: Callable[[torch.Tensor], D.Distribution], features: int,
                 batch_shape: torch.Size, like: torch.Tensor, rule: Optional[NoiseRule],
                 support: Optional[constraints.Constraint]):
        self.conditionals, self.features, self.like, self.rule = conditionals, features, like, rule
        self._support = support
        self.has_rsample = bool(rule is not None and rule.reparameterised)
        super().__init__(torch.Size(batch_shape), torch.Size((features,)), validate_args=False)

    @property
    def support(self):
        return self._support if self._support is not None else constraints.real

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over dimensions of each conditional's log-density: one network pass."""
        return self.conditionals(value).log_prob(value).sum(-1)

    def _start(self, sample_shape) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
        integer = self.rule is not None and self.rule.integer
        return torch.zeros(shape, dtype=torch.long if integer else self.like.dtype, device=self.like.device)

    def noise(self, sample_shape=torch.Size()) -> torch.Tensor:
        """The noise a draw of `sample_shape` is a function of (`sample_with_noise`)."""
        if self.rule is None:
            raise NotImplementedError("this family has no noise rule: draw with sample()")
        return self.rule.noise(self.conditionals(self._start(sample_shape)))

    def sample_with_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """A draw as a function of `noise` (from `noise()`): dimension i from the noise of dimensions <= i."""
        shape = noise.shape[:-1] if self.rule.integer else noise.shape  # [*sample, *batch, D]
        return self._passes(shape[:len(shape) - len(self.batch_shape) - 1], noise)

    def _passes(self, sample_shape, noise: Optional[torch.Tensor]) -> torch.Tensor:
        """D passes: pass i draws dimension i from the conditionals given the dimensions drawn before it (from
        the noise, drawn at the first pass when not given, or from the family where it has no noise rule)."""
        x = self._start(sample_shape)
        for i in range(self.features):
            base = self.conditionals(x)
            if self.rule is None:
                step = base.sample()[..., i]
            else:
                noise = self.rule.noise(base) if noise is None else noise
                step = self.rule.value(base, noise)[..., i]
            x = torch.cat([x[..., :i], step.to(x.dtype).unsqueeze(-1), x[..., i + 1:]], -1)
        return x

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """A reparameterised draw (a Normal's): D passes, gradients through every one."""
        if not self.has_rsample:
            raise NotImplementedError("no reparameterised draw for this family")
        return self._passes(sample_shape, None)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """A draw in D passes, dimension by dimension."""
        with torch.no_grad():
            return self._passes(sample_shape, None)


class Autoregressive(Declaration):
    """`p(x) = prod_i p(x_i | x_{<i})` from one network returning every conditional's parameters at once.

    `family` is an elementwise declared family (fm.Bernoulli, fm.Normal, fm.Categorical, ...), whose parameter
    names the net's dict uses (a tensor is taken as `logits`); by default the family an `fm.MADE` was built for,
    else fm.Bernoulli. `features` is D (read from `net.features` when it has one, as `fm.MADE` does). Values are
    `[batch, D]`.
    """

    def __init__(self, signature: str, net: Callable, family: Optional[type] = None, *,
                 features: Optional[int] = None):
        super().__init__(signature)
        made_for = getattr(net, "family", None)  # what an fm.MADE was built to return
        family = family if family is not None else made_for if made_for is not None else Bernoulli
        if not (isinstance(family, type) and issubclass(family, Distribution) and family.torch_family is not None):
            raise self._declaration_error(f"family= must be a declared family such as fm.Bernoulli, got {family!r}")
        if made_for is not None and made_for is not family:
            raise self._declaration_error(f"its net returns the parameters of a {made_for.__name__}, but "
                                          f"family={family.__name__}; build the net with family=fm."
                                          f"{family.__name__} or declare family=fm.{made_for.__name__}")
        if not callable(net):
            raise self._declaration_error(f"net= must be an nn.Module or a callable, got {type(net).__name__}")
        features = features if features is not None else getattr(net, "features", None)
        if not isinstance(features, int) or isinstance(features, bool) or features < 1:
            raise self._declaration_error(f"features= must be the number of dimensions D (a positive int), got "
                                          f"{features!r}; a net with a .features attribute gives it")
        self.net, self.family, self.features = net, family, features
        self.register_buffer("_like", torch.zeros(()), persistent=False)  # the dtype and device of a draw
        torch_family = family.torch_family
        self._rule = NOISE_RULES.get(torch_family)
        self._support = self._support_of(family)
        self.data_hint = family.data_hint  # what is said when observed data is outside the support
        discrete = bool(getattr(torch_family.support, "is_discrete", False)) or family.elementwise is False
        self._capabilities = Capabilities(
            reparameterised=bool(self._rule is not None and self._rule.reparameterised), discrete=discrete,
            enumerable=False, has_density=True, can_sample=True, family=AutoregressiveDistribution,
            label="Autoregressive")

    def _declaration_error(self, message: str) -> FormulaCheckError:
        return FormulaCheckError(f"Autoregressive {self.signature_text}: {message}", self.signature_text,
                                 self._whole())

    @staticmethod
    def _support_of(family: type) -> Optional[constraints.Constraint]:
        """What observed data must lie in: the family's data support, torch's, or non-negative integer labels."""
        if family.data_support is not None:
            return family.data_support
        support = family.torch_family.support
        if constraints.is_dependent(support):
            return constraints.nonnegative_integer
        return support

    @property
    def capabilities(self) -> Capabilities:
        """Exact density; reparameterised draws for a Normal family, score-function estimates otherwise."""
        return self._capabilities

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """The autoregressive distribution given the conditions in declared order (batch shape theirs)."""
        self._check_count(given_values)
        batch = given_values[0].shape[:-1] if given_values else torch.Size()

        def conditionals(x: torch.Tensor) -> D.Distribution:
            lead = x.shape[:-1]
            given = [v.expand(*lead[:len(lead) - len(v.shape[:-1])], *v.shape) for v in given_values]
            return self._family_at(self._call_module(self.net, None, ("x",) + self.given_names, [x, *given]),
                                   validate)

        return AutoregressiveDistribution(conditionals, self.features, batch, self._like, self._rule, self._support)

    def _family_at(self, out: Any, validate: bool) -> D.Distribution:
        """The family over every dimension from the net's output (a dict of parameters, or logits)."""
        params: Mapping[str, Any] = out if isinstance(out, Mapping) else {"logits": out}
        if validate:
            validation.check_parameters(self._where(), params, self.family._constraint_table)
        try:
            return self.family.torch_family(**params, validate_args=False)
        except (TypeError, ValueError, RuntimeError) as error:
            shapes = ", ".join(f"{k} {list(getattr(v, 'shape', ()))}" for k, v in params.items())
            raise self._input_error(f"its net returned {shapes}, not the parameters of a {self.family.__name__} "
                                    f"({', '.join(' or '.join(g) for g in self.family.params)}): "
                                    f"{str(error).splitlines()[0]}") from None

    def _data_support(self, dist: Optional[D.Distribution]) -> Optional[constraints.Constraint]:
        return self._support

    def extra_repr(self) -> str:
        return f"{self.signature_text}, family={self.family.__name__}, features={self.features}"

