"""The rest of the value language compiled: functions, elementwise math, norms, stop-gradient, labels,
relation chains, bare expectations, draws per example, and no stray devices or dtypes."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

import formula as fm
from models import X, Z, Gaussian, Logits, binary, vae

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"


def test_declared_functions_and_elementwise_math():
    torch.manual_seed(0)
    disc = torch.nn.Sequential(torch.nn.Linear(X, 1))
    gen = torch.nn.Linear(Z, X)
    D = fm.Function("D(x)", net=disc)
    G = fm.Function("G(z)", net=gen)
    data = fm.Data("p_{data}(x)")
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    text = (r"\mathbb{E}_{x \sim p_{data}(x)}[\log \sigma(D(x))] + "
            r"\mathbb{E}_{z \sim p(z)}[\log(1 - \sigma(D(G(z))))]")
    obj = fm.compile(text, [D, G, data, prior])
    assert obj.inputs == ("x",)
    x = torch.randn(4, X)
    torch.manual_seed(1)
    value = obj(x=x)
    torch.manual_seed(1)
    z = torch.distributions.Normal(torch.zeros(Z), torch.ones(Z)).rsample((4,))
    hand = torch.log(torch.sigmoid(disc(x))).squeeze(-1) + torch.log(1 - torch.sigmoid(disc(gen(z)))).squeeze(-1)
    torch.testing.assert_close(value, hand)
    assert set(map(id, obj.parameters())) == set(map(id, list(disc.parameters()) + list(gen.parameters())))


def test_squared_norm_stop_gradient_and_powers():
    torch.manual_seed(0)
    f = fm.Function("f(x)", net=torch.nn.Linear(X, X))
    obj = fm.compile(r"-\|x - f(x)\|_2^2 + \text{sg}[\|f(x)\|^2] + \sqrt{4} \exp(0) + |a|", [f])
    x = torch.randn(3, X)
    value = obj(x=x, a=-2.0)
    fx = f.net(x)
    hand = -((x - fx) ** 2).sum(-1) + (fx ** 2).sum(-1).detach() + 2.0 + 2.0
    torch.testing.assert_close(value, hand)
    (g,) = torch.autograd.grad(value.sum(), [f.net.bias])
    (gh,) = torch.autograd.grad((-((x - fx) ** 2).sum(-1)).sum(), [f.net.bias])
    torch.testing.assert_close(g, gh)


def test_underbrace_labels_name_terms_and_relation_chain_picks_the_objective():
    q, p, prior = vae()
    text = (r"\log p(x) \geq \underbrace{\mathbb{E}_{q(z|x)}[\log p(x|z)]}_{\text{rec}} - "
            r"\underbrace{D_{KL}(q(z|x) \| p(z))}_{\text{kl}} =: \mathcal{L}")
    obj = fm.compile(text, [q, p, prior])
    x = binary(4)
    torch.manual_seed(0)
    value, terms = obj.evaluate(x=x)
    assert list(terms) == ["rec", "kl"]
    torch.testing.assert_close(value, terms["rec"] - terms["kl"])
    named = fm.compile(r"\mathcal{L}(x; \theta, \phi) = " + VAE, [q, p, prior])
    assert named.term_names == fm.compile(VAE, [q, p, prior]).term_names


def test_terms_and_total_come_from_one_pass():
    q, p, prior = vae()
    elbo = fm.compile(VAE, [q, p, prior])
    x = binary(4)
    value, terms = elbo.evaluate(x=x)
    torch.testing.assert_close(value, sum(t if i == 0 else -t for i, t in enumerate(terms.values())))
    names = list(elbo.terms(x=x))
    assert names == list(elbo.term_names) and len(names) == 2


def test_samples_average_over_draws():
    q, p, prior = vae()
    x = binary(3)
    one = fm.compile(VAE, [q, p, prior])
    many = fm.compile(VAE, [q, p, prior], samples=4000)
    torch.manual_seed(0)
    estimate = many(x=x)
    torch.manual_seed(0)
    reference = torch.stack([one(x=x) for _ in range(4000)]).mean(0)
    torch.testing.assert_close(estimate, reference, atol=0.1, rtol=0.02)
    assert "draws per example: 4000" in many.explain()


def test_no_stray_devices_or_dtypes():
    torch.manual_seed(0)
    q, p, prior = vae()
    q, p, prior = q.double(), p.double(), prior.double()
    texts = [VAE, r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} "
                  r"\frac{p(x,z_k)}{q(z_k|x)}\right]", "E_q(z|x)[log p(x,z) - log q(z|x)] + 2"]
    x = binary(3).double()
    for text in texts:
        obj = fm.compile(text, [q, p, prior], analytic_kl=False)
        with torch.device("meta"):  # any tensor made without device= lands on meta and breaks the step
            value = obj(x=x, K=3) if "K" in obj.inputs else obj(x=x)
            (-value.mean()).backward()
        assert value.device.type == "cpu" and value.dtype == torch.float64


def test_explicit_normal_families_in_kl_and_log_density():
    """`\\mathcal{N}(0, I)` as the prior of a KL, and `\\log \\mathcal{N}(x \\mid \\mu, \\sigma^2 I)`."""
    q, p, prior = vae()
    x = binary(4)
    declared = fm.compile("KL(q(z|x)||p(z))", [q, p, prior])
    written = fm.compile(r"D_{KL}(q(z|x) \| \mathcal{N}(0, I))", [q, p, prior])
    assert "closed form [Normal || Normal]" in written.explain()
    torch.testing.assert_close(written(x=x), declared(x=x))
    f = fm.Function("f(x)", net=torch.nn.Linear(X, X))
    gauss = fm.compile(r"\log \mathcal{N}(x \mid f(x), \sigma^2 I)", [f])
    assert gauss.inputs == ("sigma", "x")
    value = gauss(x=x, sigma=0.5)
    hand = Independent(Normal(f.net(x), 0.5), 1).log_prob(x)
    torch.testing.assert_close(value, hand)
