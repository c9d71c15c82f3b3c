"""A mixture written in the formula, `\\log \\sum_{k=1}^{K} \\pi_k \\mathcal{N}(x \\mid \\mu_k, \\sigma_k^2 I)`, is evaluated
by log-sum-exp over the components (issue 11 item 2): it equals torch's MixtureSameFamily even where every
component's density underflows, with the parameters declared as indexed tables (fm.Schedule, learnable) or given
per example."""

import pytest
import torch
from torch import distributions as D

import formula as fm

MIXTURE = r"\log \sum_{k=1}^{K} \pi_k \mathcal{N}(x \mid \mu_k, \sigma_k^2 I)"
K, DIM, B = 3, 2, 5


def _params():
    g = torch.Generator().manual_seed(0)
    pi = torch.softmax(torch.randn(K, generator=g), 0)
    return pi, torch.randn(K, DIM, generator=g), torch.rand(K, DIM, generator=g) + 0.5


def _reference(pi, mu, sigma, x):
    return D.MixtureSameFamily(D.Categorical(pi), D.Independent(D.Normal(mu, sigma), 1)).log_prob(x)


@pytest.mark.parametrize("scale", [1.0, 300.0], ids=["near", "far"])
def test_a_written_mixture_equals_mixture_same_family_in_log_space(scale):
    pi, mu, sigma = _params()
    mu_p = torch.nn.Parameter(mu.clone())
    obj = fm.compile(MIXTURE, [fm.Schedule("pi", pi), fm.Schedule("mu", mu_p), fm.Schedule("sigma", sigma)])
    x = torch.randn(B, DIM, generator=torch.Generator().manual_seed(1)) * scale
    value = obj(x=x, K=K)
    torch.testing.assert_close(value, _reference(pi, mu, sigma, x))
    assert torch.isfinite(value).all()
    value.sum().backward()
    mu_r = mu.clone().requires_grad_(True)
    _reference(pi, mu_r, sigma, x).sum().backward()
    torch.testing.assert_close(mu_p.grad, mu_r.grad)
    assert "log-sum-exp" in obj.explain()
    assert [p is mu_p for p in obj.parameters()] == [True]


def test_a_written_mixture_takes_per_example_parameters_as_inputs():
    pi, mu, sigma = _params()
    x = torch.randn(B, DIM, generator=torch.Generator().manual_seed(2))

    def each(t):
        return t.expand(B, *t.shape)

    value = fm.compile(MIXTURE, [])(x=x, pi=each(pi), mu=each(mu), sigma=each(sigma), K=K)
    torch.testing.assert_close(value, _reference(pi, mu, sigma, x))


def test_a_sum_that_does_not_use_its_index_in_log_space_counts_its_terms():
    value = fm.compile(r"\log \sum_{k=1}^{K} \exp(a) + 0 * x", [])(x=torch.zeros(2), a=torch.tensor(-1e4), K=4)
    torch.testing.assert_close(value, torch.full((2,), -1e4 + torch.log(torch.tensor(4.0)).item()))
