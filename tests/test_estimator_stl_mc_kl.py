"""`gradient="stl"` also sticks the landing in a Monte Carlo KL (`analytic_kl=False`): the score of log q at its own
draw is stopped there too (and in a Monte Carlo entropy, by the same code), so the encoder's gradient is the path derivative alone."""

import torch

import formula as fm

SIGMA = 0.5


def _grad(gradient, text):
    theta = torch.nn.Parameter(torch.tensor([0.3]))
    q = fm.Normal("q(z)", loc=theta, scale=SIGMA)
    p = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(1,))
    obj = fm.compile(text, [q, p], analytic_kl=False, gradient=gradient)
    torch.manual_seed(0)
    obj(batch_size=1).sum().backward()
    torch.manual_seed(0)
    eps = torch.randn(1)
    return theta.grad, theta.detach() + SIGMA * eps, eps


def test_stl_stops_the_own_score_in_a_monte_carlo_kl():
    standard, z, eps = _grad(None, "KL(q(z) || p(z))")
    stl, z2, _ = _grad("stl", "KL(q(z) || p(z))")
    torch.testing.assert_close(z, z2)
    # d/dtheta [log q(theta + s eps; theta) - log p(theta + s eps)]: log q's total derivative is 0, so the standard
    # gradient is z; STL keeps the path term of log q, -(z - theta) / s^2 = -eps / s, beside it
    torch.testing.assert_close(standard, z)
    torch.testing.assert_close(stl, z - eps / SIGMA)

