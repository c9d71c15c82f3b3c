"""`fm.Transform`: an invertible map declared as a function, whose log-determinant a formula can name.

    >>> import torch, formula as fm
    >>> f = fm.Transform("f(z)", fm.PlanarFlow(features=2, layers=4))
    >>> y, ladj = f.call_and_ladj(torch.zeros(3, 2))
    >>> y.shape, ladj.shape
    (torch.Size([3, 2]), torch.Size([3]))

In a formula, `f(z)` is the transformed value and `\\log \\left|\\det \\frac{\\partial f(z)}{\\partial z}\\right|`
its log-determinant (formula.check.jacobian). The log-determinant is the transform's own, found in this order:

1. `call_and_ladj(z)` (zuko transforms, `fm.PlanarFlow`, any module that has it): the value and the
   log-determinant from one pass;
2. `log_abs_det_jacobian(z, y)` (every `torch.distributions.Transform`);
3. otherwise (a plain network) the full Jacobian by `torch.autograd.functional.jacobian` and `slogdet`, for a
   variable of at most `max_jacobian_dims` elements: it costs one backward pass per element and assumes the map
   acts on each example on its own (no batch norm).

A zuko lazy transform (`zuko.flows.LazyTransform`, e.g. `zuko.flows.MaskedAutoregressiveTransform(2)`) is called
with no context to get its transform, so its parameters train; a `torch.distributions.Transform` instance is fixed
(its tensors are not parameters).
"""

from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import nn

from ..check import jacobian as _jacobian  # noqa: F401  (registers the check of log |det ∂f/∂z|)
from ..errors import FormulaCheckError
from .declarations import Function

__all__ = ["Transform", "MAX_JACOBIAN_DIMS", "autograd_log_abs_det"]

MAX_JACOBIAN_DIMS = 16  # the autograd fallback's limit: one backward pass per element of the variable


class _Lazy(nn.Module):
    """A zuko lazy transform applied without a context: `forward(z)` is the transform's value at z."""

    def __init__(self, lazy: nn.Module):
        super().__init__()
        self.lazy = lazy

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lazy()(z)

    def call_and_ladj(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.lazy().call_and_ladj(z)


def _is_lazy_transform(transform: Callable) -> bool:
    try:
        from zuko.lazy import LazyTransform
    except ImportError:  # pragma: no cover - zuko is a dependency
        return False
    return isinstance(transform, LazyTransform)


def _summed(ladj: torch.Tensor, z: torch.Tensor, lead: int) -> torch.Tensor:
    """The log-determinant per example: summed over whatever the transform left of the event dimensions."""
    if ladj.dim() > lead:
        ladj = ladj.flatten(lead).sum(-1)
    return ladj.expand(z.shape[:lead]) if ladj.dim() < lead else ladj


class Transform(Function):
    """An invertible map of one variable, `fm.Transform("f(z)", transform)`: `f(z)` in a formula is its value and
    `\\log |\\det \\partial f(z) / \\partial z|` its log-determinant (see the module docstring for which).

    `transform`: a zuko lazy transform, a `torch.distributions.Transform` (zuko's included), a module with
    `call_and_ladj(z)` such as `fm.PlanarFlow`, or any network of z (autograd Jacobian, small variables only).
    """

    def __init__(self, signature: str, transform: Callable, *, max_jacobian_dims: int = MAX_JACOBIAN_DIMS):
        net = _Lazy(transform) if _is_lazy_transform(transform) else transform
        super().__init__(signature, net)
        if len(self.var_names) != 1 or self.given_names:
            raise FormulaCheckError(f"Transform {signature}: a transform is a map of one variable, f(z)",
                                    signature, self._whole())
        self.max_jacobian_dims = max_jacobian_dims

    def call_and_ladj(self, z: torch.Tensor, lead: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
        """`(f(z), log |det ∂f/∂z|)`; z is `[*lead dims, *event]` and the log-determinant `[*lead dims]`."""
        net = self.net
        if hasattr(net, "call_and_ladj"):
            y, ladj = self._call_module(net.call_and_ladj, None, self.var_names, (z,))
            return y, _summed(ladj, z, lead)
        y = self(z)
        if hasattr(net, "log_abs_det_jacobian"):
            return y, _summed(net.log_abs_det_jacobian(z, y), z, lead)
        return y, autograd_log_abs_det(self, z, lead, self.max_jacobian_dims)

    def log_abs_det_jacobian(self, z: torch.Tensor, lead: int = 1) -> torch.Tensor:
        """`log |det ∂f(z)/∂z|` per example, `[*z.shape[:lead]]`."""
        return self.call_and_ladj(z, lead)[1]


def autograd_log_abs_det(fn: Function, z: torch.Tensor, lead: int, max_dims: int = MAX_JACOBIAN_DIMS) -> torch.Tensor:
    """`log |det ∂fn(z)/∂z|` per example for a declared function `fn` of a small variable, by autograd
    (differentiable: create_graph), assuming fn acts on each example on its own."""
    size = z[(0,) * lead].numel() if z.dim() > lead else 1
    if size > max_dims:
        name = fn.var_names[0]
        raise fn._input_error(
            f"its Jacobian by autograd needs one backward pass per element of {name}, and {name} has {size} > "
            f"max_jacobian_dims={max_dims} elements: declare it with fm.Transform and a transform that has its own "
            "log-determinant (a zuko transform, fm.PlanarFlow, a module with call_and_ladj)")
    flat = z.reshape(-1, size)

    def summed_over_examples(v: torch.Tensor) -> torch.Tensor:
        return fn(v.reshape(z.shape)).reshape(-1, size).sum(0)

    jac = torch.autograd.functional.jacobian(summed_over_examples, flat, create_graph=True)  # [out, N, in]
    return torch.linalg.slogdet(jac.permute(1, 0, 2)).logabsdet.reshape(z.shape[:lead])
