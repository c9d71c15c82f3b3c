"""Contract cases for explicit families and diffusion objectives (issue 11 items 4 and 5): DDPM's simple loss with a
noise schedule and draw statements, denoising score matching, a VAE whose decoder and prior are written as families,
and a KL with a family on the left -- each against hand-written PyTorch making the same draws in the same order."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal, kl_divergence

import formula as fm
from contract.cases import B, Declarations, Inputs, case
from formula.families.schedule import Schedule
from models import Gaussian, X, Z, binary
from test_compile_models import normal

STEPS, D = 8, 2
DDPM = (r"t \sim \mathcal{U}\{1, \ldots, T\}; \epsilon \sim \mathcal{N}(0, I); \mathbb{E}_{t, x_0, \epsilon}\left[\| "
        r"\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon, t) \|^2\right]")
DSM = (r"\mathbb{E}_{p_{data}(x)} \mathbb{E}_{\tilde x \sim \mathcal{N}(x, \sigma^2 I)}\left[\| s_\theta(\tilde x) + "
       r"(\tilde x - x) / \sigma^2 \|^2\right]")
GAUSSIAN_VAE = (r"\mathbb{E}_{q(z|x)}[\log \mathcal{N}(x \mid \mu_\theta(z), \sigma^2 I)] - "
                r"D_{KL}(q(z|x) \| \mathcal{N}(0, I))")
FAMILY_LEFT_KL = r"D_{KL}(\mathcal{N}(\mu_\phi(x), \sigma^2 I) \| p(z))"


class _EpsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Sequential(nn.Linear(D + 1, 16), nn.Tanh(), nn.Linear(16, D))

    def forward(self, x_t, t):
        return self.lin(torch.cat([x_t, (t.to(x_t.dtype) / STEPS)[:, None]], -1))


def _ddpm() -> Declarations:
    torch.manual_seed(0)
    alpha_bar = torch.cumprod(1 - torch.linspace(0.05, 0.5, STEPS), 0)
    return fm.Function(r"\epsilon_\theta(x_t, t)", net=_EpsNet()), Schedule("alpha_bar", alpha_bar), fm.Data(
        "p_data(x_0)")


def _ddpm_inputs() -> Inputs:
    return {"x_0": torch.randn(B, D, generator=torch.Generator().manual_seed(1)), "T": STEPS}


def _ddpm_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    eps_net, schedule, _ = decls
    x0 = inputs["x_0"]
    t = Categorical(logits=torch.zeros(STEPS, dtype=x0.dtype)).sample((B,)) + 1
    eps = torch.randn_like(x0)
    a = schedule.values[t - 1][:, None]
    return ((eps - eps_net.net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t)) ** 2).sum(-1)


def _dsm() -> Declarations:
    torch.manual_seed(0)
    return fm.Function(r"s_\theta(x)", net=nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, D))), fm.Data(
        "p_data(x)")


def _dsm_inputs() -> Inputs:
    return {"x": torch.randn(B, D, generator=torch.Generator().manual_seed(1)), "sigma": 0.5}


def _dsm_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    score, _ = decls
    x, s = inputs["x"], inputs["sigma"]
    xt = x + s * torch.randn_like(x)
    return ((score.net(xt) + (xt - x) / s ** 2) ** 2).sum(-1)


def _gaussian_vae() -> Declarations:
    torch.manual_seed(0)
    return fm.Normal("q(z|x)", net=Gaussian(X)), fm.Function(r"\mu_\theta(z)", net=nn.Linear(Z, X))


def _gaussian_inputs() -> Inputs:
    return {"x": binary(B), "sigma": 0.7}


def _gaussian_vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, mu = decls
    x = inputs["x"]
    qz = normal(q.net(x=x))
    z = qz.rsample()
    rec = Independent(Normal(mu.net(z), inputs["sigma"]), 1).log_prob(x)
    return rec - kl_divergence(qz, Independent(Normal(torch.zeros_like(qz.mean), 1.0), 1))


def _family_left() -> Declarations:
    torch.manual_seed(0)
    return fm.Function(r"\mu_\phi(x)", net=nn.Linear(X, Z)), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))


def _family_left_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    mu, _ = decls
    m = mu.net(inputs["x"])
    return kl_divergence(Independent(Normal(m, inputs["sigma"]), 1),
                         Independent(Normal(torch.zeros_like(m), 1.0), 1))


case("ddpm-simple", DDPM, inputs=_ddpm_inputs, draws=["t", "epsilon"], reference=_ddpm_ref)(_ddpm)
case("denoising-score-matching", DSM, inputs=_dsm_inputs, draws=[r"\tilde{x}"], reference=_dsm_ref)(_dsm)
case("vae-explicit-gaussian-decoder", GAUSSIAN_VAE, inputs=_gaussian_inputs, draws=["z"],
     reference=_gaussian_vae_ref)(_gaussian_vae)
case("kl-explicit-family-left", FAMILY_LEFT_KL, inputs=_gaussian_inputs, draws=[],
     reference=_family_left_ref)(_family_left)
