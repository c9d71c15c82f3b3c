"""Declared distributions and functions: what a formula's names resolve to (docs/api.md, "Declaring distributions").

A declaration is an `nn.Module` holding a signature (`q(z|x)`) and either a network that maps the conditioning
values to the parameters of a `torch.distributions` family, or fixed/learnable parameters. Following zuko's
lazy distributions, the module owns the parameters (so `state_dict`, `.to(device)` and DDP just work) and
`condition(*given)` builds a transient torch distribution every call.

    >>> import torch, formula.distributions as fd
    >>> prior = fd.Normal("p(z)", loc=0.0, scale=1.0, shape=(3,))
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

import inspect
import keyword
import math
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.distributions as D
from torch import nn

from ..lang import nodes
from .delta import Delta
from ..errors import FormulaCheckError, FormulaError, FormulaInputError
from ..text.printing import to_ascii as var_text  # the same spelling the checker uses for names of inputs

__all__ = [
    "Distribution", "Normal", "Bernoulli", "Categorical", "OneHotCategorical", "Laplace", "Beta", "Gamma",
    "Dirichlet", "RelaxedBernoulli", "RelaxedCategorical", "Deterministic", "Data", "Function", "FAMILIES",
    "var_text",
]

_ENUMERATION_LIMIT = 1 << 16  # most joint support values `enumerate_support` builds for a multi-element event


# --- names -------------------------------------------------------------------------------------------------


def _parse_declaration(signature: Any, kind: str) -> nodes.Dist:
    """Parse and check a declaration's signature; every mistake is a FormulaCheckError with a caret."""
    if not isinstance(signature, str):
        raise FormulaCheckError(f"{kind}: the signature must be a string such as 'q(z|x)', got {signature!r}")
    from ..lang.parser import parse_signature  # lazy: the parser is the heavier import

    try:
        node = parse_signature(signature)
    except FormulaCheckError:
        raise
    except FormulaError as error:
        span = error.span if error.span is not None else (0, len(signature))
        raise FormulaCheckError(f"{kind}: bad signature {signature!r}: {error.message}", signature, span) from None
    whole = (0, len(signature))
    if not isinstance(node, nodes.Dist):
        raise FormulaCheckError(f"{kind}: a signature is a name and its variables, such as q(z|x)", signature, whole)
    for item in node.vars + node.given:
        if not isinstance(item, nodes.Var):
            span = item.span or whole
            raise FormulaCheckError(f"{kind}: only variables may appear in a signature", signature, span)
    if not node.vars:
        raise FormulaCheckError(f"{kind}: the signature names no variable; write e.g. q(z|x)", signature, whole)
    names = [var_text(v) for v in node.vars + node.given]
    for i, name in enumerate(names):
        if name in names[:i]:
            span = (node.vars + node.given)[i].span or whole
            raise FormulaCheckError(f"{kind}: variable {name} appears twice in the signature", signature, span)
    return node


def _spans(items: Sequence[nodes.Node], text: str) -> Tuple[int, int]:
    """The span covering `items`, or the whole text when they carry none."""
    spans = [item.span for item in items if item.span is not None]
    if not spans:
        return (0, len(text))
    return (min(s.start for s in spans), max(s.end for s in spans))


# --- the shared base: a signature and an optional network --------------------------------------------------


