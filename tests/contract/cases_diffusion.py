"""Contract cases for the energy-based, diffusion and score-based objectives of issue 11 item 5 that
cases_explicit.py does not hold: the EBM's contrastive objective (negatives by a declared Langevin sampler), the
KL term of DDPM's variational bound between the forward posterior and the reverse process, and NCSN's sum over
noise levels -- each against hand-written PyTorch making the same draws in the same order."""

from __future__ import annotations

import math

import torch
from torch import nn

import formula as fm
from contract.cases import B, Declarations, Inputs, case
from contract.cases_explicit import _EpsNet  # the same noise predictor (STEPS, D as there)
from formula.families.diffusion import DiffusionPosterior, DiffusionReverse, linear_betas
from formula.families.energy import EnergyBased
from formula.families.schedule import Schedule
from formula.samplers import Langevin
from models import X, binary

EBM = r"\mathbb{E}_{p_{data}(x)}[\mathit{E}_\theta(x)] - \mathbb{E}_{p_\theta(x')}[\mathit{E}_\theta(x')]"
LANGEVIN_STEPS, LANGEVIN_EPS = 4, 0.05
DDPM_KL = r"D_{KL}(q(x_{t-1} | x_t, x_0, t) \| p_\theta(x_{t-1} | x_t, t))"
STEPS, D = 8, 2
NCSN = (r"\frac{1}{L} \sum_{i=1}^{L} \frac{1}{2} \sigma_i^2 \mathbb{E}_{p_{data}(x)} \mathbb{E}_{\tilde x \sim "
        r"\mathcal{N}(x, \sigma_i^2 I)}\left[\| s_\theta(\tilde x, \sigma_i) + (\tilde x - x) / \sigma_i^2 \|^2\right]")
SIGMAS = (1.0, 0.5, 0.2)
NO_COMPILE = "the Langevin chain takes torch.autograd.grad of the energy inside the objective"


# --- the EBM -------------------------------------------------------------------------------------------------

def _ebm() -> Declarations:
    torch.manual_seed(0)
    energy = fm.Function(r"\mathit{E}_\theta(x)", net=nn.Sequential(nn.Linear(X, 8), nn.SiLU(), nn.Linear(8, 1)))
    sampler = Langevin(steps=LANGEVIN_STEPS, step_size=LANGEVIN_EPS)
    return energy, EnergyBased(r"p_\theta(x)", energy=energy, shape=(X,), sampler=sampler), fm.Data("p_data(x)")


def _ebm_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    energy, _, _ = decls
    x = inputs["x"]
    neg = torch.empty_like(x).uniform_(-1, 1)  # the sampler's fresh starts, then its steps
    for _ in range(LANGEVIN_STEPS):
        neg = neg.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy.net(neg).sum(), neg)
        neg = (neg - LANGEVIN_EPS * g + math.sqrt(2 * LANGEVIN_EPS) * torch.randn_like(neg)).detach()
    return energy.net(x).squeeze(-1) - energy.net(neg).squeeze(-1)


# --- DDPM's bound: one KL term ---------------------------------------------------------------------------------

def _ddpm_kl() -> Declarations:
    torch.manual_seed(0)
    betas = linear_betas(STEPS, 0.05, 0.5)
    eps = fm.Function(r"\epsilon_\theta(x_t, t)", net=_EpsNet())
    return (DiffusionPosterior("q(x_{t-1}|x_t, x_0, t)", betas),
            DiffusionReverse(r"p_\theta(x_{t-1}|x_t, t)", eps, betas), eps)


def _ddpm_kl_inputs() -> Inputs:
    g = torch.Generator().manual_seed(1)
    return {"x_t": torch.randn(B, D, generator=g), "x_0": torch.randn(B, D, generator=g),
            "t": torch.arange(B) % STEPS + 1}


def _ddpm_kl_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    """Eqs. 6-7 and 11 of Ho et al. (2020) written out, and the Gaussian KL in closed form."""
    q, _, eps = decls
    x_t, x_0, t = inputs["x_t"], inputs["x_0"], inputs["t"]
    betas = q.betas.to(x_t.dtype)
    bar = torch.cumprod(1 - betas, 0)
    prev = torch.cat([torch.ones_like(bar[:1]), bar[:-1]])
    b, a, ab, abp = (v[t - 1][:, None] for v in (betas, 1 - betas, bar, prev))
    mu_q = abp.sqrt() * b / (1 - ab) * x_0 + a.sqrt() * (1 - abp) / (1 - ab) * x_t
    var_post = (1 - prev) / (1 - bar) * betas
    var_q = torch.where(t == 1, var_post[1], var_post[t - 1])[:, None]
    mu_p = (x_t - b / (1 - ab).sqrt() * eps.net(x_t, t)) / a.sqrt()
    return (0.5 * torch.log(b / var_q) + (var_q + (mu_q - mu_p) ** 2) / (2 * b) - 0.5).sum(-1)


