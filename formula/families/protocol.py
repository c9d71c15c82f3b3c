"""The declaration protocol: what the checker and the compiler may ask of any declared name.

A declaration is an `nn.Module` with a signature (`q(z|x)`) and a `kind` (`DeclKind`). A distribution follows
zuko's lazy-distribution pattern: `condition(*given_values)` returns a transient `torch.distributions`
object, and its `capabilities` (reparameterised, discrete, enumerable, has a density, can be sampled, the torch
family used to look up closed forms) are read from what it returns, per instance, by `capabilities_of`.
`formula.families.declarations` (Normal, Bernoulli, ..., Data, Function) is one implementation;
`formula.families.lazy.LazyDistribution` wraps any module returning a torch distribution.

    >>> import torch, formula as fm
    >>> q = fm.LazyDistribution("q(z|x)", lambda x: torch.distributions.Normal(x, 1.0), event_dims=1,
    ...                         example={"x": torch.zeros(2, 3)})
    >>> q.capabilities.reparameterised, q.capabilities.family.__name__, q.kind.name
    (True, 'Normal', 'DISTRIBUTION')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.distributions as D
from torch import nn

from ..check.kinds import DeclKind
from ..errors import FormulaCheckError, FormulaError, FormulaInputError
from ..text.printing import to_ascii as var_text
from . import enumeration, validation
from .signatures import parse_declaration, spans

__all__ = ["Capabilities", "capabilities_of", "Declaration", "DeclKind", "shapes_text", "dtype_hint"]


@dataclass(frozen=True)
class Capabilities:
    """What a declared distribution can do, read from the torch distribution it returns (hashable)."""

    reparameterised: bool  # rsample gives pathwise gradients
    discrete: bool  # its support is discrete (integers, one-hot, booleans)
    enumerable: bool  # its support can be listed (enumerate_support), jointly over a multi-element event
    has_density: bool  # log_prob is defined
    can_sample: bool  # sample (or rsample) is defined
    family: Optional[type]  # the torch.distributions class for closed-form KL/entropy look-up, or None
    label: str  # a short name for plans and messages, e.g. "Normal"


_NET_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, AttributeError)  # a net given wrong inputs (a number: .to)


def _unwrap(dist: Union[D.Distribution, type]) -> Union[D.Distribution, type]:
    """The base of nested `Independent`s (an instance), or the class itself."""
    while isinstance(dist, D.Independent):
        dist = dist.base_dist
    return dist


def _flag(owner: Any, name: str) -> bool:
    """A boolean capability flag of a distribution or class; a class-level property or a missing one is False."""
    try:
        value = getattr(owner, name, False)
    except NotImplementedError:
        return False
    return value if isinstance(value, bool) else False


def _discrete(owner: Any) -> bool:
    try:
        return bool(owner.support.is_discrete)
    except (NotImplementedError, AttributeError):
        return False


def capabilities_of(dist: Union[D.Distribution, type], label: Optional[str] = None) -> Capabilities:
    """The capabilities of a torch distribution (an `Independent` read through to its base) or of a class."""
    base = _unwrap(dist)
    cls = base if isinstance(base, type) else type(base)
    reparameterised = _flag(dist, "has_rsample")
    has_density = cls.log_prob is not D.Distribution.log_prob
    can_sample = reparameterised or cls.sample is not D.Distribution.sample or cls.rsample is not D.Distribution.rsample
    return Capabilities(reparameterised=reparameterised, discrete=_discrete(base),
                        enumerable=_flag(base, "has_enumerate_support"), has_density=has_density,
                        can_sample=can_sample, family=cls, label=label or cls.__name__)


def shapes_text(names: Sequence[str], values: Sequence[Any]) -> str:
    """`x [5, 7], y [5]`: the names and shapes of inputs, for messages."""
    return ", ".join(f"{n} {list(getattr(v, 'shape', ()))}" if isinstance(v, torch.Tensor) else
                     f"{n} {type(v).__name__}" for n, v in zip(names, values))


def dtype_hint(parameters: Any, names: Sequence[str], values: Sequence[Any]) -> str:
    """When floating inputs and the parameters differ in dtype, say which and how to convert (else "")."""
    params = {p.dtype for p in parameters if p.is_floating_point()}
    odd = [f"{n} is {str(a.dtype).replace('torch.', '')}" for n, a in zip(names, values)
           if isinstance(a, torch.Tensor) and a.is_floating_point() and params and a.dtype not in params]
    if not odd:
        return ""
    want = str(sorted(params, key=str)[0]).replace("torch.", "")
    return f" ({', '.join(odd)} but the net's parameters are {want}: convert with .to(torch.{want}), e.g. .float())"


class Declaration(nn.Module):
    """Base of every declaration: a parsed signature, a kind, and the methods the compiler calls.

    Subclasses set `kind`, and for distributions implement `capabilities` and `condition`; `sample`,
    `log_prob`, `enumerate_support` and `validate_value` then work from `condition`.
    """

    kind: ClassVar[DeclKind] = DeclKind.DISTRIBUTION
    _multiple_vars: ClassVar[bool] = False  # only Data and Function may range over several variables
    data_hint: ClassVar[str] = ""  # said when observed data is outside the support

    def __init__(self, signature: str):
        super().__init__()
        kind = type(self).__name__
        node = parse_declaration(signature, kind)
        self.signature_text = signature
        self.parsed = node
        self.signature = signature  # the text as declared; `parsed` is its node
        self.name = node.full_name
        self.var_names = tuple(var_text(v) for v in node.vars)
        self.given_names = tuple(var_text(v) for v in node.given)
        if len(node.vars) > 1 and not self._multiple_vars:
            raise FormulaCheckError(
                f"{kind} {signature}: a distribution is over one variable, got {', '.join(self.var_names)}; "
                "declare one distribution per variable and write the joint as a factorisation",
                signature, spans(node.vars, signature))

    # -- the protocol --

    @property
    def capabilities(self) -> Capabilities:
        """What the distribution it returns can do (see `Capabilities`)."""
        raise NotImplementedError

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """The torch distribution given the conditioning values in declared order; `validate=True` checks every
        parameter against its constraint and raises a FormulaInputError naming it."""
        raise NotImplementedError

    def enumerate_support(self, *given_values: torch.Tensor, expand: bool = True) -> torch.Tensor:
        """Every value of a discrete distribution, `[n, *batch_shape, *event_shape]` (batch dims of size 1 when
        `expand=False`); a multi-element event enumerates the joint support (up to 65536 values)."""
        if not self.capabilities.enumerable:
            raise FormulaCheckError(f"{type(self).__name__} {self.signature_text}: its support cannot be "
                                    "enumerated (not a discrete family)", self.signature_text, self._whole())
        return enumeration.enumerate_joint(self.condition(*given_values), expand, self._where())

    def validate_value(self, name: str, value: Any, dist: Optional[D.Distribution] = None) -> None:
        """Raise a FormulaInputError if observed `value` of variable `name` is outside the support; `dist` is the
        conditioned distribution it is scored under (needed where the support depends on the parameters)."""
        if name not in self.var_names:
            raise self._input_error(f"validate_value: {name} is not a variable of it (its variables: "
                                    f"{', '.join(self.var_names)})")
        if dist is None and not self.given_names:
            dist = self.condition()
        support = self._data_support(dist)
        if support is not None:
            validation.check_value(self._where(), name, value, support, self.data_hint)

    def _data_support(self, dist: Optional[D.Distribution]) -> Optional[D.constraints.Constraint]:
        """The support observed data must lie in, elementwise where possible; None when unknown."""
        if dist is None:
            return None
        return validation.support_of(dist)

    # -- the user's interface --

    def sample(self, sample_shape: Sequence[int] = (), **inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """`{variable: draw}` given the conditions by name; reparameterised (differentiable) where possible."""
        given = self._gather(inputs, self.given_names, "sample")
        dist = self.condition(*given, validate=True)
        shape = torch.Size((sample_shape,) if isinstance(sample_shape, int) else sample_shape)
        draw = dist.rsample if self.capabilities.reparameterised else dist.sample
        try:
            value = draw(shape)
        except (RuntimeError, ValueError, NotImplementedError) as error:
            raise self._input_error(f"sample{list(shape)} failed: {str(error).splitlines()[0]}") from None
        return {self.var_names[0]: value}

    def log_prob(self, **values: torch.Tensor) -> torch.Tensor:
        """The log-density of the variable given the conditions, all by name, summed over event dims; the value is
        checked against the support first."""
        args = self._gather(values, self.var_names + self.given_names, "log_prob")
        dist = self.condition(*args[1:], validate=True)
        self.validate_value(self.var_names[0], args[0], dist)
        try:
            return dist.log_prob(args[0])
        except (RuntimeError, ValueError, IndexError) as error:
            shape = list(getattr(args[0], "shape", ()))
            raise self._input_error(
                f"log_prob: {self.var_names[0]} of shape {shape} does not fit the distribution's batch shape "
                f"{list(dist.batch_shape)} and event shape {list(dist.event_shape)}: "
                f"{str(error).splitlines()[0]}") from None

    # -- helpers for implementations --

    def _whole(self) -> Tuple[int, int]:
        return (0, len(self.signature_text))

    def _where(self) -> validation.Where:
        return validation.Where(type(self).__name__, self.signature_text)

    def _input_error(self, message: str) -> FormulaInputError:
        return FormulaInputError(f"{type(self).__name__} {self.signature_text}: {message}", self.signature_text,
                                 self._whole())

    def _gather(self, values: Mapping[str, Any], names: Tuple[str, ...], what: str) -> list:
        """The values of `names` from keyword arguments, with an input error naming what is missing or extra."""
        unknown = [k for k in values if k not in names]
        missing = [n for n in names if n not in values]
        if unknown or missing:
            parts = [f"missing {', '.join(missing)}"] if missing else []
            parts += [f"unknown {', '.join(unknown)}"] if unknown else []
            expected = ", ".join(names) if names else "nothing"
            raise FormulaInputError(f"{what} of {self.signature_text}: {'; '.join(parts)} (expected {expected})",
                                    self.signature_text, self._whole())
        return [values[n] for n in names]

    def _check_count(self, given_values: Sequence[Any]) -> None:
        if len(given_values) != len(self.given_names):
            raise FormulaInputError(
                f"{self.signature_text}: condition takes {len(self.given_names)} values "
                f"({', '.join(self.given_names) or 'none'}), got {len(given_values)}",
                self.signature_text, self._whole())

    def _call_module(self, net: Callable, keywords: Optional[Tuple[str, ...]], names: Sequence[str],
                     args: Sequence[Any]) -> Any:
        """`net(*args)`, by keyword when `keywords` is set; a torch error inside it is a FormulaInputError with
        the shapes it was given (a FormulaError from inside passes through)."""
        try:
            if keywords is not None:
                return net(**dict(zip(keywords, args)))
            return net(*args)
        except FormulaError:
            raise
        except _NET_ERRORS as error:
            raise self._net_error(net, names, args, error) from None

    def _net_error(self, net: Any, names: Sequence[str], args: Sequence[Any], error: Exception) -> FormulaInputError:
        """A failure inside the network, with the shapes it was given and, where known, what its first layer takes."""
        expected = ""
        if isinstance(net, nn.Module):
            first = next((m for m in net.modules() if isinstance(getattr(m, "in_features", None), int)), None)
            if first is not None:
                expected = f" (its first layer {type(first).__name__} takes {first.in_features} features)"
        given = shapes_text(names, args) or "no inputs"
        return self._input_error(f"its net failed on {given}{expected}: {str(error).splitlines()[0]}"
                                 f"{dtype_hint(net.parameters() if isinstance(net, nn.Module) else (), names, args)}")
