"""Estimators against closed forms: score-function gradients, Monte Carlo KL, stable importance sampling."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

import formula as fm
from models import X, Z, Gaussian, Logits, binary, vae


class Table(torch.nn.Module):
    """Learnable logits for a Bernoulli q(z) over D bits (no conditions)."""

    def __init__(self, d):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor([0.3, -0.8, 1.1][:d]))

    def forward(self):
        return {"logits": self.logits}


class Mean(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[1.5, -0.5, 0.2], [0.1, 0.7, -1.2], [0.4, 0.4, 0.9]])[:d, :d])

    def forward(self, z):
        return {"loc": z @ self.w, "scale": torch.ones_like(z)}


def test_score_function_gradient_matches_enumeration():
    d = 3
    torch.manual_seed(0)
    q = fm.Bernoulli("q(z)", net=Table(d))
    p = fm.Normal("p(x|z)", net=Mean(d))
    obj = fm.compile("E_{q(z)}[log p(x|z)]", [q, p])
    x = torch.tensor([[0.5, -1.0, 2.0]])
    params = list(q.parameters())
    # Exact: sum over the 8 values of z of q(z) log p(x|z).
    zs = torch.tensor([[(i >> j) & 1 for j in range(d)] for i in range(2 ** d)], dtype=torch.float32)
    qd = Independent(Bernoulli(logits=q.net()["logits"]), 1)
    exact = (qd.log_prob(zs).exp() * Independent(Normal(zs @ p.net.w, 1.0), 1).log_prob(x)).sum()
    (g_exact,) = torch.autograd.grad(exact, params)
    # Estimate: many independent draws of the same example, through the compiled surrogate.
    n = 20000
    torch.manual_seed(1)
    value = obj(x=x.expand(n, d))
    (g_est,) = torch.autograd.grad(value.mean(), params)
    torch.testing.assert_close(value.mean(), exact, atol=0.08, rtol=0.02)
    # Standard error of the surrogate gradient is ~ 0.02 here; 5 sigma.
    torch.testing.assert_close(g_est, g_exact, atol=0.1, rtol=0.05)


def test_score_function_categorical_matches_enumeration():
    torch.manual_seed(0)

    class Probs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.tensor([0.2, -0.4, 0.9, 0.0]))

        def forward(self):
            return {"logits": self.logits}

    q = fm.Categorical("q(y)", net=Probs())
    f = fm.Function("f(y)", net=lambda y: (y.float() - 1.5) ** 2)
    obj = fm.compile("E_{q(y)}[f(y)]", [q, f])
    probs = torch.softmax(q.net.logits, 0)
    exact = (probs * (torch.arange(4.0) - 1.5) ** 2).sum()
    (g_exact,) = torch.autograd.grad(exact, [q.net.logits])
    assert obj.inputs == ()
    torch.manual_seed(2)
    n = 20000
    obj = fm.compile("E_{q(y)}[f(y)]", [q, f], samples=n)  # no data: one example, n draws
    value = obj()
    (g_est,) = torch.autograd.grad(value.mean(), [q.net.logits])
    torch.testing.assert_close(value.mean(), exact, atol=0.05, rtol=0.02)
    torch.testing.assert_close(g_est, g_exact, atol=0.05, rtol=0.05)


def test_monte_carlo_kl_matches_closed_form():
    q, p, prior = vae()
    x = binary(4)
    closed = fm.compile("KL(q(z|x)||p(z))", [q, p, prior])
    mc = fm.compile("KL(q(z|x)||p(z))", [q, p, prior], analytic_kl=False, samples=20000)
    assert "closed form" in closed.explain() and "Monte Carlo" in mc.explain()
    torch.manual_seed(0)
    exact, estimate = closed(x=x), mc(x=x)
    torch.testing.assert_close(estimate, exact, atol=0.05, rtol=0.03)


def test_monte_carlo_kl_for_a_pair_without_closed_form():
    torch.manual_seed(0)
    q = fm.Laplace("q(z|x)", net=Gaussian(X))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    obj = fm.compile("KL(q(z|x)||p(z))", [q, prior], samples=20000)
    x = binary(3)
    params = q.net(x=x)
    # Laplace || Normal: E_q[log q - log p] in closed form.
    loc, b = params["loc"], params["scale"]
    exact = (-torch.log(2 * b) - 1 + 0.5 * math.log(2 * math.pi) + 0.5 * (loc ** 2 + 2 * b ** 2)).sum(-1)
    torch.manual_seed(1)
    value = obj(x=x)
    torch.testing.assert_close(value, exact, atol=0.05, rtol=0.03)


IWAE = r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k|x)}\right]"


def test_iwae_is_finite_with_log_densities_near_minus_1e4():
    q, p, prior = vae()
    with torch.no_grad():
        p.net.net[-1].weight.mul_(0).add_(1.0)
        p.net.net[-1].bias.fill_(-3000.0)  # log p(x|z) ~ -1e4 for x = 1
    obj = fm.compile(IWAE, [q, p, prior])
    x = torch.ones(4, X)
    value = obj(x=x, K=50)
    assert torch.isfinite(value).all()
    assert (value < -5e3).all()
    (g,) = torch.autograd.grad(value.sum(), [p.net.net[-1].bias])
    assert torch.isfinite(g).all()


def test_iwae_bound_increases_with_k_on_a_trained_toy_model():
    torch.manual_seed(0)
    q, p, prior = vae()
    data = torch.cat([binary(64, seed=s) * 0 + torch.tensor([1, 1, 1, 0, 0, 0.0]) for s in range(2)]
                     + [binary(64, seed=3) * 0 + torch.tensor([0, 0, 0, 1, 1, 1.0])])
    elbo = fm.compile("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))", [q, p, prior])
    opt = torch.optim.Adam(elbo.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        (-elbo(x=data).mean()).backward()
        opt.step()
    obj = fm.compile(IWAE, [q, p, prior])
    torch.manual_seed(1)
    with torch.no_grad():
        bounds = [torch.stack([obj(x=data, K=k).mean() for _ in range(20)]).mean().item() for k in (1, 5, 50)]
    assert bounds[0] < bounds[1] < bounds[2], bounds