# --- DDPM's whole bound: L_T + sum_{t=2}^T L_{t-1} + L_0 ------------------------------------------------------

DDPM_BOUND = (r"x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon" "\n"
              r"\mathbb{E}_{x_0}\left[D_{KL}(\mathcal{N}(\sqrt{\bar\alpha_T} x_0, (1 - \bar\alpha_T) I) \| \mathcal{N}(0, I))"
              r" + \sum_{t=2}^{T} \mathbb{E}_{\epsilon}\left[" + DDPM_KL + r"\right]"
              r" - \mathbb{E}_{\epsilon}[\log p_\theta(x_0 | x_1, 1)]\right]")


class _EpsNetAnyStep(_EpsNet):
    def forward(self, x_t, t):  # t: [batch] when drawn, a number at a sum index or written as 1
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        return super().forward(x_t, t)


def _ddpm_bound() -> Declarations:
    torch.manual_seed(0)
    betas = linear_betas(STEPS, 0.05, 0.5)
    eps = fm.Function(r"\epsilon_\theta(x_t, t)", net=_EpsNetAnyStep())
    q = DiffusionPosterior("q(x_{t-1}|x_t, x_0, t)", betas)
    return (q, DiffusionReverse(r"p_\theta(x_{t-1}|x_t, t)", eps, betas), eps,
            Schedule("alpha_bar", q.alpha_bar), fm.Data("p_data(x_0)"),  # on the declarations' device and dtype
            fm.Normal(r"p(\epsilon)", loc=0.0, scale=1.0, shape=(D,)))


def _ddpm_bound_inputs() -> Inputs:
    return {"x_0": torch.randn(B, D, generator=torch.Generator().manual_seed(1)), "T": STEPS}


def _ddpm_bound_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    """L_T in closed form, then the KL at t = 2..T and L_0 at t = 1, each with its own noise, in that order."""
    q, p, eps = decls[:3]
    x_0 = inputs["x_0"]
    bar = torch.cumprod(1 - q.betas.to(x_0.dtype), 0)
    total = torch.distributions.kl_divergence(torch.distributions.Normal(bar[-1].sqrt() * x_0, (1 - bar[-1]).sqrt()),
                                              torch.distributions.Normal(torch.zeros_like(x_0), 1.0)).sum(-1)
    for t in range(2, STEPS + 1):
        x_t = bar[t - 1].sqrt() * x_0 + (1 - bar[t - 1]).sqrt() * torch.randn_like(x_0)
        steps = torch.full((x_0.shape[0],), t, device=x_0.device)
        total = total + _ddpm_kl_ref((q, p, eps), {"x_t": x_t, "x_0": x_0, "t": steps})
    x_1 = bar[0].sqrt() * x_0 + (1 - bar[0]).sqrt() * torch.randn_like(x_0)
    betas = q.betas.to(x_0.dtype)
    mean = (x_1 - betas[0] / (1 - bar[0]).sqrt() * eps.net(x_1, 1)) / (1 - betas[0]).sqrt()
    return total - torch.distributions.Normal(mean, betas[0].sqrt()).log_prob(x_0).sum(-1)


# --- NCSN ------------------------------------------------------------------------------------------------------

class _Score(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Sequential(nn.Linear(D + 1, 16), nn.Tanh(), nn.Linear(16, D))

    def forward(self, x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return self.lin(torch.cat([x, s.log()], -1)) / s


def _ncsn() -> Declarations:
    torch.manual_seed(0)
    return (fm.Function(r"s_\theta(\tilde x, \sigma)", net=_Score()), fm.Data("p_data(x)"),
            Schedule("sigma", torch.tensor(SIGMAS)))


def _ncsn_inputs() -> Inputs:
    return {"x": torch.randn(B, D, generator=torch.Generator().manual_seed(1)), "L": len(SIGMAS)}


def _ncsn_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    score, _, _ = decls
    x, total = inputs["x"], 0
    for s in SIGMAS:  # i = 1..L in order, one draw each
        noisy = x + s * torch.randn_like(x)
        total = total + 0.5 * s ** 2 * ((score.net(noisy, s) + (noisy - x) / s ** 2) ** 2).sum(-1)
    return total / len(SIGMAS)


case("ebm-contrastive", EBM, inputs=lambda: {"x": binary(B)}, draws=["x'"], reference=_ebm_ref,
     skip={"compiled": NO_COMPILE, "fullgraph": NO_COMPILE})(_ebm)
case("ddpm-bound-kl", DDPM_KL, inputs=_ddpm_kl_inputs, draws=[], reference=_ddpm_kl_ref)(_ddpm_kl)
case("ddpm-bound", DDPM_BOUND, inputs=_ddpm_bound_inputs, draws=["epsilon"], reference=_ddpm_bound_ref)(_ddpm_bound)
case("ncsn-sum-over-sigmas", NCSN, inputs=_ncsn_inputs, draws=[r"\tilde{x}"], reference=_ncsn_ref)(_ncsn)
