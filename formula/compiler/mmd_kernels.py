"""Kernels of the maximum mean discrepancy, by name: the subscript of `\\mathrm{MMD}_{imq}` picks one.

Built in: `rbf` (the default, also spelled `gaussian` or `k`: a Gaussian kernel whose bandwidth is the median
heuristic unless one is given) and `imq` (inverse multiquadratic, C / (C + |a - b|^2) with C = 2 * dim unless
given, as in Tolstikhin et al.'s WAE for a unit-variance prior). `register_kernel("rbf1", RBF(bandwidth=1.0))`
adds a named kernel with fixed settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 for `[n, D]` and `[m, D]` sets: `[n, m]`, never negative (clamped after the expansion)."""
    sq = (a * a).sum(-1)[:, None] + (b * b).sum(-1)[None, :] - 2.0 * a @ b.transpose(0, 1)
    return sq.clamp_min(0.0)


class Kernel:
    """A kernel on sample sets: `gram(d2, pooled_d2)` from squared distances; `label` is what `explain()` prints."""

    label = "kernel"

    def gram(self, d2: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scale(self, pooled: torch.Tensor, dim: int) -> torch.Tensor:
        """The kernel's scale for this batch (from the pooled squared distances, detached), shared by all 3 grams."""
        raise NotImplementedError


@dataclass(frozen=True)
class RBF(Kernel):
    """exp(-|a - b|^2 / (2 h^2)); h^2 is the median of the pooled squared distances (median heuristic, no gradient
    through it) unless `bandwidth=h` is given."""

    bandwidth: Optional[float] = None

    @property
    def label(self) -> str:
        how = "median heuristic" if self.bandwidth is None else f"bandwidth {self.bandwidth:g}"
        return f"Gaussian RBF kernel, {how}"

    def scale(self, pooled, dim):
        if self.bandwidth is not None:
            return pooled.new_tensor(float(self.bandwidth) ** 2)
        n = pooled.shape[0]
        off = pooled.detach()[~torch.eye(n, dtype=torch.bool, device=pooled.device)]
        return off.median().clamp_min(torch.finfo(pooled.dtype).tiny)

    def gram(self, d2, scale):
        return torch.exp(-d2 / (2.0 * scale))


@dataclass(frozen=True)
class IMQ(Kernel):
    """C / (C + |a - b|^2), C = 2 * dim * s^2 with s = `prior_scale` (1) unless `c=` is given."""

    c: Optional[float] = None
    prior_scale: float = 1.0

    @property
    def label(self) -> str:
        how = f"C = {self.c:g}" if self.c is not None else f"C = 2 * dim * {self.prior_scale:g}^2"
        return f"inverse multiquadratic kernel, {how}"

    def scale(self, pooled, dim):
        c = self.c if self.c is not None else 2.0 * dim * self.prior_scale ** 2
        return pooled.new_tensor(float(c))

    def gram(self, d2, scale):
        return scale / (scale + d2)


_KERNELS: Dict[str, Kernel] = {}
DEFAULT = "rbf"


def register_kernel(name: str, kernel: Kernel) -> Kernel:
    """Make `kernel` the one `\\mathrm{MMD}_{name}` uses (names are case-insensitive)."""
    _KERNELS[name.lower()] = kernel
    return kernel


def kernel_named(name: Optional[str]) -> Optional[Kernel]:
    """The kernel of a subscript (None: the default), or None if no kernel has that name."""
    return _KERNELS.get((name or DEFAULT).lower())


def known() -> str:
    return ", ".join(sorted(_KERNELS))


register_kernel("rbf", RBF())
register_kernel("gaussian", RBF())
register_kernel("k", RBF())  # \mathrm{MMD}_k: "the kernel k", the default
register_kernel("imq", IMQ())

__all__ = ["Kernel", "RBF", "IMQ", "register_kernel", "kernel_named", "squared_distances", "DEFAULT"]
