"""The Gaussian diffusion of DDPM (Ho et al. 2020) as declarations: the forward process's posterior
q(x_{t-1} | x_t, x_0) and the learned reverse process p_theta(x_{t-1} | x_t), both Normal with diagonal covariance,
so that the variational bound's `KL(q(x_{t-1}|x_t, x_0) || p_theta(x_{t-1}|x_t))` is closed form and
`fm.Ancestral` samples by the reverse process.

With beta_1..beta_T, alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s (eqs. 6-7 and 11 of the paper):

    q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I),  mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0
                                                         + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
                                                  beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t
    p_theta(x_{t-1} | x_t) = N(1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)), sigma_t^2 I)

with sigma_t^2 = beta_t (`variance="beta"`, the paper's default) or beta~_t (`"posterior"`). beta~_1 is 0 (x_0 is
known given x_1); as in the authors' code the posterior's variance at t = 1 is beta~_2 (clipped), so that every
q is a proper density. The time step t is a condition of both (`q(x_{t-1} | x_t, x_0, t)`, `p(x_{t-1} | x_t, t)`),
an integer tensor in 1..T, one per example.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import torch
import torch.distributions as D
from torch import nn

from ..errors import FormulaCheckError, FormulaError
from .protocol import Capabilities, Declaration, capabilities_of

__all__ = ["linear_betas", "DiffusionPosterior", "DiffusionReverse"]


def linear_betas(steps: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """The paper's linear schedule beta_1..beta_T (float64 `[T]`; the declarations keep the default dtype)."""
    return torch.linspace(start, end, steps, dtype=torch.float64, device="cpu")  # numbers, not a model's tensor


class _Diffusion(Declaration):
    """A declaration over a schedule: beta, alpha, abar and abar_{t-1} as buffers `[T]`, looked up at t in 1..T."""

    conditions: ClassVar[int] = 0  # how many conditions the signature names (t last)

    def __init__(self, signature: str, betas: Sequence[float]):
        super().__init__(signature)
        if len(self.given_names) != self.conditions:
            raise FormulaCheckError(f"{type(self).__name__} {signature}: takes {self.conditions} conditions "
                                    f"({self._expected()}), got {len(self.given_names)}", signature, self._whole())
        # the schedule is computed on the CPU (a tensor given on a device is copied there), then placed on the
        # default device like any module's buffers (the meta device under `with torch.device("meta")`)
        if torch.is_tensor(betas) and betas.device.type == "meta":
            raise FormulaCheckError(f"{type(self).__name__} {signature}: betas= has no values (a meta tensor); "
                                    "give numbers or a CPU tensor", signature, self._whole())
        betas = torch.as_tensor(betas, dtype=torch.float64, device="cpu")
        if betas.dim() != 1 or len(betas) < 2 or not ((betas > 0) & (betas < 1)).all():
            raise FormulaCheckError(f"{type(self).__name__} {signature}: betas= must be T >= 2 numbers in (0, 1)",
                                    signature, self._whole())
        alpha_bar = torch.cumprod(1 - betas, 0)
        prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        posterior = (1 - prev) / (1 - alpha_bar) * betas
        posterior[0] = posterior[1]  # beta~_1 = 0: clipped, see the module docstring
        dtype = torch.get_default_dtype()
        for name, value in (("betas", betas), ("alpha_bar", alpha_bar), ("alpha_bar_prev", prev),
                            ("posterior_variance", posterior)):
            self.register_buffer(name, value.to(dtype=dtype, device=torch.get_default_device()))
        self.steps = len(betas)

    def _expected(self) -> str:
        raise NotImplementedError

    @property
    def capabilities(self) -> Capabilities:
        """A Normal's (closed-form KL and entropy; pathwise draws)."""
        return capabilities_of(D.Normal, label="Normal")

    def at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The schedule `name` at steps t (integers 1..T, `[n]` or `[n, 1]`), shaped to broadcast over `like`."""
        if not torch.is_tensor(t):  # a sum index (\sum_{t=2}^{T}): one step for every example
            t = torch.full((1,), int(t), device=like.device)
        t = t.reshape(-1)
        if t.is_floating_point():
            t = t.round()
        t = t.long()
        checkable = t.numel() and t.device.type != "meta" and not torch.compiler.is_compiling()
        if checkable and (int(t.min()) < 1 or int(t.max()) > self.steps):
            raise self._input_error(f"t must be an integer in 1..{self.steps}, got values in "
                                    f"{int(t.min())}..{int(t.max())}")
        value = getattr(self, name).to(like.dtype)[t - 1]
        return value.reshape((-1,) + (1,) * (like.dim() - 1))

    def _normal(self, loc: torch.Tensor, variance: torch.Tensor) -> D.Distribution:
        return D.Independent(D.Normal(loc, variance.sqrt().expand_as(loc), validate_args=False),
                             loc.dim() - 1, validate_args=False)


class DiffusionPosterior(_Diffusion):
    """`fm.DiffusionPosterior("q(x_{t-1}|x_t, x_0, t)", betas)`: the forward process's posterior (eqs. 6-7)."""

    conditions = 3

    def _expected(self) -> str:
        return "x_t, x_0, t"

    def condition(self, *given: torch.Tensor, validate: bool = False) -> D.Distribution:
        """N(mu~_t(x_t, x_0), beta~_t I) for the conditions (x_t, x_0, t) in declared order."""
        self._check_count(given)
        x_t, x_0, t = given
        prev, bar = self.at("alpha_bar_prev", t, x_t), self.at("alpha_bar", t, x_t)
        beta = self.at("betas", t, x_t)
        loc = prev.sqrt() * beta / (1 - bar) * x_0 + (1 - beta).sqrt() * (1 - prev) / (1 - bar) * x_t
        return self._normal(loc, self.at("posterior_variance", t, x_t))


