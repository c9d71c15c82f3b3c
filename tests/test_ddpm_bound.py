"""DDPM's variational bound written as the paper writes it (Ho et al. 2020, eq. 5): `L_T + \\sum_{t=2}^{T} L_{t-1} +
L_0` with x_t defined from x_0 and the noise (and used at t = 1 as x_1), each L_{t-1} the closed-form KL between the
forward posterior and the reverse process, L_0 the reverse process's log-density of x_0 at step 1; it equals the
closed forms by hand at the same noise."""

import math

import torch
from torch import distributions as D

import formula as fm
from formula.families.diffusion import DiffusionPosterior, DiffusionReverse, linear_betas
from test_diffusion import _kl_by_hand

T, DIM, B = 4, 2, 5
BOUND = r"""x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon
\mathbb{E}_{x_0}\left[D_{KL}(\mathcal{N}(\sqrt{\bar\alpha_T} x_0, (1 - \bar\alpha_T) I) \| \mathcal{N}(0, I))
 + \sum_{t=2}^{T} \mathbb{E}_{\epsilon}\left[D_{KL}(q(x_{t-1}|x_t, x_0, t) \| p_\theta(x_{t-1}|x_t, t))\right]
 - \mathbb{E}_{\epsilon}[\log p_\theta(x_0 | x_1, 1)]\right]"""


def _setup():
    torch.manual_seed(0)
    betas = linear_betas(T, 1e-3, 0.2).to(torch.get_default_dtype())
    net = torch.nn.Linear(DIM + 1, DIM)

    def eps(x, t):
        t = torch.as_tensor(t, device=x.device).to(x.dtype).expand(x.shape[0]).reshape(-1, 1)
        return net(torch.cat([x, t / T], -1))

    decls = [DiffusionPosterior("q(x_{t-1}|x_t, x_0, t)", betas), DiffusionReverse("p_theta(x_{t-1}|x_t, t)", eps, betas),
             fm.Schedule("alpha_bar", torch.cumprod(1 - betas, 0)), fm.Data("p_data(x_0)"),
             fm.Normal("p(epsilon)", loc=0.0, scale=1.0, shape=(DIM,))]
    return betas, net, eps, decls


def test_the_bound_equals_its_closed_forms_by_hand_at_the_same_noise():
    betas, net, eps, decls = _setup()
    objective = fm.compile(BOUND, decls)
    plan = objective.explain()
    assert plan.count("closed form [Normal || Normal]") == 2 and "sum over t = 2..T" in plan
    x_0 = torch.randn(B, DIM)
    torch.manual_seed(1)
    got = objective(x_0=x_0, T=T)
    torch.manual_seed(1)
    bar = torch.cumprod(1 - betas, 0)
    want = D.kl_divergence(D.Normal(bar[-1].sqrt() * x_0, (1 - bar[-1]).sqrt()), D.Normal(0.0, 1.0)).sum(-1)
    for t in range(2, T + 1):
        noise = D.Normal(torch.zeros(DIM), torch.ones(DIM)).rsample((B,))
        x_t = bar[t - 1].sqrt() * x_0 + (1 - bar[t - 1]).sqrt() * noise
        steps = torch.full((B,), t)
        with torch.no_grad():
            want = want + _kl_by_hand(x_t, x_0, steps, eps, betas, lambda k, var_q, beta: beta)
    noise = D.Normal(torch.zeros(DIM), torch.ones(DIM)).rsample((B,))
    x_1 = bar[0].sqrt() * x_0 + (1 - bar[0]).sqrt() * noise
    with torch.no_grad():  # eq. 11 at t = 1, variance beta_1
        mean = (x_1 - betas[0] / (1 - bar[0]).sqrt() * eps(x_1, 1)) / (1 - betas[0]).sqrt()
        want = want - D.Normal(mean, betas[0].sqrt()).log_prob(x_0).sum(-1)
    torch.testing.assert_close(got.detach(), want, rtol=1e-4, atol=1e-5)
    got.sum().backward()
    assert net.weight.grad.abs().sum() > 0  # the bound trains the noise predictor
    assert math.isfinite(float(got.detach().sum()))


def test_a_definition_used_at_its_own_variable_is_not_applied():
    """`x_0` in `x_t = \\sqrt{\\bar\\alpha_t} x_0 + ...` stays the data: a value that uses x_0 does not define it."""
    betas, _, _, decls = _setup()
    text = "x_t = \\sqrt{\\bar\\alpha_t} x_0 + \\sqrt{1 - \\bar\\alpha_t} \\epsilon\n\\mathbb{E}_{x_0}[\\|x_0\\|^2]"
    x_0 = torch.randn(B, DIM)
    torch.testing.assert_close(fm.compile(text, decls)(x_0=x_0), (x_0 ** 2).sum(-1))
