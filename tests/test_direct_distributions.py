"""The cheaper constructions of the hot path build what torch's own would: `families.direct` (no re-broadcast of
parameters that agree) and `families.summed.Summed` (an Independent summing one event dim with one sum)."""

import pytest
import torch
import torch.distributions as D

from formula.families.direct import direct
from formula.families.summed import Summed


def _params(family):
    g = torch.Generator().manual_seed(0)
    if family is D.Bernoulli:
        return {"logits": torch.randn(4, 3, generator=g)}
    return {"loc": torch.randn(4, 3, generator=g), "scale": torch.rand(4, 3, generator=g) + 0.1}


@pytest.mark.parametrize("family", [D.Normal, D.Laplace, D.Bernoulli])
def test_direct_builds_what_the_constructor_builds(family):
    params = _params(family)
    fast, slow = direct(family, params), family(**params, validate_args=False)
    assert type(fast) is family and sorted(vars(fast)) == sorted(vars(slow))
    assert fast.batch_shape == slow.batch_shape and fast.event_shape == slow.event_shape
    x = slow.sample((2,))
    torch.testing.assert_close(fast.log_prob(x), slow.log_prob(x), rtol=0, atol=0)
    torch.testing.assert_close(fast.mean, slow.mean, rtol=0, atol=0)
    assert fast.expand((5, 4, 3)).batch_shape == (5, 4, 3)
    assert D.kl_divergence(fast, slow).abs().max() == 0


def test_direct_leaves_what_it_cannot_tell_to_the_constructor():
    loc = torch.zeros(4, 3)
    assert direct(D.Normal, {"loc": loc, "scale": torch.ones(3)}) is None  # shapes differ: torch broadcasts
    assert direct(D.Normal, {"loc": loc, "scale": torch.nn.Parameter(torch.ones(4, 3))}) is None
    assert direct(D.Bernoulli, {"probs": torch.full((4, 3), 0.5)}) is None
    assert direct(D.Gamma, {"concentration": loc + 1, "rate": loc + 1}) is None  # not registered


@pytest.mark.parametrize("dims", [1, 2])
def test_summed_is_torch_s_independent(dims):
    base = D.Normal(torch.randn(4, 3, 2), torch.rand(4, 3, 2) + 0.1, validate_args=False)
    fast, slow = Summed(base, dims, validate_args=False), D.Independent(base, dims, validate_args=False)
    assert isinstance(fast, D.Independent) and fast.event_shape == slow.event_shape
    x = slow.sample()
    torch.testing.assert_close(fast.log_prob(x), slow.log_prob(x), rtol=0, atol=0)
    torch.testing.assert_close(D.kl_divergence(fast, slow), torch.zeros(slow.batch_shape))
    assert fast.expand((7,) + tuple(slow.batch_shape)).batch_shape[0] == 7
