"""gradient="nvil": the score function with a learned baseline b(x) is unbiased (exact gradient by enumeration)
whatever the baseline, and the baseline regresses the learning signal within the objective's own steps."""

import itertools

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

import formula as fm
from bernoulli_toy import D, X1, W, Mean, Table
from formula.estimators.nvil import Baseline

ELBO_TERM = "E_{q(z)}[log p(x|z)]"


def model(bias=0.0):
    torch.manual_seed(0)
    net = nn.Linear(D, 1)
    with torch.no_grad():
        net.bias.fill_(bias)
    q, p = fm.Bernoulli("q(z)", net=Table()), fm.Normal("p(x|z)", net=Mean())
    return q, fm.compile(ELBO_TERM, [q, p, Baseline("b(x)", net=net)], gradient="nvil"), net


def exact_gradient(logits):
    zs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))
    q = Independent(Bernoulli(logits=logits), 1)
    value = (q.log_prob(zs).exp() * Independent(Normal(zs @ W, 1.0), 1).log_prob(X1)).sum()
    (g,) = torch.autograd.grad(value, [logits])
    return g


def test_nvil_is_unbiased_against_enumeration_for_any_baseline():
    for bias in (0.0, -5.0):
        q, obj, _ = model(bias)
        assert "NVIL" in obj.explain()
        torch.manual_seed(1)
        grads = torch.stack([torch.autograd.grad(obj(x=X1.expand(2000, D)).mean(), [q.net.logits])[0]
                             for _ in range(10)])
        se = grads.std(0) / 10 ** 0.5
        exact = exact_gradient(q.net.logits)
        assert ((grads.mean(0) - exact).abs() < 4.5 * se + 1e-4).all(), (bias, grads.mean(0), exact, se)


def test_the_baseline_learns_the_signal_in_the_objectives_steps():
    q, obj, net = model(bias=-8.0)
    assert any(p is net.bias for p in obj.parameters())
    opt = torch.optim.SGD([net.weight, net.bias], lr=0.05)
    x = X1.expand(256, D)

    def error():
        with torch.no_grad():
            torch.manual_seed(3)
            return ((obj(x=x) - net(x).squeeze(-1)) ** 2).mean().item()

    before = error()
    for _ in range(60):
        opt.zero_grad()
        (-obj(x=x).mean()).backward()  # maximised: the baseline still descends its regression error
        opt.step()
    assert error() < 0.2 * before, (before, error())
