"""Explicit families written in formulas (issue 11 item 4): log-densities, KL on either side, entropies, expectation
samplers and draw statements, each against hand-written torch.distributions code at the same draws."""

import pytest
import torch
from torch import nn
from torch.distributions import (Bernoulli, Beta, Categorical, Dirichlet, Gamma, Independent, Laplace, Normal,
                                 Poisson, Uniform, kl_divergence)

import formula as fm
from models import X, Z, binary, vae

B = 5


def normal_mean(d=Z):
    torch.manual_seed(0)
    return fm.Function(r"\mu_\theta(z)", net=nn.Linear(d, d))


def test_log_density_of_each_family_equals_torch():
    torch.manual_seed(0)
    x = binary(B)
    lam = torch.rand(B, X) * 0.8 + 0.1
    cases = [
        (r"\log \mathrm{Bern}(x \mid \lambda)", dict(x=x, **{"lambda": lam}), Independent(Bernoulli(lam), 1).log_prob(x)),
        (r"\log \mathrm{Laplace}(x \mid \mu, b)", dict(x=x, mu=lam, b=0.5), Independent(Laplace(lam, 0.5), 1).log_prob(x)),
        (r"\log \mathrm{Beta}(y \mid a, c)", dict(y=lam, a=2.0, c=3.0), Independent(Beta(torch.full_like(lam, 2.0),
                                                                                              torch.full_like(lam, 3.0)), 1).log_prob(lam)),
        (r"\log \mathcal{U}(y \mid 0, 1)", dict(y=lam), Independent(Uniform(torch.zeros_like(lam), 1.0), 1).log_prob(lam)),
    ]
    for text, inputs, hand in cases:
        torch.testing.assert_close(fm.compile(text)(**inputs), hand, msg=text)


def test_more_families_as_log_densities():
    rate = torch.rand(B, 3) + 0.5
    k = torch.poisson(rate)
    torch.testing.assert_close(fm.compile(r"\log \mathrm{Pois}(k \mid \lambda)")(k=k, **{"lambda": rate}),
                               Independent(Poisson(rate), 1).log_prob(k))
    torch.testing.assert_close(fm.compile(r"\log \mathrm{Gamma}(y \mid a, c)")(y=rate, a=2.0, c=3.0),
                               Independent(Gamma(torch.full_like(rate, 2.0), 3.0), 1).log_prob(rate))
    pi = torch.softmax(torch.randn(B, 3), -1)
    torch.testing.assert_close(fm.compile(r"\log \mathrm{Dir}(\pi \mid \alpha)")(pi=pi, alpha=rate),
                               Dirichlet(rate).log_prob(pi))


def test_a_family_with_a_spelling_but_no_torch_builder_is_a_check_error():
    from formula.lang import spellings

    row = spellings.register_family("StudentT", "StudentT")
    try:
        with pytest.raises(fm.FormulaCheckError, match="not evaluated yet"):
            fm.compile(r"\log \mathrm{StudentT}(x \mid \nu)")
    finally:
        spellings.unregister(row)


def test_categorical_log_density_and_density_value():
    probs = torch.softmax(torch.randn(B, 4), -1)
    y = torch.tensor([0, 1, 2, 3, 1])
    obj = fm.compile(r"\log \mathrm{Cat}(y \mid \pi)")
    torch.testing.assert_close(obj(y=y, pi=probs), Categorical(probs).log_prob(y))
    value = fm.compile(r"\mathrm{Cat}(y \mid \pi)")(y=y, pi=probs)  # a density in value position: exp(log p)
    torch.testing.assert_close(value, Categorical(probs).log_prob(y).exp())


def test_normal_with_a_network_mean_as_a_log_density():
    mu = normal_mean()
    z = torch.randn(B, Z)
    obj = fm.compile(r"\log \mathcal{N}(z \mid \mu_\theta(z), \sigma^2 I)", [mu])
    torch.testing.assert_close(obj(z=z, sigma=0.3), Independent(Normal(mu.net(z), 0.3), 1).log_prob(z))


