"""`[a, b]` (DRAW's RNN input `[r_t, h^{dec}_{t-1}]`): joined along the last dimension, leading dimensions broadcast
(a draw's [K, batch, ...] meets an input's [batch, ...]), against torch.cat by hand; items without a feature
dimension are an input error with a caret."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import formula as fm


def test_a_concatenation_reaches_the_net_as_torch_cat():
    net = nn.Linear(5, 1)
    f = fm.Function("f(v)", net=net)
    x, y = torch.randn(4, 2), torch.randn(4, 3)
    value = fm.compile("f([x, y])", [f])(x=x, y=y)
    torch.testing.assert_close(value, net(torch.cat([x, y], -1)).squeeze(-1))


def test_a_draw_and_an_input_broadcast_before_they_are_joined():
    torch.manual_seed(0)
    enc, g = nn.Linear(3, 4), nn.Linear(2 + 3, 1)

    def q_net(x):
        loc, s = enc(x).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(s) + 0.1}

    decls = [fm.Normal("q(z|x)", net=q_net), fm.Function("g(v)", net=g)]
    text = r"E_{z_1, \ldots, z_K \sim q(z|x)}[\log \frac{1}{K} \sum_{k=1}^{K} \exp(g([z_k, x]))]"
    x = torch.randn(6, 3)
    torch.manual_seed(1)
    value = fm.compile(text, decls)(x=x, K=4)
    torch.manual_seed(1)
    p = q_net(x)
    z = torch.distributions.Normal(p["loc"], p["scale"]).rsample((4,))
    joined = torch.cat([z, x.expand(4, 6, 3)], -1)
    expected = torch.logsumexp(g(joined).squeeze(-1), 0) - torch.log(torch.tensor(4.0))
    torch.testing.assert_close(value, expected)


def test_items_without_a_feature_dimension_are_an_input_error_at_the_brackets():
    f = fm.Function("f(v)", net=lambda v: v.sum(-1))
    objective = fm.compile("f([x, c])", [f])
    with pytest.raises(fm.FormulaInputError, match="c is \\[4\\]: each item needs a feature dimension") as err:
        objective(x=torch.ones(4, 2), c=torch.ones(4))
    assert err.value.text[slice(*err.value.span)] == "[x, c]"


def test_it_prints_and_parses_back():
    tree = fm.parse(r"h^{enc}_t = \mathrm{RNN}^{enc}(h^{enc}_{t-1}, [r_t, h^{dec}_{t-1}])")
    assert fm.parse(fm.pretty(tree)) == tree
