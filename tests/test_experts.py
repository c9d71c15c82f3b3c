"""fm.ProductOfExperts: the closed-form product of Gaussian experts over every subset of the modalities present,
its single-modality subsets, its use inside an ELBO, and its declaration errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import formula as fm
from formula.families.experts import gaussian_product
from models import Gaussian, Logits, X, Z, binary

W = 5
B = 4


def experts():
    torch.manual_seed(0)
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    return prior, fm.Normal("q_x(z|x)", net=Gaussian(X)), fm.Normal("q_w(z|w)", net=Gaussian(W))


def by_hand(dists):
    """The product of diagonal Gaussians written out: precision T = sum 1/s^2, mean = sum (mu/s^2) / T."""
    precision = sum(1.0 / d.scale**2 for d in dists)
    loc = sum(d.loc / d.scale**2 for d in dists) / precision
    return loc, precision.rsqrt()


def inputs():
    return {"x": binary(B), "w": binary(B, W, seed=1)}


@pytest.mark.parametrize("present", [set(s) for r in range(3) for s in itertools.combinations("xw", r)])
def test_every_subset_of_modalities_gives_the_closed_form_product(present):
    prior, q_x, q_w = experts()
    poe = fm.ProductOfExperts("q(z|x,w)", experts=[prior, q_x, q_w])
    values = {k: v if k in present else None for k, v in inputs().items()}
    dist = poe.condition(values["x"], values["w"])
    parts = [prior.condition().base_dist]
    parts += [q_x.condition(values["x"]).base_dist] if "x" in present else []
    parts += [q_w.condition(values["w"]).base_dist] if "w" in present else []
    loc, scale = by_hand(parts)
    torch.testing.assert_close(dist.mean, loc.expand_as(dist.mean))
    torch.testing.assert_close(dist.stddev, scale.expand_as(dist.stddev))
    assert dist.event_shape == (Z,)
    z = torch.randn(B, Z)
    want = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    torch.testing.assert_close(dist.log_prob(z), want)


def test_a_subset_declaration_shares_the_experts_and_equals_the_product_with_none():
    prior, q_x, q_w = experts()
    poe = fm.ProductOfExperts("q(z|x,w)", experts=[prior, q_x, q_w])
    only_x = poe.subset("x")
    assert only_x.signature_text == "q(z|x)" and only_x.given_names == ("x",)
    assert only_x.experts[1] is q_x and len(only_x.experts) == 2
    x = inputs()["x"]
    torch.testing.assert_close(only_x.condition(x).mean, poe.condition(x, None).mean)
    assert poe.subset("w", signature="q_W(z|w)").name == "q_W"


def test_sample_and_log_prob_take_missing_modalities_as_left_out_or_none():
    poe = fm.ProductOfExperts("q(z|x,w)", experts=list(experts()))
    x = inputs()["x"]
    draw = poe.sample((3,), x=x)["z"]
    assert draw.shape == (3, B, Z) and draw.requires_grad  # reparameterised
    torch.testing.assert_close(poe.log_prob(z=draw, x=x), poe.log_prob(z=draw, x=x, w=None))
    only_prior = poe.log_prob(z=draw)  # every modality missing: the prior alone
    torch.testing.assert_close(only_prior, torch.distributions.Normal(0.0, 1.0).log_prob(draw).sum(-1))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-3, 3), st.floats(-4, 4)), min_size=1, max_size=5))
def test_the_log_precision_product_equals_the_textbook_formula(experts_):
    locs = [torch.tensor([m], dtype=torch.float64) for m, _ in experts_]
    scales = [torch.tensor([2.0**s], dtype=torch.float64) for _, s in experts_]
    loc, scale = gaussian_product(locs, scales)
    want_loc, want_scale = by_hand([torch.distributions.Normal(m, s) for m, s in zip(locs, scales)])
    torch.testing.assert_close(loc, want_loc)
    torch.testing.assert_close(scale, want_scale)


def test_an_mvae_elbo_over_the_joint_and_each_modality_trains_every_expert():
    prior, q_x, q_w = experts()
    poe = fm.ProductOfExperts("q(z|x,w)", experts=[prior, q_x, q_w])
    px, pw = fm.Bernoulli("p(x|z)", net=Logits(Z)), fm.Bernoulli("p(w|z)", net=Logits(Z, W))
    text = ("E_{q(z|x,w)}[log p(x|z) + log p(w|z)] - KL(q(z|x,w)||p(z)) + E_{q(z|x)}[log p(x|z)] "
            "- KL(q(z|x)||p(z)) + E_{q(z|w)}[log p(w|z)] - KL(q(z|w)||p(z))")
    elbo = fm.compile(text, [poe, poe.subset("x"), poe.subset("w"), px, pw, prior])
    assert "closed form [ProductOfExperts || Normal]" in elbo.explain()
    torch.manual_seed(1)
    value = elbo(**inputs())
    assert value.shape == (B,) and torch.isfinite(value).all()
    value.mean().backward()
    for module in (q_x, q_w, px, pw):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_declaration_mistakes_are_check_errors():
    prior, q_x, _ = experts()
    bern = fm.Bernoulli("b(z|x)", net=Logits(X, Z))
    with pytest.raises(fm.FormulaCheckError, match="needs Gaussian experts"):
        fm.ProductOfExperts("q(z|x)", experts=[prior, bern])
    with pytest.raises(fm.FormulaCheckError, match="conditioned on x, which q\\(z\\|w\\) is not"):
        fm.ProductOfExperts("q(z|w)", experts=[prior, q_x])
    with pytest.raises(fm.FormulaCheckError, match="is over u, but"):
        fm.ProductOfExperts("q(z|x)", experts=[fm.Normal("p(u)", loc=0.0, scale=1.0, shape=(Z,))])
    with pytest.raises(fm.FormulaCheckError, match="non-empty list of declarations"):
        fm.ProductOfExperts("q(z|x)", experts=[])
    with pytest.raises(fm.FormulaCheckError, match="subset\\(\\) takes"):
        fm.ProductOfExperts("q(z|x)", experts=[prior, q_x]).subset("y")


def test_every_expert_missing_is_an_input_error():
    _, q_x, _ = experts()
    poe = fm.ProductOfExperts("q(z|x)", experts=[q_x])
    with pytest.raises(fm.FormulaInputError, match="every expert's conditions are missing"):
        poe.condition(None)


def test_experts_of_different_event_dims_are_an_input_error():
    scalar = fm.Normal("p(z)", loc=torch.zeros(Z), scale=torch.ones(Z), event_dims=0)
    poe = fm.ProductOfExperts("q(z|x)", experts=[scalar, experts()[1]])
    with pytest.raises(fm.FormulaInputError, match="different event dims"):
        poe.condition(binary(B))


def test_state_dict_round_trips_through_the_shared_experts():
    poe = fm.ProductOfExperts("q(z|x,w)", experts=list(experts()))
    fresh = fm.ProductOfExperts("q(z|x,w)", experts=list(experts()))
    with torch.no_grad():
        for p in poe.parameters():
            p.add_(0.5)
    fresh.load_state_dict(poe.state_dict())
    x, w = inputs().values()
    torch.testing.assert_close(fresh.condition(x, w).mean, poe.condition(x, w).mean)
    assert isinstance(fresh.experts, nn.ModuleList)
