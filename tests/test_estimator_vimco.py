"""gradient="vimco": unbiased gradients of a multi-sample bound over Bernoulli draws, against the exact gradient by
enumerating every (z_1, ..., z_K); lower variance than the default leave-one-out score function."""

import itertools

import torch
from torch.distributions import Bernoulli, Independent, Normal

import formula as fm
from bernoulli_toy import D, X1, W, Mean, Table

K = 3
IWAE = r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k)}\right]"


def model():
    q = fm.Bernoulli("q(z)", net=Table())
    p = fm.Normal("p(x|z)", net=Mean())
    prior = fm.Bernoulli("p(z)", probs=0.5, shape=(D,))
    return q, p, prior


def exact_gradient(logits):
    """d/dlogits of sum over all K-tuples of bit vectors of prod_k q(z_k) * log mean_k p(x, z_k)/q(z_k)."""
    zs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))
    q = Independent(Bernoulli(logits=logits), 1)
    log_px = Independent(Normal(zs @ W, 1.0), 1).log_prob(X1) + D * torch.log(torch.tensor(0.5))
    total = 0.0
    for combo in itertools.product(range(len(zs)), repeat=K):
        lq = q.log_prob(zs[list(combo)])
        total = total + lq.sum().exp() * (torch.logsumexp(log_px[list(combo)] - lq, 0) - torch.log(torch.tensor(K * 1.0)))
    (g,) = torch.autograd.grad(total, [logits])
    return g


def chunk_gradients(gradient, chunks=10, n=2000, seed=0):
    q, p, prior = model()
    obj = fm.compile(IWAE, [q, p, prior], gradient=gradient)
    torch.manual_seed(seed)
    grads = []
    for _ in range(chunks):
        (g,) = torch.autograd.grad(obj(x=X1.expand(n, D), K=K).mean(), [q.net.logits])
        grads.append(g)
    return torch.stack(grads), q


def test_vimco_is_unbiased_against_enumeration():
    grads, q = chunk_gradients("vimco")
    assert "VIMCO" in fm.compile(IWAE, list(model()), gradient="vimco").explain()
    exact = exact_gradient(q.net.logits)
    se = grads.std(0) / grads.shape[0] ** 0.5
    assert ((grads.mean(0) - exact).abs() < 4.5 * se + 1e-4).all(), (grads.mean(0), exact, se)


def test_vimco_has_lower_variance_than_leave_one_out():
    vimco, _ = chunk_gradients("vimco", seed=1)
    default, _ = chunk_gradients(None, seed=2)
    assert vimco.var(0).sum() < default.var(0).sum()


def test_vimco_needs_two_draws():
    obj = fm.compile(IWAE, list(model()), gradient="vimco")
    try:
        obj(x=X1, K=1)
    except fm.FormulaError as e:
        assert "K >= 2" in str(e)
    else:
        raise AssertionError("VIMCO with one draw should be refused")
