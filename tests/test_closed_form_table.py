"""Which entropies are closed form: exactly those torch can compute (Poisson inherits the exponential family's
formula without the carrier measure it needs, so its entropy is Monte Carlo instead of a run-time error)."""

import pytest
import torch
from torch import distributions as D

from formula.estimators.closed_form import entropy_known

_EXAMPLES = {
    D.Normal: lambda: D.Normal(torch.zeros(2), torch.ones(2)),
    D.Bernoulli: lambda: D.Bernoulli(probs=torch.full((2,), 0.3)),
    D.Categorical: lambda: D.Categorical(logits=torch.zeros(2, 3)),
    D.Gamma: lambda: D.Gamma(torch.ones(2), torch.ones(2)),
    D.Exponential: lambda: D.Exponential(torch.ones(2)),
    D.Dirichlet: lambda: D.Dirichlet(torch.ones(2, 3)),
    D.Poisson: lambda: D.Poisson(torch.full((2,), 2.0)),
    D.Beta: lambda: D.Beta(torch.ones(2), torch.ones(2)),
}


@pytest.mark.parametrize("family", list(_EXAMPLES), ids=lambda f: f.__name__)
def test_entropy_known_says_exactly_whether_torch_computes_it(family):
    dist = _EXAMPLES[family]()
    try:
        dist.entropy()
        computes = True
    except NotImplementedError:
        computes = False
    assert entropy_known(family) == computes
