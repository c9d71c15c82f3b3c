"""DDPM's declarations (formula/families/diffusion.py): the variational bound's KL terms between the forward
posterior q(x_{t-1}|x_t, x_0) and the reverse process p_theta(x_{t-1}|x_t), compiled from the formula, equal the
closed forms written by hand from the paper's equations; ancestral sampling by the reverse process with the exact
noise predictor of Gaussian data returns that Gaussian."""

from __future__ import annotations

import math

import pytest
import torch

import formula as fm
from formula.families.diffusion import DiffusionPosterior, DiffusionReverse, linear_betas
from formula.samplers import Ancestral

T = 10
KL_TEXT = "KL(q(x_{t-1}|x_t, x_0, t) || p_theta(x_{t-1}|x_t, t))"


def _schedule_by_hand(betas):
    """alpha_bar_t and alpha_bar_{t-1} for t = 1..T, one product at a time."""
    bars, running = [], 1.0
    for b in betas.tolist():
        running *= 1 - b
        bars.append(running)
    return torch.tensor(bars), torch.tensor([1.0] + bars[:-1])


def _kl_by_hand(x_t, x_0, t, eps, betas, sigma2):
    """sum_d KL(N(mu~, beta~) || N(mu_theta, sigma2_t)) from eqs. 6-7 and 11 of Ho et al. (2020)."""
    bar, prev = _schedule_by_hand(betas)
    out = []
    for i in range(len(t)):
        k = int(t[i]) - 1
        beta, a, ab, abp = float(betas[k]), 1 - float(betas[k]), float(bar[k]), float(prev[k])
        mu_q = math.sqrt(abp) * beta / (1 - ab) * x_0[i] + math.sqrt(a) * (1 - abp) / (1 - ab) * x_t[i]
        var_q = (1 - abp) / (1 - ab) * beta if k > 0 else (1 - float(prev[1])) / (1 - float(bar[1])) * float(betas[1])
        mu_p = (x_t[i] - beta / math.sqrt(1 - ab) * eps(x_t[i:i + 1], t[i:i + 1])[0]) / math.sqrt(a)
        var_p = sigma2(k, var_q, beta)
        out.append((0.5 * math.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / (2 * var_p) - 0.5).sum())
    return torch.stack(out)


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_the_bound_s_kl_terms_equal_the_closed_forms_by_hand(variance):
    torch.manual_seed(0)
    betas = linear_betas(T, 1e-3, 0.2)
    net = torch.nn.Linear(3, 2)
    eps = lambda x, t: net(torch.cat([x, t.reshape(-1, 1).float() / T], -1))  # noqa: E731
    q = DiffusionPosterior("q(x_{t-1}|x_t, x_0, t)", betas)
    p = DiffusionReverse("p_theta(x_{t-1}|x_t, t)", eps, betas, variance=variance)
    objective = fm.compile(KL_TEXT, [q, p])
    assert "closed form [Normal || Normal]" in objective.explain()
    x_t, x_0, t = torch.randn(T, 2), torch.randn(T, 2), torch.arange(1, T + 1)
    got = objective(x_t=x_t, x_0=x_0, t=t)
    sigma2 = (lambda k, var_q, beta: beta) if variance == "beta" else (lambda k, var_q, beta: var_q)
    with torch.no_grad():
        want = _kl_by_hand(x_t, x_0, t, eps, betas.float(), sigma2)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    got.sum().backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0  # the KL trains eps_theta


def test_ancestral_sampling_with_the_exact_noise_of_gaussian_data_returns_the_gaussian():
    torch.manual_seed(0)
    betas = linear_betas(100, 1e-4, 0.1)
    reverse = DiffusionReverse("p_theta(x_{t-1}|x_t, t)", lambda x, t: x, betas)
    bar = reverse.alpha_bar
    # data N(0, I): x_t ~ N(0, I) for every t, and E[eps | x_t] = sqrt(1 - abar_t) x_t
    reverse.eps = lambda x, t: (1 - bar[t - 1]).sqrt()[:, None] * x
    x = Ancestral(steps=100).run(torch.randn(4000, 2), reverse)
    assert torch.allclose(x.mean(0), torch.zeros(2), atol=0.06)
    assert torch.allclose(x.var(0), torch.ones(2), rtol=0.1)


def test_t_outside_the_schedule_is_an_input_error():
    betas = linear_betas(T)
    q = DiffusionPosterior("q(x_{t-1}|x_t, x_0, t)", betas)
    with pytest.raises(fm.FormulaInputError, match=r"t must be an integer in 1\.\.10"):
        q.condition(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0, 3]))


@pytest.mark.parametrize("make, match", [
    (lambda: DiffusionPosterior("q(x_{t-1}|x_t, t)", linear_betas(T)), "takes 3 conditions"),
    (lambda: DiffusionReverse("p(x_{t-1}|x_t, t)", lambda x, t: x, [0.5]), "betas= must be"),
    (lambda: DiffusionReverse("p(x_{t-1}|x_t, t)", lambda x, t: x, linear_betas(T), variance="learned"),
     "variance= must be"),
    (lambda: DiffusionReverse("p(x_{t-1}|x_t, t)", 3, linear_betas(T)), "eps must be"),
])
def test_bad_declarations_are_check_errors(make, match):
    with pytest.raises(fm.FormulaCheckError, match=match):
        make()
