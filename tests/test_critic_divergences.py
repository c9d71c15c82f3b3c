"""Divergences estimated with a declared critic (formula.check.critic_divergences): the density-ratio KL matches the
true KL of two known Gaussians once its discriminator is trained; JS and W with critics equal their hand-written
forms at fixed draws; explain() names each estimator; divergences that cannot be estimated are check errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import formula as fm

CRITIC_OBJECTIVE = r"\max_D \mathbb{E}_{q(z)}[\log D(z)] + \mathbb{E}_{r(z)}[\log(1 - D(z))]"


def gaussians():
    return [fm.Normal("q(z)", loc=0.0, scale=1.0, shape=(1,)), fm.Normal("r(z)", loc=1.0, scale=1.0, shape=(1,))]


def test_the_density_ratio_kl_matches_the_true_kl_once_the_discriminator_is_trained():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 1), nn.Sigmoid())
    decls = gaussians() + [fm.Function("D(z)", net=net)]
    critic = fm.compile(CRITIC_OBJECTIVE, decls)
    estimate = fm.compile(r"\mathrm{KL}_D(q(z) \| r(z))", decls)
    exact = fm.compile(r"\mathrm{KL}(q(z) \| r(z))", decls)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(300):  # logistic regression of q against r: log q/r = 1/2 - z is in its family
        optimizer.zero_grad()
        (-critic(batch_size=256).mean()).backward()
        optimizer.step()
    with torch.no_grad():
        value = estimate(batch_size=20000).mean().item()
        truth = exact(batch_size=1).mean().item()
    assert truth == pytest.approx(0.5)
    assert value == pytest.approx(truth, abs=0.05)
    assert "density-ratio trick" in estimate.explain() and "closed form" not in estimate.explain().lower()


def _nets(seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)), nn.Sequential(nn.Linear(2, 2))


def _decls(f, g, probability: bool):
    critic = nn.Sequential(f, nn.Sigmoid()) if probability else f
    return [fm.Function("D(x)" if probability else "f(x)", net=critic), fm.Function("G(z)", net=g),
            fm.Data("P_r(x)"), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))]


GENERATOR = r"\tilde x = G(z)" + "\n"


@pytest.mark.parametrize("kind", ["JS", "W"])
def test_js_and_w_with_critics_equal_their_forms_at_fixed_draws(kind):
    f, g = _nets()
    probability = kind == "JS"
    text = GENERATOR + (r"\mathrm{JS}_D(P_r \| P_g) + E_{\tilde x \sim P_g}[0]" if probability else
                        r"W_f(P_r \| P_g) + E_{\tilde x \sim P_g}[0]")
    objective = fm.compile(text, _decls(f, g, probability))
    x = torch.randn(6, 2)
    torch.manual_seed(2)
    value = objective.terms(x=x)[objective.term_names[0]]
    torch.manual_seed(2)
    real, fake = f(x).squeeze(-1), f(g(torch.randn(6, 2))).squeeze(-1)
    if probability:
        expected = 0.5 * (torch.log(torch.sigmoid(real)) + torch.log(1 - torch.sigmoid(fake))) + math.log(2.0)
    else:
        expected = real - fake
    torch.testing.assert_close(value, expected)
    how = "Kantorovich-Rubinstein" if kind == "W" else "the critic's value"
    assert how in objective.explain()


class _Encoder(nn.Module):
    def forward(self, x):
        return {"loc": x, "scale": torch.ones_like(x)}


@pytest.mark.parametrize("text, message", [
    (r"\mathrm{JS}(q(z) \| r(z))", "JS is estimated with a critic: name it in the subscript"),
    (r"W_1(q(z) \| r(z))", "W is estimated with a critic"),
    ("q(z) = E_{p_data(x)}[q(z|x)]\n" + r"\bar q(z) = \prod_j q(z_j)" + "\n" + r"KL(q(z) \| \bar q(z))",
     "sample-only distribution, which has no density; estimate it with a critic D"),
    (r"\mathrm{KL}_D(q(z, w) \| r(z))", "cannot be drawn from here"),
    (r"\mathrm{KL}_F(q(z|x) \| r(z))", "the subscript F of KL_F would name its critic, but no function F"),
])
def test_divergences_that_cannot_be_estimated_say_why(text, message):
    decls = [fm.Normal("q(z|x)", net=_Encoder()), fm.Data("p_data(x)"),
             fm.Normal("r(z)", loc=1.0, scale=1.0, shape=(1,)), fm.Function("D(z)", net=nn.Linear(1, 1))]
    if "q(z, w)" in text:
        decls[0] = fm.Normal("q(z)", loc=0.0, scale=1.0, shape=(1,))
    with pytest.raises(fm.FormulaCheckError, match=message) as info:
        fm.compile(text, decls)
    assert "^" in str(info.value)
