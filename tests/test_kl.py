"""Our closed-form KL registrations (formula.families.kl_rules), each checked against a Monte Carlo estimate."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.distributions as D
from torch.distributions import kl_divergence

import formula.families.declarations as fd
from formula.families.delta import Delta
from formula.families.kl_rules import closed_form, closed_form_known

N = 50_000  # Monte Carlo draws: standard error under 0.01 on these small KLs, tolerance 0.05-0.1


def monte_carlo_kl(p, q, n=N):
    """E_p[log p - log q], averaged over n draws (log p of a point mass is 0 by convention)."""
    x = p.sample((n,))
    return (p.log_prob(x) - q.log_prob(x)).mean(0)


def test_independent_against_a_bare_elementwise_prior():
    torch.manual_seed(0)
    q = D.Independent(D.Normal(torch.randn(4, 3), torch.rand(4, 3) + 0.5), 1)
    prior = D.Normal(torch.tensor(0.0), torch.tensor(1.0))  # a scalar prior, event_dims 0
    kl = kl_divergence(q, prior)
    assert kl.shape == (4,)
    expected = kl_divergence(q, D.Independent(D.Normal(torch.zeros(4, 3), torch.ones(4, 3)), 1))
    torch.testing.assert_close(kl, expected)
    torch.testing.assert_close(kl, monte_carlo_kl(q.base_dist, prior.expand((4, 3))).sum(-1), atol=0.05, rtol=0.02)
    # and the other way round, a Laplace pair, through the same rule
    lap = D.Laplace(torch.tensor(0.3), torch.tensor(1.2))
    reverse = kl_divergence(lap, q)
    assert reverse.shape == (4,)
    torch.testing.assert_close(reverse, monte_carlo_kl(lap.expand((4, 3)), q.base_dist).sum(-1),
                               atol=0.05, rtol=0.02)


def test_independent_with_different_reinterpreted_dims():
    torch.manual_seed(0)
    p = D.Independent(D.Normal(torch.randn(2, 4, 3), torch.rand(2, 4, 3) + 0.5), 2)
    q = D.Independent(D.Normal(torch.randn(4, 3), torch.rand(4, 3) + 0.5), 1)
    kl = kl_divergence(p, q)
    assert kl.shape == (2,)
    torch.testing.assert_close(kl, monte_carlo_kl(p, D.Independent(q.base_dist.expand((2, 4, 3)), 2)),
                               atol=0.1, rtol=0.02)
    # equal dims give torch's own value
    same = D.Independent(D.Normal(torch.zeros(2, 4, 3), torch.ones(2, 4, 3)), 2)
    torch.testing.assert_close(kl_divergence(p, same), kl_divergence(p.base_dist, same.base_dist).sum((-1, -2)))


def test_delta_against_anything_is_minus_the_log_density():
    torch.manual_seed(0)
    value = torch.randn(5, 3)
    point = D.Independent(Delta(value), 1)
    prior = D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1)
    kl = kl_divergence(point, prior)
    torch.testing.assert_close(kl, -prior.log_prob(value))
    torch.testing.assert_close(kl, monte_carlo_kl(point, prior, n=4))  # every draw is the point
    bare = D.Normal(torch.tensor(0.0), torch.tensor(2.0))
    torch.testing.assert_close(kl_divergence(point, bare), -bare.log_prob(value).sum(-1))
    torch.testing.assert_close(kl_divergence(Delta(value), bare), -bare.log_prob(value))
    simplex = torch.softmax(value, -1)
    dirichlet = D.Dirichlet(torch.full((3,), 2.0))
    torch.testing.assert_close(kl_divergence(D.Independent(Delta(simplex), 1), dirichlet),
                               -dirichlet.log_prob(simplex))


def test_declared_deterministic_encoder_kl_to_declared_prior():
    f = fd.Deterministic("q(z|x)", net=lambda x: 2 * x)
    prior = fd.Normal("p(z)", loc=0.0, scale=1.0, shape=(3,))
    x = torch.randn(5, 3, requires_grad=True)
    kl = kl_divergence(f.condition(x), prior.condition())
    torch.testing.assert_close(kl, -prior.log_prob(z=2 * x))
    kl.sum().backward()
    torch.testing.assert_close(x.grad, 4 * x.detach())  # d/dx of sum (2x)^2 / 2


def test_closed_form_table():
    z = torch.zeros(3)
    one = torch.ones(3)
    normal = D.Independent(D.Normal(z, one), 1)
    table = {
        (normal, normal): True,
        (normal, D.Normal(0.0, 1.0)): True,
        (D.Independent(D.Laplace(z, one), 1), normal): True,
        (D.Independent(Delta(z), 1), normal): True,
        (normal, D.Independent(Delta(z), 1)): False,
        (D.Bernoulli(probs=0.5 * one), D.Bernoulli(probs=0.2 * one)): True,
        (D.RelaxedBernoulli(torch.tensor(0.5), probs=0.5 * one), D.RelaxedBernoulli(torch.tensor(0.5), probs=one / 4)):
            False,
        (D.Independent(D.Beta(one, one), 1), D.Independent(D.Laplace(z, one), 1)): False,
    }
    for (p, q), expected in table.items():
        assert closed_form(p, q) is expected, (p, q)
        base_p, base_q = (d.base_dist if isinstance(d, D.Independent) else d for d in (p, q))
        assert closed_form_known(type(base_p), type(base_q)) is expected, (p, q)


def test_family_level_closed_form_agrees_with_trying_it():
    """For every pair of our families' torch classes, the family-level answer matches an actual attempt."""
    dists = _samples_of_every_family()
    for p, q in itertools.product(dists, dists):
        try:
            kl_divergence(p, q)
            works = True
        except NotImplementedError:
            works = False
        except (RuntimeError, ValueError):
            continue  # shapes that do not pair up (a one-hot against a label): not a family question
        assert closed_form_known(type(p), type(q)) is works, (type(p).__name__, type(q).__name__)


def _samples_of_every_family():
    z, one = torch.zeros(2, 3), torch.ones(2, 3)
    return [
        D.Normal(z, one), D.Laplace(z, one), D.Bernoulli(probs=one / 2), D.Categorical(probs=one / 3),
        D.OneHotCategorical(probs=one / 3), D.Beta(one, one), D.Gamma(one, one), D.Dirichlet(one),
        D.RelaxedBernoulli(torch.tensor(0.5), probs=one / 2),
        D.RelaxedOneHotCategorical(torch.tensor(0.5), probs=one / 3), Delta(z),
    ]


@pytest.mark.parametrize("wrap_p, wrap_q", [(0, 0), (1, 1), (1, 0), (0, 1)])
def test_no_pair_is_ambiguous(wrap_p, wrap_q):
    """Our registrations never make torch's dispatch warn, wrapped in Independent or not."""
    dists = _samples_of_every_family()
    for p, q in itertools.product(dists, dists):
        p = D.Independent(p, 1) if wrap_p else p
        q = D.Independent(q, 1) if wrap_q else q
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                kl_divergence(p, q)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # no closed form, or shapes that do not pair up: the caller falls back to Monte Carlo