def test_kl_with_an_explicit_family_on_the_left_is_closed_form():
    q, p, prior = vae()
    mu = normal_mean(X)
    x = binary(B)
    written = fm.compile(r"KL(\mathcal{N}(\mu_\theta(x), \sigma^2 I) \| \mathcal{N}(0, I))", [mu])
    assert "closed form [Normal || Normal]" in written.explain()
    hand = kl_divergence(Independent(Normal(mu.net(x), 0.5), 1), Independent(Normal(torch.zeros(B, X), 1.0), 1))
    torch.testing.assert_close(written(x=x, sigma=0.5), hand)
    against_declared = fm.compile(r"KL(\mathcal{N}(0, I) \| q(z|x))", [q])
    qd = q.condition(x)
    torch.testing.assert_close(against_declared(x=x), kl_divergence(Independent(Normal(torch.zeros(B, Z), 1.0), 1), qd))


def test_kl_between_two_families_closed_form_and_monte_carlo_agree():
    torch.manual_seed(0)
    text = r"KL(\mathrm{Laplace}(\mu, b) \| \mathcal{N}(0, I))"
    exact = fm.compile(text)
    assert "closed form [Laplace || Normal]" in exact.explain()
    sampled = fm.compile(text, samples=4000, analytic_kl=False)
    assert "Monte Carlo, one draw from \\mathrm{Laplace}(mu, b)" in sampled.explain()
    mu = torch.zeros(2, 3)
    hand = kl_divergence(Laplace(mu, 1.0), Normal(torch.zeros(2, 3), 1.0)).sum(-1)
    torch.testing.assert_close(exact(mu=mu, b=1.0, batch_size=2), hand)
    assert torch.allclose(sampled(mu=mu, b=1.0, batch_size=2), hand, atol=0.1)


def test_entropy_of_explicit_families():
    mu = torch.randn(B, Z)
    obj = fm.compile(r"H[\mathcal{N}(\mu, \sigma^2 I)]")
    assert "closed form [Normal]" in obj.explain()
    torch.testing.assert_close(obj(mu=mu, sigma=0.7, batch_size=B), Independent(Normal(mu, 0.7), 1).entropy())
    scalar = fm.compile(r"H[\mathcal{U}\{1, \ldots, T\}]")
    torch.testing.assert_close(scalar(batch_size=3, T=8), torch.full((3,), 8.0).log())


def test_expectation_over_a_normal_is_reparameterised_and_equals_torch_at_the_same_draws():
    mu = normal_mean()
    z = torch.randn(B, Z)
    obj = fm.compile(r"\mathbb{E}_{\epsilon \sim \mathcal{N}(0, I)}[\| \mu_\theta(z) + \sigma \epsilon \|^2]", [mu])
    plan = obj.explain()
    assert "draw epsilon ~ \\mathcal{N}(0, I) [Normal, reparameterised, shaped like mu_{theta}(z)]" in plan
    torch.manual_seed(1)
    value = obj(z=z, sigma=0.2)
    torch.manual_seed(1)
    eps = torch.randn(B, Z)
    torch.testing.assert_close(value, ((mu.net(z) + 0.2 * eps) ** 2).sum(-1))
    value.sum().backward()
    assert mu.net.weight.grad is not None


def test_bernoulli_with_learned_parameters_gets_the_score_function():
    torch.manual_seed(0)
    f = fm.Function(r"\lambda(x)", net=nn.Sequential(nn.Linear(X, X), nn.Sigmoid()))
    obj = fm.compile(r"\mathbb{E}_{b \sim \mathrm{Bern}(\lambda(x))}[\| b - x \|^2]", [f])
    assert "[Bernoulli, score-function surrogate" in obj.explain()
    obj(x=binary(B)).sum().backward()
    assert f.net[0].weight.grad is not None and f.net[0].weight.grad.abs().sum() > 0


