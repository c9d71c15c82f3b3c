"""Properties of the estimators over generated parameters: Monte Carlo matches closed forms, and IWAE with one
importance sample is the ELBO."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import formula as fm
from models import binary, vae

params = st.lists(st.tuples(st.floats(-2, 2), st.floats(0.3, 2.0)), min_size=1, max_size=3)


@settings(max_examples=15, deadline=None)
@given(params, params, st.integers(0, 2**16))
def test_monte_carlo_kl_matches_closed_form(qs, ps, seed):
    d = min(len(qs), len(ps))
    qs, ps = qs[:d], ps[:d]
    q = fm.Normal("q(z)", loc=torch.tensor([m for m, _ in qs]), scale=torch.tensor([s for _, s in qs]))
    p = fm.Normal("p(z)", loc=torch.tensor([m for m, _ in ps]), scale=torch.tensor([s for _, s in ps]))
    exact = fm.compile("KL(q(z)||p(z))", [q, p])()
    torch.manual_seed(seed)
    n = 4000
    mc = fm.compile("KL(q(z)||p(z))", [q, p], analytic_kl=False, samples=n)()
    # the spread of log q - log p under q bounds the Monte Carlo error; 6 standard errors
    z = torch.distributions.Normal(q.loc, q.scale).sample((n,))
    ratio = (torch.distributions.Normal(q.loc, q.scale).log_prob(z)
             - torch.distributions.Normal(p.loc, p.scale).log_prob(z)).sum(-1)
    torch.testing.assert_close(mc, exact, atol=6 * ratio.std().item() / n ** 0.5 + 1e-4, rtol=0)


IWAE = r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k|x)}\right]"


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**16))
def test_iwae_with_one_sample_is_the_elbo(seed):
    q, p, prior = vae()
    x = binary(4, seed=seed % 7)
    torch.manual_seed(seed)
    iwae = fm.compile(IWAE, [q, p, prior])(x=x, K=1)
    torch.manual_seed(seed)
    elbo = fm.compile("E_{q(z|x)}[log p(x,z) - log q(z|x)]", [q, p, prior])(x=x)
    torch.testing.assert_close(iwae, elbo, atol=1e-5, rtol=1e-5)
