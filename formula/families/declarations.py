"""Declared families and functions: Normal, Bernoulli, ..., Data, Function (docs/api.md, "Declaring distributions").

One implementation of the declaration protocol (`formula.families.protocol`): a family holds a signature
(`q(z|x)`) and either a network that maps the conditioning values to the parameters of a `torch.distributions`
family, or fixed/learnable parameters. Following zuko's lazy distributions, the module owns the parameters (so
`state_dict`, `.to(device)` and DDP just work) and `condition(*given)` builds a transient torch distribution
every call; its capabilities are read from the torch family it builds.

    >>> import torch, formula as fm
    >>> prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(3,))
    >>> prior.condition().event_shape
    torch.Size([3])
    >>> sorted(prior.sample((2,)))
    ['z']

Event dimensions: `event_dims` says how many rightmost dimensions of a value form one event beyond what the
torch family already treats as its event, so that `log_prob` sums them. It defaults to `len(shape)` when
`shape=` is given; with fixed parameters and no `shape=`, to the dimensions of the parameters' batch shape;
with a network, to 1 for elementwise families (Normal, Bernoulli, Laplace, Beta, Gamma, RelaxedBernoulli,
Deterministic: a value is `[batch, D]`) and to 0 for families whose value is a label or already a vector
(Categorical, OneHotCategorical, Dirichlet, RelaxedCategorical).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.distributions as D
from torch import nn
from torch.distributions import constraints

from ..check.kinds import DeclKind
from ..errors import FormulaCheckError, FormulaError, FormulaInputError
from . import validation
from .delta import Delta
from .protocol import Capabilities, Declaration, capabilities_of
from .signatures import keywords_for, spans
from .direct import direct
from .summed import Summed

__all__ = [
    "Distribution", "Normal", "Bernoulli", "Categorical", "OneHotCategorical", "Laplace", "Beta", "Gamma",
    "Dirichlet", "RelaxedBernoulli", "RelaxedCategorical", "Deterministic", "Data", "Function", "FAMILIES",
]

# --- a declaration with an optional network -----------------------------------------------------------------


class _Networked(Declaration):
    """A declaration whose values come from a network called with its arguments (keywords where names allow)."""

    def __init__(self, signature: str, net: Optional[Callable] = None):
        super().__init__(signature)
        if net is not None and not callable(net):
            raise FormulaCheckError(f"{type(self).__name__} {signature}: net= must be an nn.Module or a callable, "
                                    f"got {type(net).__name__}", signature, self._whole())
        self.net = net  # an nn.Module becomes a submodule (parameters, .to, state_dict)
        names = self._net_arg_names()
        self._net_keywords = keywords_for(net, names, type(self).__name__, signature) if net is not None else None

    def _net_arg_names(self) -> Tuple[str, ...]:
        return self.given_names

    def _call_net(self, args: Sequence[torch.Tensor]) -> Any:
        return self._call_module(self.net, self._net_keywords, self._net_arg_names(), args)

    def _net_repr(self) -> Optional[str]:
        if self.net is None or isinstance(self.net, nn.Module):
            return None  # a module net is printed by nn.Module as the child `(net)`
        return f"net={getattr(self.net, '__qualname__', type(self.net).__name__)}"


# --- distributions -----------------------------------------------------------------------------------------

FAMILIES: Dict[str, type] = {}
"""Every declarable family by class name (`"Normal"` -> `Normal`), subclasses included as they are defined."""


class Distribution(_Networked):
    """Base of every declared family: a signature and a network or parameters, giving torch distributions.

    Subclasses set `torch_family` (the torch class, whose flags give the capabilities), `params` (groups of
    alternative parameter names, exactly one of each group required: `(("probs", "logits"),)`) and
    `elementwise` (whether the default event dimensions with a network are 1 or 0; see the module docstring).
    """

    torch_family: ClassVar[Optional[type]] = None
    params: ClassVar[Tuple[Tuple[str, ...], ...]] = ()
    elementwise: ClassVar[bool] = True
    extra_constraints: ClassVar[Mapping[str, constraints.Constraint]] = {}  # checked besides torch's own
    data_support: ClassVar[Optional[constraints.Constraint]] = None  # observed data's support, if not torch's
    _constraint_table: ClassVar[Mapping[str, constraints.Constraint]] = {}  # the above and torch's, not dependent

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            FAMILIES[cls.__name__] = cls
        if cls.torch_family is not None:
            table = {**cls.torch_family.arg_constraints, **cls.extra_constraints}
            cls._constraint_table = {k: validation.as_given(c) for k, c in table.items()
                                     if not constraints.is_dependent(c)}

    def __init__(self, signature: str, net: Optional[Callable] = None, *, event_dims: Optional[int] = None,
                 shape: Optional[Sequence[int]] = None, **params: Any):
        super().__init__(signature, net)
        if self.torch_family is None:
            raise self._declaration_error("Distribution is the base of the families: declare one (fm.Normal, ...), "
                                          "subclass it with torch_family=, or use fm.LazyDistribution")
        self._check_declared_params(params)
        self.shape = self._shape(shape)
        self._fixed = tuple(params)
        self._expand: Dict[str, torch.Size] = {}  # learnable parameters broadcast to `shape` at each call
        for name, value in params.items():
            if isinstance(value, nn.Parameter):
                self.register_parameter(name, value)
            else:
                tensor = torch.as_tensor(value)
                if not tensor.is_floating_point():
                    tensor = tensor.to(torch.get_default_dtype())
                self.register_buffer(name, tensor)
        if self.shape is not None:
            self._expand_to(self.shape)
        probe = self._probe() if net is None else None
        self.event_dims = self._event_dims(event_dims, None if probe is None else probe.batch_shape)
        self._capabilities = capabilities_of(probe if probe is not None else self.torch_family,
                                             label=type(self).__name__)
        self._checked_keys: Optional[Tuple[str, ...]] = None

    # -- declaration helpers --

    def _declaration_error(self, message: str, span: Optional[Tuple[int, int]] = None) -> FormulaCheckError:
        return FormulaCheckError(f"{type(self).__name__} {self.signature_text}: {message}", self.signature_text,
                                 span or self._whole())

    def _check_declared_params(self, params: Mapping[str, Any]) -> None:
        """Exactly one parameter of each group, unless a network gives them; nothing unknown."""
        allowed = [name for group in self.params for name in group]
        for name in params:
            if name not in allowed:
                raise self._declaration_error(f"unknown parameter {name!r}; {type(self).__name__} takes "
                                              f"{self._expected()}")
        for group in self.params:
            present = [name for name in group if name in params]
            if len(present) > 1:
                raise self._declaration_error(f"give only one of {' or '.join(group)}")
            if not present and self.net is None:
                raise self._declaration_error(f"missing parameter {' or '.join(group)}; give net= or the "
                                              f"parameters {self._expected()}")
        if self.net is None and self.given_names:
            raise self._declaration_error(f"it is conditioned on {', '.join(self.given_names)}, so it needs net= "
                                          "to map them to its parameters",
                                          spans(self.parsed.given, self.signature_text))

    def _shape(self, shape: Any) -> Optional[torch.Size]:
        if shape is None:
            return None
        try:
            return torch.Size(shape if isinstance(shape, Sequence) else (shape,))
        except TypeError:
            raise self._declaration_error(f"shape= must be a tuple of sizes, got {shape!r}") from None

    def _event_dims(self, event_dims: Any, batch_shape: Optional[torch.Size]) -> int:
        """The declared event dims, or the default (see the module docstring), checked against the parameters."""
        if event_dims is None:
            if batch_shape is not None:
                event_dims = len(batch_shape)
            else:
                event_dims = len(self.shape) if self.shape is not None else int(self.elementwise)
        if not isinstance(event_dims, int) or event_dims < 0:
            raise self._declaration_error(f"event_dims must be a non-negative int, got {event_dims!r}")
        if batch_shape is not None and event_dims > len(batch_shape):
            raise self._declaration_error(f"event_dims={event_dims} but its parameters have batch shape "
                                          f"{tuple(batch_shape)}; pass shape= to give the event shape")
        return event_dims

    def _expected(self) -> str:
        return ", ".join(" or ".join(group) for group in self.params)

    def _expand_to(self, shape: torch.Size) -> None:
        """Broadcast fixed parameters to `shape` (+ the parameter's own event dims); buffers are stored so."""
        arg_constraints = self.torch_family.arg_constraints
        for name in self._fixed:
            if name not in arg_constraints:  # e.g. temperature: not a batched parameter
                continue
            value = getattr(self, name)
            own = arg_constraints[name].event_dim
            target = shape + value.shape[value.dim() - own:] if own else shape
            try:
                expanded = value.expand(target)
            except RuntimeError:
                raise self._declaration_error(f"parameter {name} of shape {tuple(value.shape)} does not broadcast "
                                              f"to shape={tuple(shape)}") from None
            if isinstance(value, nn.Parameter):
                if value.shape != target:
                    self._expand[name] = target
            else:
                setattr(self, name, expanded.clone())

    def _probe(self) -> D.Distribution:
        """Build the fixed-parameter distribution once with validation, so bad values fail at declaration."""
        params = self._fixed_params()
        try:
            with torch.no_grad():
                validation.check_parameters(self._where(), params, self.extra_constraints)
                meta = any(torch.is_tensor(v) and v.is_meta for v in params.values())  # no values to check
                return self.torch_family(**params, validate_args=not meta)
        except (ValueError, RuntimeError) as error:  # a FormulaInputError is a ValueError too
            message = error.message if isinstance(error, FormulaError) else str(error).splitlines()[0]
            raise self._declaration_error(f"invalid parameters: {message}") from None

    # -- the protocol --

    @property
    def capabilities(self) -> Capabilities:
        """Read from the torch family (through the `Independent` wrapping event dims), per instance."""
        return self._capabilities

    def _fixed_params(self) -> Dict[str, torch.Tensor]:
        params = {name: getattr(self, name) for name in self._fixed}
        for name, target in self._expand.items():
            params[name] = params[name].expand(target)
        return params

    def _net_params(self, out: Any) -> Mapping[str, torch.Tensor]:
        """The net's output as a parameter dict, its keys checked (fully only when they change)."""
        if type(out) is not dict and not isinstance(out, Mapping):
            out = self._wrap_output(out)
        keys = tuple(out)
        if keys != self._checked_keys:
            self._check_keys(keys)
            self._checked_keys = keys
        return out

    def _wrap_output(self, out: Any) -> Mapping[str, torch.Tensor]:
        raise self._declaration_error(f"its net must return a dict of parameters ({self._expected()}), got "
                                      f"{type(out).__name__}")

    def _check_keys(self, keys: Tuple[str, ...]) -> None:
        allowed = {name for group in self.params for name in group}
        unknown = [k for k in keys if k not in allowed]
        problems = [f"unknown {', '.join(map(repr, unknown))}"] if unknown else []
        twice = [k for k in keys if k in self._fixed]
        problems += [f"{', '.join(twice)} also given as fixed parameters"] if twice else []
        have = set(keys) | set(self._fixed)
        for group in self.params:
            present = [name for name in group if name in have]
            if len(present) != 1:
                problems.append(f"{'missing' if not present else 'more than one of'} {' or '.join(group)}")
        if problems:
            raise self._declaration_error(f"its net returned keys {list(keys)}: {'; '.join(problems)}; expected "
                                          f"{self._expected()}")

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """The torch distribution given the conditioning values in declared order (event dims reinterpreted);
        `validate=True` checks each parameter against its constraint (one fused test per parameter)."""
        if len(given_values) != len(self.given_names):
            self._check_count(given_values)
        if self.net is None and not validate:
            return self._fixed_distribution()
        return self._build(given_values, validate)

    def _fixed_distribution(self) -> D.Distribution:
        """A distribution of constant parameters (a standard-Normal prior) is built once and reused while its
        tensors are the same and unchanged; learnable ones (their graph is freed by backward) are built per call."""
        if torch.compiler.is_compiling():
            return self._build((), False)
        key = [torch.is_inference_mode_enabled()]
        for name in self._fixed:  # a loop, not generators: this runs on every call of a prior
            v = getattr(self, name)
            if v.requires_grad:
                return self._build((), False)
            key.append((id(v), v._version, v.device, v.dtype))
        key = tuple(key)
        cached = self.__dict__.get("_fixed_cache")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_fixed_cache"] = (key, self._build((), False))
        return cached[1]

    def _build(self, given_values, validate: bool) -> D.Distribution:
        """The torch distribution from the fixed parameters and the net's output on `given_values`."""
        params = self._fixed_params() if self._fixed else {}
        net = self.net
        if net is not None:
            out = self._call_module(net, self._net_keywords, self._net_arg_names(), given_values)
            if type(out) is not dict or tuple(out) != self._checked_keys:  # the keys, fully when they change
                out = self._net_params(out)
            params = {**params, **out} if params else out
        if validate:
            validation.check_parameters(self._where(), params, self._constraint_table)
        try:
            dist = direct(self.torch_family, params) or self.torch_family(**params, validate_args=False)
        except (ValueError, RuntimeError) as error:  # some torch families validate inner ones regardless
            validation.check_parameters(self._where(), params, self._constraint_table)
            raise self._shape_error(params, error) from None
        if self.shape is not None and net is not None:
            n = len(self.shape)
            if n and tuple(dist.batch_shape[len(dist.batch_shape) - n:]) != tuple(self.shape):
                raise self._shape_error(params, f"expected trailing shape {tuple(self.shape)}")
        if self.event_dims:
            if self.event_dims > len(dist.batch_shape):
                raise self._shape_error(params, f"need at least {self.event_dims} dims to reinterpret as the event")
            dist = Summed(dist, self.event_dims, validate_args=False)
        return dist

    def _shape_error(self, params: Mapping[str, Any], why: Any) -> FormulaInputError:
        shapes = ", ".join(f"{k} {tuple(getattr(v, 'shape', ()))}" for k, v in params.items())
        return self._input_error(f"parameters of shapes {shapes} do not fit: {str(why).splitlines()[0]}")

    def _data_support(self, dist: Optional[D.Distribution]) -> Optional[constraints.Constraint]:
        """`data_support` where the family sets one, else the torch support; without a distribution, the class's
        support, or "a non-negative integer" where the bound depends on the parameters."""
        if self.data_support is not None:
            return self.data_support
        if dist is not None:
            return validation.support_of(dist)
        support = self.torch_family.support
        if constraints.is_dependent(support):
            return constraints.nonnegative_integer if self._capabilities.discrete else None
        return support

    def extra_repr(self) -> str:
        parts = [self.signature_text]
        for name in self._fixed:
            value = getattr(self, name)
            kind = "Parameter" if isinstance(value, nn.Parameter) else "tensor"
            constant = value.device.type != "meta" and (
                value.numel() == 1 or (kind == "tensor" and bool((value == value.reshape(-1)[0]).all())))
            text = f"{value.reshape(-1)[0].item():g}" if constant else f"{kind}{list(value.shape)}"
            parts.append(f"{name}={text}")
        if self.shape is not None:
            parts.append(f"shape={tuple(self.shape)}")
        parts.append(f"event_dims={self.event_dims}")
        net = self._net_repr()
        if net:
            parts.append(net)
        return ", ".join(parts)


class Normal(Distribution):
    """Gaussian `N(loc, scale)` (standard deviation, not variance); elementwise: default event_dims 1 with a net."""

    torch_family = D.Normal
    params = (("loc",), ("scale",))


class Laplace(Distribution):
    """Laplace `(loc, scale)`; elementwise: default event_dims 1 with a net."""

    torch_family = D.Laplace
    params = (("loc",), ("scale",))


class Bernoulli(Distribution):
    """Bernoulli over {0, 1} from `probs` or `logits`; elementwise (default event_dims 1 with a net); no
    rsample, so expectations over it use a score-function estimator; enumerable. Observed data may be
    continuous targets in [0, 1] (a common choice for grey-level images), not values outside it."""

    torch_family = D.Bernoulli
    params = (("probs", "logits"),)
    data_support = constraints.unit_interval
    data_hint = "continuous targets in [0, 1] are allowed: scale raw data into [0, 1] (e.g. x / 255) first"


class Binomial(Distribution):
    """Binomial counts 0..`total_count` from `probs` or `logits` (a grey pixel's level 0..16: declare
    `total_count=16`); elementwise: default event_dims 1 with a net; no rsample (score-function estimator)."""

    torch_family = D.Binomial
    params = (("total_count",), ("probs", "logits"))


class Poisson(Distribution):
    """Poisson counts from `rate`; elementwise: default event_dims 1 with a net; no rsample."""

    torch_family = D.Poisson
    params = (("rate",),)


class Categorical(Distribution):
    """A label in {0..C-1} from `probs`/`logits` of shape [..., C]; a sample is an integer, so default
    event_dims 0; enumerable."""

    torch_family = D.Categorical
    params = (("probs", "logits"),)
    elementwise = False


class OneHotCategorical(Distribution):
    """A one-hot vector of length C from `probs`/`logits`; torch's event shape is already (C,), so default
    event_dims 0; enumerable."""

    torch_family = D.OneHotCategorical
    params = (("probs", "logits"),)
    elementwise = False


class Beta(Distribution):
    """Beta on (0, 1) from `concentration1` (alpha) and `concentration0` (beta); elementwise: default event_dims 1."""

    torch_family = D.Beta
    params = (("concentration1",), ("concentration0",))


class Gamma(Distribution):
    """Gamma from `concentration` and `rate`; elementwise: default event_dims 1 with a net."""

    torch_family = D.Gamma
    params = (("concentration",), ("rate",))


class Dirichlet(Distribution):
    """Dirichlet over the simplex from `concentration` [..., C]; torch's event shape is (C,): default event_dims 0."""

    torch_family = D.Dirichlet
    params = (("concentration",),)
    elementwise = False


class RelaxedBernoulli(Distribution):
    """Concrete / Gumbel-sigmoid relaxation of a Bernoulli: `temperature` and `probs`/`logits`; reparameterised;
    elementwise: default event_dims 1 with a net. Give the temperature as a fixed parameter or from the net."""

    torch_family = D.RelaxedBernoulli
    params = (("temperature",), ("probs", "logits"))
    extra_constraints = {"temperature": constraints.positive}


class RelaxedCategorical(Distribution):
    """Gumbel-softmax relaxation of a one-hot categorical: `temperature` and `probs`/`logits` [..., C];
    reparameterised; torch's event shape is (C,): default event_dims 0."""

    torch_family = D.RelaxedOneHotCategorical
    params = (("temperature",), ("probs", "logits"))
    elementwise = False
    extra_constraints = {"temperature": constraints.positive}


class Deterministic(Distribution):
    """A point mass at the net's output (`Deterministic("f(h|x)", net=f)`) or at a fixed `value`.

    The net may return the tensor itself or `{"value": tensor}`. A draw is the value (gradients flow into the
    net), `log_prob` is 0 (see `formula.families.delta`); elementwise: default event_dims 1 with a net.
    """

    torch_family = Delta
    params = (("value",),)

    def _wrap_output(self, out: Any) -> Mapping[str, torch.Tensor]:
        if isinstance(out, torch.Tensor):
            return {"value": out}
        return super()._wrap_output(out)


_DATA_CAPABILITIES = Capabilities(reparameterised=True, discrete=False, enumerable=False, has_density=False,
                                  can_sample=True, family=None, label="Data")
_FUNCTION_CAPABILITIES = Capabilities(reparameterised=False, discrete=False, enumerable=False, has_density=False,
                                      can_sample=False, family=None, label="Function")


class Data(Declaration):
    """The empirical distribution of the batch, `Data("p_data(x)")` or `Data("p_data(x,y)")`: the only family
    over several variables. Sampling it returns the batch itself; it has no density, no net and no parameters.
    """

    kind = DeclKind.DATA
    _multiple_vars = True

    def __init__(self, signature: str):
        super().__init__(signature)
        if self.given_names:
            raise FormulaCheckError(f"Data {signature}: the data distribution has no conditions", signature,
                                    spans(self.parsed.given, signature))

    @property
    def capabilities(self) -> Capabilities:
        """Sampled (the batch itself, no score-function term ever needed), never scored."""
        return _DATA_CAPABILITIES

    def _no_density(self, what: str) -> FormulaCheckError:
        return FormulaCheckError(f"Data {self.signature_text}: the empirical distribution of the batch has no "
                                 f"{what}; use it only to sample, as in E_{{{self.signature_text}}}[...]",
                                 self.signature_text, self._whole())

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """Not available: the data distribution is not a torch distribution; use `sample(**batch)`."""
        raise self._no_density("torch distribution")

    def sample(self, sample_shape: Sequence[int] = (), **inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The batch itself, `{name: tensor}`, broadcast to `sample_shape + shape` when a sample shape is given."""
        values = self._gather(inputs, self.var_names, "sample")
        shape = torch.Size((sample_shape,) if isinstance(sample_shape, int) else sample_shape)
        return {name: v.expand(shape + v.shape) if shape else v for name, v in zip(self.var_names, values)}

    def log_prob(self, **values: torch.Tensor) -> torch.Tensor:
        """Not available: raises a FormulaCheckError."""
        raise self._no_density("density")

    def enumerate_support(self, *given_values: torch.Tensor, expand: bool = True) -> torch.Tensor:
        """Not available: raises a FormulaCheckError."""
        raise self._no_density("enumerable support")

    def validate_value(self, name: str, value: Any, dist: Optional[D.Distribution] = None) -> None:
        """Any tensor is a valid batch: nothing to check."""

    def extra_repr(self) -> str:
        return self.signature_text


# --- functions ---------------------------------------------------------------------------------------------


class Function(_Networked):
    """A deterministic network used as a function inside formulas: `Function("D(x)", net=Discriminator())`.

    Its arguments are the signature's variables then its conditions, in declared order (`T(x,z)`: x, z);
    `D(x_batch)` or `D(x=x_batch)` calls the net (by keyword when the names allow, like a distribution's net).
    """

    kind = DeclKind.FUNCTION
    _multiple_vars = True

    def __init__(self, signature: str, net: Callable):
        super().__init__(signature, net)
        if net is None:
            raise FormulaCheckError(f"Function {signature}: needs net=, the network it stands for", signature,
                                    self._whole())
        self.arg_names = self.var_names + self.given_names

    @property
    def capabilities(self) -> Capabilities:
        """None: a function is called, never sampled or scored."""
        return _FUNCTION_CAPABILITIES

    def _net_arg_names(self) -> Tuple[str, ...]:
        return self.var_names + self.given_names

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The net's value at the arguments, given in declared order or by name."""
        if kwargs:
            if args:
                raise FormulaInputError(f"{self.signature_text}: pass the arguments all by position or all by "
                                        "name", self.signature_text, self._whole())
            args = tuple(self._gather(kwargs, self.arg_names, "call"))
        if len(args) != len(self.arg_names):
            raise FormulaInputError(f"{self.signature_text}: takes {len(self.arg_names)} arguments "
                                    f"({', '.join(self.arg_names)}), got {len(args)}", self.signature_text,
                                    self._whole())
        return self._call_net(args)

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """Not available: a function is not a distribution; call it."""
        raise FormulaCheckError(f"Function {self.signature_text}: a function has no distribution; call it, as "
                                f"in {self.name}(...)", self.signature_text, self._whole())

    def extra_repr(self) -> str:
        net = self._net_repr()
        return f"{self.signature_text}, {net}" if net else self.signature_text


from . import kl_rules as _kl  # noqa: E402,F401  (registers our closed-form KL pairs with torch)