def test_two_items_one_subscript_are_nested_draws():
    q, p, prior = vae()
    x = binary(B)
    text = r"\mathbb{E}_{z \sim q(z|x), \epsilon \sim \mathcal{N}(0, I)}[\| z + \epsilon \|^2]"
    obj = fm.compile(text, [q])
    torch.manual_seed(2)
    value = obj(x=x)
    torch.manual_seed(2)
    zs = q.condition(x).rsample()
    eps = torch.randn(B, Z)
    torch.testing.assert_close(value, ((zs + eps) ** 2).sum(-1))


def test_draw_statement_and_bare_items():
    mu = normal_mean()
    z = torch.randn(B, Z)
    obj = fm.compile(r"u \sim \mathcal{U}[0, 1]; \mathbb{E}_{u}[\| u \mu_\theta(z) \|^2]", [mu])
    assert "draw u ~ \\mathcal{U}(0, 1) [Uniform, reparameterised]" in obj.explain().replace("[0, 1]", "(0, 1)")
    torch.manual_seed(4)
    value = obj(z=z)
    torch.manual_seed(4)
    u = Uniform(torch.tensor(0.0), torch.tensor(1.0)).rsample((B,))
    torch.testing.assert_close(value, ((u[:, None] * mu.net(z)) ** 2).sum(-1))  # one u per example


@pytest.mark.parametrize("text, message", [
    (r"\mathbb{E}_{\epsilon \sim \mathcal{N}(0, I)}[\| \epsilon \|^2]", "cannot be known"),
    (r"\mathbb{E}_{t, z}[t]", "nothing says how t is drawn"),
    (r"H[\mathcal{N}(0, I)]", "depends on its dimension"),
    (r"\log \mathcal{N}(x \mid \mu, \sigma, \tau)", "Normal takes 1 to 2 parameter"),
    (r"\mathbb{E}_{\mathcal{N}(0, I)}[f]", "say which one variable is drawn"),
    (r"t \sim \mathcal{U}\{1, \ldots, T\}; \mathbb{E}_{t}[\bar\beta_t] + \mathbb{E}_{t' \sim \mathcal{U}\{1, T\}}[t']",
     "declare the values it takes at each step"),
])
def test_mistakes_are_check_errors_with_a_caret(text, message):
    with pytest.raises(fm.FormulaCheckError, match=message) as err:
        fm.compile(text)
    assert "^" in str(err.value)


def test_a_negative_variance_is_an_input_error():
    obj = fm.compile(r"\log \mathcal{N}(x \mid 0, v)")
    with pytest.raises(fm.FormulaInputError, match="scale must be"):
        obj(x=torch.zeros(B, 2), v=-1.0)


def test_per_example_values_broadcast_per_example():
    """A [batch] value times a [batch, D] one scales each example (not the last dimension)."""
    f = fm.Function("f(x)", net=nn.Identity())
    x = torch.randn(3, 3)
    a = torch.tensor([1.0, 2.0, 3.0])
    obj = fm.compile(r"\| a f(x) \|^2", [f])
    torch.testing.assert_close(obj(x=x, a=a), ((a[:, None] * x) ** 2).sum(-1))


def test_a_family_parameter_may_be_a_draw():
    """`E_{z \\sim q(z|x)} E_{w \\sim \\mathcal{N}(z, \\sigma^2 I)}`: w is shaped like the drawn z, reparameterised."""
    q, _, _ = vae()
    x = binary(B)
    obj = fm.compile(r"\mathbb{E}_{z \sim q(z|x)} \mathbb{E}_{w \sim \mathcal{N}(z, \sigma^2 I)}"
                     r"[\log \mathcal{N}(w \mid z, I)]", [q])
    assert "draw w ~ \\mathcal{N}(z, sigma^2 * I) [Normal, reparameterised]" in obj.explain()
    torch.manual_seed(0)
    value = obj(x=x, sigma=0.3)
    torch.manual_seed(0)
    z = q.condition(x).rsample()
    w = z + 0.3 * torch.randn_like(z)
    torch.testing.assert_close(value, Independent(Normal(z, 1.0), 1).log_prob(w))
