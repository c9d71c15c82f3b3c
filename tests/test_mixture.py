"""fm.Mixture: log-densities equal torch's MixtureSameFamily (stacked and listed components), draws follow the
weights, MMVAE's mixture of experts adds its log-weights in log space, and a GMM prior trains inside a VAE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as D

import formula as fm
from models import Gaussian, Logits, X, Z, binary

K, B, W = 3, 4, 5


def gmm_parts(learn: bool = False):
    torch.manual_seed(0)
    loc, scale = torch.randn(K, Z) * 3, torch.rand(K, Z) + 0.5
    if learn:
        loc = torch.nn.Parameter(loc)
    return fm.Normal("c(z)", loc=loc, scale=scale, event_dims=1), loc, scale


def torch_gmm(weights, loc, scale):
    return D.MixtureSameFamily(D.Categorical(probs=weights), D.Independent(D.Normal(loc, scale), 1))


def test_a_stacked_mixture_is_torchs_mixture_same_family():
    parts, loc, scale = gmm_parts()
    weights = torch.tensor([0.2, 0.3, 0.5])
    gmm = fm.Mixture("p(z)", components=parts, weights=weights)
    z = torch.randn(7, Z) * 4
    torch.testing.assert_close(gmm.condition().log_prob(z), torch_gmm(weights, loc, scale).log_prob(z))
    torch.testing.assert_close(gmm.log_prob(z=z), torch_gmm(weights, loc, scale).log_prob(z))
    assert gmm.capabilities.reparameterised and gmm.capabilities.label == "Mixture"
    assert gmm.sample((6,))["z"].shape == (6, Z)


def test_a_list_of_conditional_components_is_the_stacked_mixture_of_their_parameters():
    torch.manual_seed(0)
    q_x, q_w = fm.Normal("q_x(z|x)", net=Gaussian(X)), fm.Normal("q_w(z|w)", net=Gaussian(W))
    moe = fm.Mixture("q(z|x,w)", components=[q_x, q_w])
    x, w = binary(B), binary(B, W, seed=1)
    a, b = q_x.condition(x).base_dist, q_w.condition(w).base_dist
    want = torch_gmm(torch.full((2,), 0.5), torch.stack([a.loc, b.loc], -2), torch.stack([a.scale, b.scale], -2))
    z = torch.randn(3, B, Z)
    torch.testing.assert_close(moe.condition(x, w).log_prob(z), want.log_prob(z))
    by_hand = torch.logsumexp(torch.stack([math.log(0.5) + q_x.condition(x).log_prob(z),
                                           math.log(0.5) + q_w.condition(w).log_prob(z)]), 0)
    torch.testing.assert_close(moe.condition(x, w).log_prob(z), by_hand)
    torch.testing.assert_close(moe.condition(x, None).log_prob(z), q_x.condition(x).log_prob(z))  # w missing
    torch.testing.assert_close(moe.log_prob(z=z, w=w), q_w.condition(w).log_prob(z))  # x left out


def test_far_from_every_component_the_log_density_stays_finite():
    parts, loc, scale = gmm_parts()
    gmm = fm.Mixture("p(z)", components=[fm.Normal(f"c_{k}(z)", loc=loc[k], scale=scale[k]) for k in range(K)])
    z = torch.full((2, Z), 60.0)  # every density underflows to 0 in float32
    assert torch.isfinite(gmm.condition().log_prob(z)).all()
    torch.testing.assert_close(gmm.condition().log_prob(z), torch_gmm(torch.full((K,), 1 / K), loc, scale).log_prob(z))


@pytest.mark.parametrize("stacked", [True, False])
def test_draws_pick_components_in_proportion_to_the_weights(stacked):
    loc = torch.tensor([[-10.0], [0.0], [10.0]])
    weights = torch.tensor([0.1, 0.3, 0.6])
    if stacked:
        parts = fm.Normal("c(z)", loc=loc, scale=torch.ones(K, 1), event_dims=1)
    else:
        parts = [fm.Normal(f"c_{k}(z)", loc=loc[k], scale=torch.ones(1)) for k in range(K)]
    gmm = fm.Mixture("p(z)", components=parts, weights=weights)
    torch.manual_seed(0)
    z = gmm.sample((4000,))["z"]
    assert z.shape == (4000, 1)
    share = torch.stack([(z - c).abs().lt(5).float().mean() for c in loc[:, 0]])
    torch.testing.assert_close(share, weights, atol=0.03, rtol=0)


def test_given_weights_give_pathwise_draws_and_learned_weights_a_score_function():
    parts, _, _ = gmm_parts(learn=True)
    given = fm.Mixture("p(z)", components=parts)
    draw = given.condition().rsample((5,))
    draw.sum().backward()
    assert parts.loc.grad is not None and parts.loc.grad.abs().sum() > 0
    learned = fm.Mixture("p(z)", components=gmm_parts()[0], learn_weights=True)
    assert not learned.capabilities.reparameterised and isinstance(learned.logits, torch.nn.Parameter)
    learned.log_prob(z=torch.randn(5, Z)).sum().backward()
    assert learned.logits.grad.abs().sum() > 0


def test_a_gmm_prior_trains_inside_a_vae_with_a_monte_carlo_kl():
    torch.manual_seed(0)
    q, p = fm.Normal("q(z|x)", net=Gaussian(X)), fm.Bernoulli("p(x|z)", net=Logits(Z))
    prior = fm.Mixture("p(z)", components=gmm_parts(learn=True)[0], learn_weights=True)
    elbo = fm.compile("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))", [q, p, prior])
    assert "no closed form registered" in elbo.explain()  # Monte Carlo against a mixture
    value = elbo(x=binary(B))
    assert value.shape == (B,) and torch.isfinite(value).all()
    value.mean().backward()
    assert prior.logits.grad is not None and prior.components[0].loc.grad is not None


def test_an_mmvae_bound_draws_from_the_mixture_of_experts():
    torch.manual_seed(0)
    moe = fm.Mixture("q(z|x,w)", components=[fm.Normal("q_x(z|x)", net=Gaussian(X)),
                                             fm.Normal("q_w(z|w)", net=Gaussian(W))])
    decls = [moe, fm.Bernoulli("p(x|z)", net=Logits(Z)), fm.Bernoulli("p(w|z)", net=Logits(Z, W)),
             fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))]
    bound = fm.compile("E_{q(z|x,w)}[log p(x|z) + log p(w|z) + log p(z) - log q(z|x,w)]", decls)
    assert "draw z ~ q(z|x, w) [Mixture, reparameterised]" in bound.explain()
    value = bound(x=binary(B), w=binary(B, W, seed=1))
    value.mean().backward()
    assert all(p.grad is not None for p in moe.parameters())


def test_declaration_mistakes_are_check_errors():
    parts, _, _ = gmm_parts()
    with pytest.raises(fm.FormulaCheckError, match="positive and sum to 1"):
        fm.Mixture("p(z)", components=parts, weights=[0.5, 0.6, 0.1])
    with pytest.raises(fm.FormulaCheckError, match="2 probabilities"):
        fm.Mixture("p(z)", components=[parts, parts], weights=[1.0])
    with pytest.raises(fm.FormulaCheckError, match="no batch dimension to stack along"):
        fm.Mixture("p(z)", components=fm.Normal("c(z)", loc=0.0, scale=1.0, shape=(Z,)))
    with pytest.raises(fm.FormulaCheckError, match="non-empty list of declarations"):
        fm.Mixture("p(z)", components=[])
    with pytest.raises(fm.FormulaCheckError, match="pass weights="):
        fm.Mixture("p(z|x)", components=fm.Normal("c(z|x)", net=Gaussian(X)))


def test_components_of_different_event_shapes_are_an_input_error():
    mix = fm.Mixture("p(z)", components=[fm.Normal("a(z)", loc=torch.zeros(Z), scale=torch.ones(Z)),
                                         fm.Normal("b(z)", loc=torch.zeros(Z), scale=torch.ones(Z), event_dims=0)])
    with pytest.raises(fm.FormulaInputError, match="different event shapes"):
        mix.condition()