class _Declared(nn.Module):
    """A signature plus a network called with the conditioning values (keywords where names allow)."""

    _kind: ClassVar[str] = "declaration"
    _multiple_vars: ClassVar[bool] = False

    def __init__(self, signature: str, net: Optional[Callable] = None):
        super().__init__()
        kind = type(self).__name__
        node = _parse_declaration(signature, kind)
        self.signature_text = signature
        self.signature = node
        self.name = node.full_name
        self.var_names = tuple(var_text(v) for v in node.vars)
        self.given_names = tuple(var_text(v) for v in node.given)
        if len(node.vars) > 1 and not self._multiple_vars:
            raise FormulaCheckError(
                f"{kind} {signature}: a distribution is over one variable, got {', '.join(self.var_names)}; "
                "declare one distribution per variable and write the joint as a factorisation",
                signature, _spans(node.vars, signature))
        if net is not None and not callable(net):
            raise FormulaCheckError(f"{kind} {signature}: net= must be an nn.Module or a callable, got "
                                    f"{type(net).__name__}", signature, (0, len(signature)))
        self.net = net  # an nn.Module becomes a submodule (parameters, .to, state_dict)
        self._net_keywords = self._keywords_for(net, self._net_arg_names()) if net is not None else None

    def _net_arg_names(self) -> Tuple[str, ...]:
        return self.given_names

    def _keywords_for(self, net: Callable, names: Tuple[str, ...]) -> Optional[Tuple[str, ...]]:
        """Keyword names to call `net` with, or None to call it positionally (docs/api.md's rule).

        Keywords when every name is a distinct Python identifier; a net whose signature cannot take those
        keywords but can take the values positionally (`forward(self, inputs)`) is called positionally.
        """
        if not names or not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
            return None
        if len(set(names)) != len(names):
            return None
        try:
            sig = inspect.signature(net.forward if isinstance(net, nn.Module) else net)
        except (TypeError, ValueError):
            return names
        try:
            sig.bind(**{n: None for n in names})
            return names
        except TypeError:
            pass
        try:
            sig.bind(*names)
            return None
        except TypeError:
            raise FormulaCheckError(
                f"{type(self).__name__} {self.signature_text}: its net must take the arguments "
                f"{', '.join(names)}, but its signature is {sig}",
                self.signature_text, (0, len(self.signature_text))) from None

    def _call_net(self, args: Sequence[torch.Tensor]) -> Any:
        if self._net_keywords is not None:
            return self.net(**dict(zip(self._net_keywords, args)))
        return self.net(*args)

    def _gather(self, values: Mapping[str, Any], names: Tuple[str, ...], what: str) -> list:
        """The values of `names` from keyword arguments, with an input error naming what is missing or extra."""
        unknown = [k for k in values if k not in names]
        missing = [n for n in names if n not in values]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown {', '.join(unknown)}")
            expected = ", ".join(names) if names else "nothing"
            raise FormulaInputError(f"{what} of {self.signature_text}: {'; '.join(parts)} (expected {expected})",
                                    self.signature_text, (0, len(self.signature_text)))
        return [values[n] for n in names]

    def _net_repr(self) -> Optional[str]:
        if self.net is None or isinstance(self.net, nn.Module):
            return None  # a module net is printed by nn.Module as the child `(net)`
        return f"net={getattr(self.net, '__qualname__', type(self.net).__name__)}"


# --- distributions -----------------------------------------------------------------------------------------

FAMILIES: Dict[str, type] = {}
"""Every declarable family by class name (`"Normal"` -> `Normal`), subclasses included as they are defined."""