class DiffusionReverse(_Diffusion):
    """`fm.DiffusionReverse("p_theta(x_{t-1}|x_t, t)", eps, betas)`: the reverse process parameterised by the
    noise predictor `eps(x_t, t)` (a `fm.Function` or any module or callable), eq. 11."""

    conditions = 2
    VARIANCES: ClassVar[tuple] = ("beta", "posterior")

    def __init__(self, signature: str, eps: Callable, betas: Sequence[float], *, variance: str = "beta"):
        super().__init__(signature, betas)
        if not callable(eps):
            raise FormulaCheckError(f"DiffusionReverse {signature}: eps must be a fm.Function, a module or a "
                                    f"callable (x_t, t) -> noise, got {type(eps).__name__}", signature, self._whole())
        if variance not in self.VARIANCES:
            raise FormulaCheckError(f"DiffusionReverse {signature}: variance= must be one of {self.VARIANCES}, "
                                    f"got {variance!r}", signature, self._whole())
        self.eps = eps  # a module becomes a submodule
        self.variance = variance

    def _expected(self) -> str:
        return "x_t, t"

    def mean(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps(x_t, t)) / sqrt(alpha_t)."""
        try:
            noise = self.eps(x_t, t)
        except FormulaError:
            raise
        except (RuntimeError, ValueError, TypeError) as error:
            raise self._net_error(self.eps, self.given_names, (x_t, t), error) from None
        beta, bar = self.at("betas", t, x_t), self.at("alpha_bar", t, x_t)
        return (x_t - beta / (1 - bar).sqrt() * noise) / (1 - beta).sqrt()

    def condition(self, *given: torch.Tensor, validate: bool = False) -> D.Distribution:
        """N(mu_theta(x_t, t), sigma_t^2 I) for the conditions (x_t, t)."""
        self._check_count(given)
        x_t, t = given
        name = "betas" if self.variance == "beta" else "posterior_variance"
        return self._normal(self.mean(x_t, t), self.at(name, t, x_t))

    def extra_repr(self) -> str:
        return f"{self.signature_text}, T={self.steps}, variance={self.variance!r}"
