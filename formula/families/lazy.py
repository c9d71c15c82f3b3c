"""`LazyDistribution`: any module whose `forward(*conditions)` returns a `torch.distributions.Distribution`.

The zuko pattern as a declaration: `fm.LazyDistribution("q(z|x)", module)` holds the module (its parameters
train, move and save with the objective) and `condition(x)` returns whatever it returns: a mixture, a
low-rank Gaussian, a normalizing flow. It is the base of declarations built over such libraries.

Capabilities (reparameterised, enumerable, ...) are read from a distribution the module returns, so they must
be known before an objective is compiled; they come from, in this order:

1. `capabilities=`, given by the caller (a subclass that knows its distributions, e.g. a flow);
2. a probe at declaration: `example=` (one batch of the conditions, by name or in declared order), run once
   under `torch.no_grad()` with the module in eval mode (so batch-norm statistics do not move);
3. for an unconditional module (`p(z)`), a probe with no inputs the first time they are asked for;
4. the first `condition()` call.

Otherwise asking for them is a `FormulaCheckError` saying to pass `example=`. Every later call checks, for the
cost of one `type()` comparison, that the module returns the same class of distribution it was read from.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.distributions as D
from torch import nn

from ..errors import FormulaCheckError
from . import validation
from .protocol import Capabilities, Declaration, capabilities_of
from .signatures import keywords_for

__all__ = ["LazyDistribution"]


class LazyDistribution(Declaration):
    """A declaration over `module`, whose `forward(*conditions)` returns a torch distribution.

    `event_dims` reinterprets that many rightmost batch dimensions of the returned distribution as its event
    (as `torch.distributions.Independent`); `example` and `capabilities` are described in the module docstring.
    """

    def __init__(self, signature: str, module: Callable, *, event_dims: int = 0,
                 example: Union[Mapping[str, torch.Tensor], Sequence[torch.Tensor], None] = None,
                 capabilities: Optional[Capabilities] = None):
        super().__init__(signature)
        if not callable(module):
            raise FormulaCheckError(f"{type(self).__name__} {signature}: the module must be an nn.Module or a "
                                    f"callable returning a torch distribution, got {type(module).__name__}",
                                    signature, self._whole())
        if not isinstance(event_dims, int) or isinstance(event_dims, bool) or event_dims < 0:
            raise FormulaCheckError(f"{type(self).__name__} {signature}: event_dims must be a non-negative int, "
                                    f"got {event_dims!r}", signature, self._whole())
        if capabilities is not None and not isinstance(capabilities, Capabilities):
            raise FormulaCheckError(f"{type(self).__name__} {signature}: capabilities= must be a "
                                    f"fm.Capabilities, got {type(capabilities).__name__}", signature, self._whole())
        self.module = module  # an nn.Module becomes a submodule
        self.event_dims = event_dims
        self._keywords = keywords_for(module, self.given_names, type(self).__name__, signature)
        self._capabilities = capabilities
        self._returns: Optional[type] = None  # the class of distribution the capabilities were read from
        if example is not None:
            self._probe(self._example_values(example))

    # -- capabilities --

    @property
    def capabilities(self) -> Capabilities:
        """Read from a distribution the module returned (see the module docstring for when one is known)."""
        if self._capabilities is None:
            if self.given_names:
                raise FormulaCheckError(
                    f"{type(self).__name__} {self.signature_text}: its capabilities are read from the distribution "
                    f"its module returns, and it has not returned one yet; pass example={{"
                    f"{', '.join(repr(n) + ': ...' for n in self.given_names)}}} (one batch of its conditions) "
                    "or capabilities=fm.Capabilities(...)", self.signature_text, self._whole())
            self._probe(())
        return self._capabilities

    def _example_values(self, example: Any) -> Tuple[Any, ...]:
        if isinstance(example, Mapping):
            return tuple(self._gather(example, self.given_names, "example"))
        values = tuple(example) if isinstance(example, (tuple, list)) else (example,)
        self._check_count(values)
        return values

    def _probe(self, values: Sequence[Any]) -> None:
        """Call the module once without gradients, in eval mode, to read the capabilities."""
        modes = [(m, m.training) for m in self.module.modules()] if isinstance(self.module, nn.Module) else []
        try:
            for m, _ in modes:
                m.training = False
            with torch.no_grad():
                self.condition(*values)
        finally:
            for m, mode in modes:
                m.training = mode

    def _read(self, dist: Any) -> None:
        """Record what the first returned distribution can do; check it against `capabilities=` if given."""
        if not isinstance(dist, D.Distribution):
            raise FormulaCheckError(f"{type(self).__name__} {self.signature_text}: its module must return a "
                                    f"torch.distributions.Distribution, got {type(dist).__name__}",
                                    self.signature_text, self._whole())
        found = capabilities_of(dist)
        declared = self._capabilities
        if declared is not None:
            wrong = [name for name in ("reparameterised", "enumerable", "has_density", "can_sample")
                     if getattr(declared, name) and not getattr(found, name)]
            if wrong:
                raise FormulaCheckError(f"{type(self).__name__} {self.signature_text}: capabilities= says "
                                        f"{', '.join(wrong)}, but its module returned a {type(dist).__name__}, "
                                        "which is not", self.signature_text, self._whole())
        else:
            self._capabilities = found
        self._returns = type(dist)

    # -- the protocol --

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """What the module returns for the conditioning values in declared order (event dims reinterpreted);
        `validate=True` checks every parameter of it, nested distributions included."""
        self._check_count(given_values)
        dist = self._call_module(self.module, self._keywords, self.given_names, given_values)
        if type(dist) is not self._returns:
            if self._returns is not None:
                raise self._input_error(f"its module returned a {type(dist).__name__}, but its capabilities were "
                                        f"read from a {self._returns.__name__}; return one class of distribution")
            self._read(dist)
        if validate:
            validation.check_distribution(self._where(), dist)
        if self.event_dims:
            if self.event_dims > len(dist.batch_shape):
                raise self._input_error(f"event_dims={self.event_dims} but its module returned batch shape "
                                        f"{list(dist.batch_shape)}")
            dist = D.Independent(dist, self.event_dims, validate_args=False)
        return dist

    def extra_repr(self) -> str:
        parts = [self.signature_text, f"event_dims={self.event_dims}"]
        if not isinstance(self.module, nn.Module):
            parts.append(f"module={getattr(self.module, '__qualname__', type(self.module).__name__)}")
        return ", ".join(parts)

