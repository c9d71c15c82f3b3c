"""fm.Autoregressive and fm.MADE: the one-pass log-likelihood equals the per-dimension conditionals computed one at
a time, it normalises, the masks keep the order, draws take D passes and respect the ordering."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import formula as fm

D_ = 5  # dimensions
C = 3  # classes of the categorical case
B = 4


def made_for(family, context: int = 0, seed: int = 0):
    torch.manual_seed(seed)
    return fm.MADE(D_, hidden=(24, 24), family=family, classes=C if family is fm.Categorical else 0,
                   context=context)


def data(family, n: int = B, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    if family is fm.Categorical:
        return torch.randint(C, (n, D_), generator=g)
    if family is fm.Normal:
        return torch.randn(n, D_, generator=g)
    return torch.bernoulli(torch.full((n, D_), 0.5), generator=g)


FAMILIES = [fm.Bernoulli, fm.Categorical, fm.Normal]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
def test_the_log_likelihood_is_the_sum_of_the_conditionals_computed_one_at_a_time(family):
    net = made_for(family)
    p = fm.Autoregressive("p(x)", net=net, family=family)
    x = data(family)
    total = torch.zeros(B)
    for i in range(D_):
        seen = torch.zeros_like(x)
        seen[:, :i] = x[:, :i]  # dimension i's conditional from x_{<i} alone
        params = {k: v[:, i] for k, v in net(seen).items()}
        total = total + family.torch_family(**params).log_prob(x[:, i])
    torch.testing.assert_close(p.log_prob(x=x), total)


@pytest.mark.parametrize("family", [fm.Bernoulli, fm.Categorical], ids=lambda f: f.__name__)
def test_the_probabilities_of_every_value_sum_to_one(family):
    torch.manual_seed(0)
    features, values = 3, (range(2) if family is fm.Bernoulli else range(C))
    net = fm.MADE(features, hidden=(8,), family=family, classes=C if family is fm.Categorical else 0)
    p = fm.Autoregressive("p(x)", net=net, family=family)
    every = torch.tensor(list(itertools.product(values, repeat=features)))
    every = every.float() if family is fm.Bernoulli else every
    torch.testing.assert_close(p.condition().log_prob(every).exp().sum(), torch.tensor(1.0))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, D_ - 1), st.sampled_from(FAMILIES), st.integers(0, 3))
def test_the_masks_make_dimension_i_depend_on_earlier_dimensions_only(i, family, seed):
    net = made_for(family, context=2, seed=seed)
    x, z = data(family, seed=seed), torch.randn(B, 2)
    changed = data(family, seed=seed + 10)
    changed[:, :i] = x[:, :i]  # the same x_{<i}, anything from i on
    for name, value in net(x, z).items():
        torch.testing.assert_close(value[:, i], net(changed, z)[name][:, i])
    assert not torch.allclose(net(x, z)[net.names[0]], net(x, torch.randn(B, 2))[net.names[0]])  # context used


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
def test_a_draw_of_dimension_i_does_not_change_when_later_noise_does(family):
    p = fm.Autoregressive("p(x)", net=made_for(family), family=family)
    dist = p.condition()
    torch.manual_seed(0)
    noise = dist.noise((6,))
    first = dist.sample_with_noise(noise)
    assert first.shape == (6, D_)
    for i in range(D_ - 1):
        other = noise.clone()
        other[:, i + 1:] = dist.noise((6,))[:, i + 1:]
        again = dist.sample_with_noise(other)
        torch.testing.assert_close(again[:, :i + 1], first[:, :i + 1])
    other = noise.clone()
    other[:, 0] = dist.noise((6,))[:, 0]
    if family is fm.Normal:  # a continuous draw moves with the noise of dimension 0, and with it what follows
        assert not torch.allclose(dist.sample_with_noise(other)[:, 1:], first[:, 1:])


class Counting(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls, self.features = net, 0, net.features

    def forward(self, x, *context):
        self.calls += 1
        return self.net(x, *context)


def test_a_draw_takes_d_passes_and_the_log_likelihood_one():
    net = Counting(made_for(fm.Bernoulli))
    p = fm.Autoregressive("p(x)", net=net)
    x = p.sample((7,))["x"]
    assert net.calls == D_ and x.shape == (7, D_) and set(x.unique().tolist()) <= {0.0, 1.0}
    net.calls = 0
    p.log_prob(x=x)
    assert net.calls == 1


def test_a_normal_family_draws_are_reparameterised_through_every_pass():
    net = made_for(fm.Normal)
    p = fm.Autoregressive("p(x)", net=net, family=fm.Normal)
    assert p.capabilities.reparameterised
    draw = p.sample((3,))["x"]
    draw.sum().backward()
    assert all(q.grad is not None for q in net.parameters())


def test_a_conditioned_autoregressive_decoder_takes_its_context():
    torch.manual_seed(0)
    p = fm.Autoregressive("p(x|z)", net=made_for(fm.Bernoulli, context=2))
    z = torch.randn(B, 2)
    dist = p.condition(z)
    assert dist.batch_shape == (B,) and dist.event_shape == (D_,)
    assert dist.sample((3,)).shape == (3, B, D_)
    assert p.log_prob(x=data(fm.Bernoulli), z=z).shape == (B,)


def test_maximum_likelihood_compiles_and_trains_every_weight():
    net = made_for(fm.Bernoulli)
    p = fm.Autoregressive("p(x)", net=net)
    objective = fm.compile("E_{x ~ p_data(x)}[log p(x)]", [p, fm.Data("p_data(x)")])
    value = objective(x=data(fm.Bernoulli))
    torch.testing.assert_close(value, p.log_prob(x=data(fm.Bernoulli)))
    value.mean().backward()
    assert all(q.grad is not None for q in net.parameters())


def test_declaration_and_input_mistakes_are_formula_errors():
    net = made_for(fm.Bernoulli)
    with pytest.raises(fm.FormulaCheckError, match="family= must be a declared family"):
        fm.Autoregressive("p(x)", net=net, family=torch.distributions.Bernoulli)
    with pytest.raises(fm.FormulaCheckError, match="features= must be the number of dimensions"):
        fm.Autoregressive("p(x)", net=lambda x: {"logits": x})
    with pytest.raises(fm.FormulaInputError, match="must be in \\[0.0, 1.0\\].*scale raw data"):
        fm.Autoregressive("p(x)", net=net).log_prob(x=torch.full((2, D_), 3.0))
    with pytest.raises(fm.FormulaCheckError, match="returns the parameters of a Bernoulli, but family=Normal"):
        fm.Autoregressive("p(x)", net=net, family=fm.Normal)
    assert fm.Autoregressive("p(x)", net=made_for(fm.Normal)).family is fm.Normal  # the MADE's own family
    with pytest.raises(fm.FormulaCheckError, match="classes="):
        fm.MADE(4, family=fm.Categorical)
    bad = fm.Autoregressive("p(x)", net=lambda x: {"loc": x}, family=fm.Bernoulli, features=D_)
    with pytest.raises(fm.FormulaInputError, match="not the parameters of a Bernoulli"):
        bad.log_prob(x=data(fm.Bernoulli))


@pytest.mark.parametrize("family, estimator", [(fm.Normal, "reparameterised"), (fm.Bernoulli, "score-function")])
def test_an_expectation_over_it_draws_in_d_passes_with_the_right_estimator(family, estimator):
    net = made_for(family)
    objective = fm.compile("E_{p(x)}[log p(x)]", [fm.Autoregressive("p(x)", net=net)])
    assert f"draw x ~ p(x) [Autoregressive, {estimator}" in objective.explain()
    value = objective(batch_size=6)
    assert value.shape == (6,) and torch.isfinite(value).all()
    value.mean().backward()
    assert all(q.grad is not None for q in net.parameters())
