"""`fm.PlanarFlow`: K planar layers (Rezende & Mohamed 2015, eq. 10-12), for variational inference.

Zuko has no planar flow: this is the one transform formula writes itself. Each layer is
`f(z) = z + û h(wᵀz + b)` with `h = tanh`, and `log |det ∂f/∂z| = log |1 + ûᵀ h'(wᵀz + b) w|`; `û` is `u` moved
so that `wᵀû ≥ -1` (the paper's appendix A), which keeps every layer invertible.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PlanarFlow"]


class PlanarFlow(nn.Module):
    """`layers` planar layers on vectors of `features` elements, composed: `call_and_ladj(z)` gives the value and
    the log-determinant summed over the layers (zero layers: the identity)."""

    def __init__(self, features: int, layers: int, init_scale: float = 0.01):
        super().__init__()
        self.features, self.layers = features, layers
        self.u = nn.Parameter(init_scale * torch.randn(layers, features))
        self.w = nn.Parameter(init_scale * torch.randn(layers, features))
        self.b = nn.Parameter(torch.zeros(layers))

    def _u_hat(self) -> torch.Tensor:
        """u moved along w so that wᵀû = -1 + softplus(wᵀu) ≥ -1 (invertibility)."""
        wu = (self.w * self.u).sum(-1, keepdim=True)
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / (self.w.pow(2).sum(-1, keepdim=True) + 1e-12)

    def call_and_ladj(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """`(f_K ∘ ... ∘ f_1 (z), Σ_k log |1 + ûₖᵀ ψₖ(z_{k-1})|)`, the second over z's leading dimensions."""
        u_hat = self._u_hat()
        wu = (self.w * u_hat).sum(-1)  # wₖᵀûₖ for every layer at once
        ladj = z.new_zeros(z.shape[:-1])
        for w, u, b, c in zip(self.w.unbind(0), u_hat.unbind(0), self.b.unbind(0), wu.unbind(0)):
            h = torch.tanh(z @ w + b)
            # ûᵀψ(z) = h'(wᵀz + b) wᵀû with h' = 1 - h²; |1 + ûᵀψ| > 0 since wᵀû ≥ -1 (eps: h' may round to 1)
            ladj = ladj + torch.log(torch.abs(1 + (1 - h * h) * c) + 1e-12)
            z = torch.addcmul(z, h.unsqueeze(-1), u)
        return z, ladj

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.call_and_ladj(z)[0]

    def extra_repr(self) -> str:
        return f"features={self.features}, layers={self.layers}"