class Distribution(_Declared):
    """Base of every declared family: a signature and a network or parameters, giving torch distributions.

    Subclasses set `family` (the torch class), `params` (groups of alternative parameter names, exactly one of
    each group required: `(("probs", "logits"),)`), `has_rsample`, `discrete` and `elementwise` (whether the
    default event dimensions with a network are 1 or 0; see the module docstring).
    """

    family: ClassVar[Optional[type]] = None
    params: ClassVar[Tuple[Tuple[str, ...], ...]] = ()
    has_rsample: ClassVar[bool] = False
    discrete: ClassVar[bool] = False
    elementwise: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            FAMILIES[cls.__name__] = cls

    def __init__(self, signature: str, net: Optional[Callable] = None, *, event_dims: Optional[int] = None,
                 shape: Optional[Sequence[int]] = None, **params: Any):
        super().__init__(signature, net)
        kind = type(self).__name__
        whole = (0, len(signature))
        allowed = [name for group in self.params for name in group]
        for name in params:
            if name not in allowed:
                raise FormulaCheckError(f"{kind} {signature}: unknown parameter {name!r}; {kind} takes "
                                        f"{self._expected()}", signature, whole)
        for group in self.params:
            present = [name for name in group if name in params]
            if len(present) > 1:
                raise FormulaCheckError(f"{kind} {signature}: give only one of {' or '.join(group)}",
                                        signature, whole)
            if not present and net is None:
                raise FormulaCheckError(f"{kind} {signature}: missing parameter {' or '.join(group)}; give "
                                        f"net= or the parameters {self._expected()}", signature, whole)
        if net is None and self.given_names:
            raise FormulaCheckError(f"{kind} {signature}: it is conditioned on {', '.join(self.given_names)}, "
                                    "so it needs net= to map them to its parameters", signature,
                                    _spans(self.signature.given, signature))
        if shape is not None:
            try:
                shape = torch.Size(shape if isinstance(shape, Sequence) else (shape,))
            except TypeError:
                raise FormulaCheckError(f"{kind} {signature}: shape= must be a tuple of sizes, got {shape!r}",
                                        signature, whole) from None
        self.shape = shape
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
        if shape is not None:
            self._expand_to(shape)
        if net is None:
            batch_shape = self._probe().batch_shape
            default = len(batch_shape)
        else:
            batch_shape = None
            default = len(shape) if shape is not None else int(self.elementwise)
        if event_dims is None:
            event_dims = default
        if not isinstance(event_dims, int) or event_dims < 0:
            raise FormulaCheckError(f"{kind} {signature}: event_dims must be a non-negative int, got "
                                    f"{event_dims!r}", signature, whole)
        if batch_shape is not None and event_dims > len(batch_shape):
            raise FormulaCheckError(f"{kind} {signature}: event_dims={event_dims} but its parameters have batch "
                                    f"shape {tuple(batch_shape)}; pass shape= to give the event shape",
                                    signature, whole)
        self.event_dims = event_dims
        self._checked_keys: Optional[Tuple[str, ...]] = None

    # -- declaration helpers --

    def _expected(self) -> str:
        return ", ".join(" or ".join(group) for group in self.params)

    def _expand_to(self, shape: torch.Size) -> None:
        """Broadcast fixed parameters to `shape` (+ the parameter's own event dims); buffers are stored so."""
        constraints = getattr(self.family, "arg_constraints", {})
        for name in self._fixed:
            if name not in constraints:  # e.g. temperature: not a batched parameter
                continue
            value = getattr(self, name)
            own = constraints[name].event_dim
            target = shape + value.shape[value.dim() - own:] if own else shape
            try:
                expanded = value.expand(target)
            except RuntimeError:
                raise FormulaCheckError(
                    f"{type(self).__name__} {self.signature_text}: parameter {name} of shape {tuple(value.shape)} "
                    f"does not broadcast to shape={tuple(shape)}", self.signature_text,
                    (0, len(self.signature_text))) from None
            if isinstance(value, nn.Parameter):
                if value.shape != target:
                    self._expand[name] = target
            else:
                setattr(self, name, expanded.clone())

    def _probe(self) -> D.Distribution:
        """Build the fixed-parameter distribution once with validation, so bad values fail at declaration."""
        try:
            with torch.no_grad():
                return self.family(**self._fixed_params(), validate_args=True)
        except (ValueError, RuntimeError) as error:
            raise FormulaCheckError(f"{type(self).__name__} {self.signature_text}: invalid parameters: "
                                    f"{str(error).splitlines()[0]}", self.signature_text,
                                    (0, len(self.signature_text))) from None

    # -- the compiler's interface --

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
        raise FormulaCheckError(
            f"{type(self).__name__} {self.signature_text}: its net must return a dict of parameters "
            f"({self._expected()}), got {type(out).__name__}", self.signature_text, (0, len(self.signature_text)))

    def _check_keys(self, keys: Tuple[str, ...]) -> None:
        allowed = {name for group in self.params for name in group}
        problems = []
        unknown = [k for k in keys if k not in allowed]
        if unknown:
            problems.append(f"unknown {', '.join(map(repr, unknown))}")
        twice = [k for k in keys if k in self._fixed]
        if twice:
            problems.append(f"{', '.join(twice)} also given as fixed parameters")
        have = set(keys) | set(self._fixed)
        for group in self.params:
            present = [name for name in group if name in have]
            if not present:
                problems.append(f"missing {' or '.join(group)}")
            elif len(present) > 1:
                problems.append(f"more than one of {' or '.join(group)}")
        if problems:
            raise FormulaCheckError(
                f"{type(self).__name__} {self.signature_text}: its net returned keys {list(keys)}: "
                f"{'; '.join(problems)}; expected {self._expected()}",
                self.signature_text, (0, len(self.signature_text)))

    def condition(self, *given_values: torch.Tensor) -> D.Distribution:
        """The torch distribution given the conditioning values in declared order (event dims reinterpreted)."""
        if len(given_values) != len(self.given_names):
            raise FormulaInputError(
                f"{self.signature_text}: condition takes {len(self.given_names)} values "
                f"({', '.join(self.given_names) or 'none'}), got {len(given_values)}",
                self.signature_text, (0, len(self.signature_text)))
        params = self._fixed_params() if self._fixed else {}
        if self.net is not None:
            out = self._net_params(self._call_net(given_values))
            params = {**params, **out} if params else out
        try:
            dist = self.family(**params, validate_args=False)
        except (ValueError, RuntimeError) as error:
            raise self._shape_error(params, error) from None
        if self.shape is not None and self.net is not None:
            n = len(self.shape)
            if n and tuple(dist.batch_shape[len(dist.batch_shape) - n:]) != tuple(self.shape):
                raise self._shape_error(params, f"expected trailing shape {tuple(self.shape)}")
        if self.event_dims:
            if self.event_dims > len(dist.batch_shape):
                raise self._shape_error(params, f"need at least {self.event_dims} dims to reinterpret as the event")
            dist = D.Independent(dist, self.event_dims, validate_args=False)
        return dist

    def _shape_error(self, params: Mapping[str, Any], why: Any) -> FormulaInputError:
        shapes = ", ".join(f"{k} {tuple(getattr(v, 'shape', ()))}" for k, v in params.items())
        return FormulaInputError(f"{type(self).__name__} {self.signature_text}: parameters of shapes {shapes} do "
                                 f"not fit: {str(why).splitlines()[0]}", self.signature_text,
                                 (0, len(self.signature_text)))

    def enumerate_support(self, *given_values: torch.Tensor, expand: bool = True) -> torch.Tensor:
        """Every value of a discrete distribution: `[n, *batch_shape, *event_shape]` (batch dims of size 1 when
        `expand=False`); a multi-element event enumerates the joint support (up to 65536 values)."""
        if not self.discrete:
            raise FormulaCheckError(f"{type(self).__name__} {self.signature_text}: its support cannot be "
                                    "enumerated (not a discrete family)", self.signature_text,
                                    (0, len(self.signature_text)))
        dist = self.condition(*given_values)
        if not isinstance(dist, D.Independent):
            return dist.enumerate_support(expand=expand)
        base, inner_dims = dist.base_dist, dist.reinterpreted_batch_ndims
        support = base.enumerate_support(expand=False)
        k = support.shape[0]
        values = support.reshape((k,) + tuple(base.event_shape))
        inner = tuple(base.batch_shape[len(base.batch_shape) - inner_dims:])
        m = math.prod(inner)
        if k ** m > _ENUMERATION_LIMIT:
            raise FormulaCheckError(f"{type(self).__name__} {self.signature_text}: its event of shape "
                                    f"{tuple(dist.event_shape)} has {k}^{m} values, too many to enumerate",
                                    self.signature_text, (0, len(self.signature_text)))
        labels = torch.arange(k, device=values.device)
        index = torch.cartesian_prod(*[labels] * m).reshape(k ** m, m)
        joint = values[index].reshape((k ** m,) + inner + tuple(base.event_shape))
        outer = tuple(dist.batch_shape)
        joint = joint.reshape((k ** m,) + (1,) * len(outer) + tuple(dist.event_shape))
        return joint.expand((k ** m,) + outer + tuple(dist.event_shape)) if expand else joint

    # -- the user's interface --

    def sample(self, sample_shape: Sequence[int] = (), **inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """`{variable: draw}` given the conditions by name; reparameterised (differentiable) where possible."""
        given = self._gather(inputs, self.given_names, "sample")
        dist = self.condition(*given)
        shape = torch.Size((sample_shape,) if isinstance(sample_shape, int) else sample_shape)
        value = dist.rsample(shape) if self.has_rsample else dist.sample(shape)
        return {self.var_names[0]: value}

    def log_prob(self, **values: torch.Tensor) -> torch.Tensor:
        """The log-density of the variable given the conditions, all by name, summed over event dims."""
        args = self._gather(values, self.var_names + self.given_names, "log_prob")
        return self.condition(*args[1:]).log_prob(args[0])

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

    family = D.Normal
    params = (("loc",), ("scale",))
    has_rsample = True


class Laplace(Distribution):
    """Laplace `(loc, scale)`; elementwise: default event_dims 1 with a net."""

    family = D.Laplace
    params = (("loc",), ("scale",))
    has_rsample = True


class Bernoulli(Distribution):
    """Bernoulli over {0, 1} from `probs` or `logits`; elementwise (default event_dims 1 with a net); no
    rsample, so expectations over it use a score-function estimator; enumerable."""

    family = D.Bernoulli
    params = (("probs", "logits"),)
    discrete = True


class Categorical(Distribution):
    """A label in {0..C-1} from `probs`/`logits` of shape [..., C]; a sample is an integer, so default
    event_dims 0; enumerable."""

    family = D.Categorical
    params = (("probs", "logits"),)
    discrete = True
    elementwise = False


class OneHotCategorical(Distribution):
    """A one-hot vector of length C from `probs`/`logits`; torch's event shape is already (C,), so default
    event_dims 0; enumerable."""

    family = D.OneHotCategorical
    params = (("probs", "logits"),)
    discrete = True
    elementwise = False


class Beta(Distribution):
    """Beta on (0, 1) from `concentration1` (alpha) and `concentration0` (beta); elementwise: default event_dims 1."""

    family = D.Beta
    params = (("concentration1",), ("concentration0",))
    has_rsample = True


class Gamma(Distribution):
    """Gamma from `concentration` and `rate`; elementwise: default event_dims 1 with a net."""

    family = D.Gamma
    params = (("concentration",), ("rate",))
    has_rsample = True


class Dirichlet(Distribution):
    """Dirichlet over the simplex from `concentration` [..., C]; torch's event shape is (C,): default event_dims 0."""

    family = D.Dirichlet
    params = (("concentration",),)
    has_rsample = True
    elementwise = False


class RelaxedBernoulli(Distribution):
    """Concrete / Gumbel-sigmoid relaxation of a Bernoulli: `temperature` and `probs`/`logits`; reparameterised;
    elementwise: default event_dims 1 with a net. Give the temperature as a fixed parameter or from the net."""

    family = D.RelaxedBernoulli
    params = (("temperature",), ("probs", "logits"))
    has_rsample = True


class RelaxedCategorical(Distribution):
    """Gumbel-softmax relaxation of a one-hot categorical: `temperature` and `probs`/`logits` [..., C];
    reparameterised; torch's event shape is (C,): default event_dims 0."""

    family = D.RelaxedOneHotCategorical
    params = (("temperature",), ("probs", "logits"))
    has_rsample = True
    elementwise = False


class Deterministic(Distribution):
    """A point mass at the net's output (`Deterministic("f(h|x)", net=f)`) or at a fixed `value`.

    The net may return the tensor itself or `{"value": tensor}`. A draw is the value (gradients flow into the
    net), `log_prob` is 0 (see `formula.delta`); elementwise: default event_dims 1 with a net.
    """

    family = Delta
    params = (("value",),)
    has_rsample = True

    def _wrap_output(self, out: Any) -> Mapping[str, torch.Tensor]:
        if isinstance(out, torch.Tensor):
            return {"value": out}
        return super()._wrap_output(out)


class Data(Distribution):
    """The empirical distribution of the batch, `Data("p_data(x)")` or `Data("p_data(x,y)")`: the only family
    over several variables. Sampling it returns the batch itself; it has no density, no net and no parameters.
    """

    family = None
    has_rsample = True  # a draw is the data: no parameters, so no score-function term is ever needed
    _multiple_vars = True

    def __init__(self, signature: str):
        _Declared.__init__(self, signature, None)
        if self.given_names:
            raise FormulaCheckError(f"Data {signature}: the data distribution has no conditions", signature,
                                    _spans(self.signature.given, signature))
        self.shape = None
        self.event_dims = 0
        self._fixed = ()
        self._expand = {}

    def _no_density(self, what: str) -> FormulaCheckError:
        return FormulaCheckError(f"Data {self.signature_text}: the empirical distribution of the batch has no "
                                 f"{what}; use it only to sample, as in E_{{{self.signature_text}}}[...]",
                                 self.signature_text, (0, len(self.signature_text)))

    def condition(self, *given_values: torch.Tensor) -> D.Distribution:
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
        raise self._no_density("enumerable support")

    def extra_repr(self) -> str:
        return self.signature_text


# --- functions ---------------------------------------------------------------------------------------------


class Function(_Declared):
    """A deterministic network used as a function inside formulas: `Function("D(x)", net=Discriminator())`.

    Its arguments are the signature's variables then its conditions, in declared order (`T(x,z)`: x, z);
    `D(x_batch)` or `D(x=x_batch)` calls the net (by keyword when the names allow, like a distribution's net).
    """

    _multiple_vars = True

    def __init__(self, signature: str, net: Callable):
        super().__init__(signature, net)
        if net is None:
            raise FormulaCheckError(f"Function {signature}: needs net=, the network it stands for", signature,
                                    (0, len(signature)))
        self.arg_names = self.var_names + self.given_names

    def _net_arg_names(self) -> Tuple[str, ...]:
        return tuple(var_text(v) for v in self.signature.vars + self.signature.given)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The net's value at the arguments, given in declared order or by name."""
        if kwargs:
            if args:
                raise FormulaInputError(f"{self.signature_text}: pass the arguments all by position or all by "
                                        "name", self.signature_text, (0, len(self.signature_text)))
            args = tuple(self._gather(kwargs, self.arg_names, "call"))
        if len(args) != len(self.arg_names):
            raise FormulaInputError(f"{self.signature_text}: takes {len(self.arg_names)} arguments "
                                    f"({', '.join(self.arg_names)}), got {len(args)}", self.signature_text,
                                    (0, len(self.signature_text)))
        return self._call_net(args)

    def extra_repr(self) -> str:
        net = self._net_repr()
        return f"{self.signature_text}, {net}" if net else self.signature_text


from . import kl_rules as _kl  # noqa: E402,F401  (registers our closed-form KL pairs with torch)
