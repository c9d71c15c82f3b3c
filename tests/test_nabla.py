"""`\\nabla` built in: gradients through autograd with create_graph, against torch.autograd.grad on hand-written
critics (first and second order), with respect to an input and to a drawn variable."""

import pytest
import torch
from torch import nn

import formula as fm

from models import Gaussian, Logits, X, Z, binary

HAT_X = r"\hat{x}"  # the input's name as the formula spells it


def critic(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(X, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 1))
    return net, fm.Function("D(x)", net=net)


def hand_gradient(net, x):
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xr).sum(), xr, create_graph=True)
    return g


def test_the_gradient_penalty_matches_autograd_and_trains_the_critic():
    net, d = critic()
    obj = fm.compile(r"(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2", [d])
    x = torch.randn(9, X)
    value = obj(**{HAT_X: x})
    expected = (hand_gradient(net, x).norm(dim=-1) - 1) ** 2
    torch.testing.assert_close(value, expected)
    assert "autograd, create_graph" in obj.explain()

    value.mean().backward()  # second order: d/dtheta of a function of dD/dx
    weights = [p for p in net.parameters()][:-1]  # the last bias does not change dD/dx
    got = [p.grad.clone() for p in weights]
    net.zero_grad()
    expected.mean().backward()
    for a, e in zip(got, [p.grad for p in weights]):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, e)


def test_a_value_of_the_critic_and_its_gradient_in_one_formula():
    """D(x) is computed before the gradient in the same call: the gradient still differentiates a fresh graph."""
    net, d = critic(1)
    obj = fm.compile(r"D(x) - \lambda \|\nabla_x D(x)\|^2", [d])
    x = torch.randn(5, X)
    got = obj(x=x, **{"lambda": 10.0})
    g = hand_gradient(net, x)
    torch.testing.assert_close(got, net(x).squeeze(-1) - 10.0 * (g * g).sum(-1))


def test_an_input_that_already_requires_grad_keeps_its_graph():
    """An interpolate computed outside from a generator's output: the penalty's gradient reaches the generator."""
    net, d = critic(2)
    gen = nn.Linear(3, X)
    obj = fm.compile(r"\|\nabla_{\hat x} D(\hat x)\|^2", [d])
    x_hat = gen(torch.randn(4, 3))
    obj(**{HAT_X: x_hat}).sum().backward()
    assert gen.weight.grad is not None and gen.weight.grad.abs().sum() > 0


def test_with_respect_to_a_drawn_variable():
    torch.manual_seed(0)
    q = fm.Normal("q(z|x)", net=Gaussian(X))
    p = fm.Bernoulli("p(x|z)", net=Logits(Z))
    obj = fm.compile(r"E_{q(z|x)}[\|\nabla_z \log p(x|z)\|^2]", [q, p])
    x = binary(6)
    torch.manual_seed(5)
    value = obj(x=x)
    torch.manual_seed(5)
    out = q.net(x)
    z = torch.distributions.Normal(out["loc"], out["scale"]).rsample()
    log_p = torch.distributions.Independent(torch.distributions.Bernoulli(logits=p.net(z)["logits"]), 1).log_prob(x)
    (g,) = torch.autograd.grad(log_p.sum(), z, create_graph=True)
    expected = (g * g).sum(-1)
    torch.testing.assert_close(value, expected)
    value.sum().backward()  # through the reparameterised draw to the encoder, and to the decoder (second order)
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in q.net.loc.parameters())
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in p.net.parameters() if t.dim() > 1)


def test_a_score_of_a_fixed_normal():
    p = fm.Normal("p(x)", loc=0.5, scale=2.0, shape=(X,))
    obj = fm.compile(r"\|\nabla_x \log p(x)\|^2", [p])
    x = torch.randn(4, X)
    torch.testing.assert_close(obj(x=x), (((x - 0.5) / 4.0) ** 2).sum(-1))


def test_a_draw_without_gradient_is_differentiated_as_a_leaf_and_restored():
    torch.manual_seed(0)
    prior = fm.Bernoulli("p(z)", probs=0.3, shape=(Z,))
    f = fm.Function("f(z)", net=nn.Sequential(nn.Linear(Z, 4), nn.Tanh(), nn.Linear(4, 1)))
    obj = fm.compile(r"E_{p(z)}[\|\nabla_z f(z)\|^2 + f(z)]", [prior, f])
    torch.manual_seed(2)
    value = obj(batch_size=5)
    torch.manual_seed(2)
    z = torch.bernoulli(torch.full((5, Z), 0.3))
    expected = (hand_gradient(f.net, z) ** 2).sum(-1) + f.net(z).squeeze(-1)
    torch.testing.assert_close(value, expected)


def test_errors_point_at_the_mistake():
    _, d = critic()
    with pytest.raises(fm.FormulaCheckError, match="theta does not appear"):
        fm.compile(r"\|\nabla_\theta D(x)\|^2", [d])
    with pytest.raises(fm.FormulaCheckError, match="several variables"):
        fm.compile(r"\nabla_{x, y} D(x)", [d])
    g = fm.Function("g(x)", net=nn.Linear(X, 3))
    with pytest.raises(fm.FormulaInputError, match="one number per example"):
        fm.compile(r"\|\nabla_x g(x)\|^2", [g])(x=torch.randn(2, X))


class Interpolate(nn.Module):
    """WGAN-GP's interpolate, a point mass: epsilon x + (1 - epsilon) x_tilde."""

    def forward(self, x, x_tilde, epsilon):
        return {"value": epsilon * x + (1 - epsilon) * x_tilde}


def test_the_wgan_gp_penalty_with_the_interpolate_declared():
    """Until a definition line can be written, the interpolate is a declared point mass and epsilon ~ U[0, 1] a
    Beta(1, 1): the penalty matches the hand-written one at the same epsilon and trains the critic."""
    net, d = critic(3)
    eps = fm.Beta("p(epsilon)", concentration1=1.0, concentration0=1.0, shape=(1,))
    interp = fm.Deterministic(r"q(u | x, \tilde x, epsilon)", net=Interpolate())
    obj = fm.compile(r"E_{p(\epsilon)}[E_{q(u | x, \tilde x, \epsilon)}[(\|\nabla_{u} D(u)\|_2 - 1)^2]]",
                     [eps, interp, d])
    x, x_tilde = torch.randn(6, X), torch.randn(6, X)
    torch.manual_seed(7)
    value = obj(x=x, **{r"\tilde{x}": x_tilde})
    torch.manual_seed(7)
    e = torch.distributions.Beta(torch.ones(1), torch.ones(1)).rsample((6,))
    expected = (hand_gradient(net, e * x + (1 - e) * x_tilde).norm(dim=-1) - 1) ** 2
    torch.testing.assert_close(value, expected)
    value.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if p.dim() > 1)
