"""Every model of docs/language.md §5 compiled and compared with the same objective written by hand in PyTorch.

Draws are made in the same order from the same seed, so values and gradients agree exactly (1e-5); where the
estimator is a score-function surrogate, the value agrees exactly and the gradient in expectation
(test_estimators.py).
"""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence

import formula as fm
from models import C, H, X, Z, Gaussian, Logits, binary, vae

B = 5
VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
VAE_LATEX = (r"\mathbb{E}_{q_\phi(z|x)}\left[\log p_\theta(x|z)\right] - D_{KL}\left(q_\phi(z|x) \,\|\, p(z)\right)")


def normal(params):
    return Independent(Normal(params["loc"], params["scale"]), 1)


def bern(params):
    return Independent(Bernoulli(logits=params["logits"]), 1)


def std_normal(like_shape):
    return Independent(Normal(torch.zeros(like_shape), torch.ones(like_shape)), 1)


def assert_same(compiled, handwritten, params, atol=1e-5):
    """Values equal, and the gradients of their sums with respect to every parameter."""
    torch.testing.assert_close(compiled, handwritten, atol=atol, rtol=1e-5)
    gc = torch.autograd.grad(compiled.sum(), params, allow_unused=True, retain_graph=True)
    gh = torch.autograd.grad(handwritten.sum(), params, allow_unused=True, retain_graph=True)
    for a, b in zip(gc, gh):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def vae_by_hand(q, p, x, beta=1.0):
    qz = normal(q.net(x=x))
    z = qz.rsample()
    rec = bern(p.net(z=z)).log_prob(x)
    kl = kl_divergence(qz, std_normal(Z))
    return rec - beta * kl, rec, kl


@pytest.mark.parametrize("text", [VAE, VAE_LATEX])
def test_vae_matches_handwritten(text):
    q, p, prior = vae()
    elbo = fm.compile(text, [q, p, prior])
    x = binary(B)
    torch.manual_seed(1)
    value, terms = elbo.evaluate(x=x)
    torch.manual_seed(1)
    hand, rec, kl = vae_by_hand(q, p, x)
    assert value.shape == (B,)
    assert_same(value, hand, list(elbo.parameters()))
    rec_c, kl_c = terms.values()
    torch.testing.assert_close(kl_c, kl)  # no sampling: exact
    torch.testing.assert_close(rec_c, rec)
    assert len(list(elbo.parameters())) == len(list(q.parameters())) + len(list(p.parameters()))


def test_beta_vae_takes_beta_at_call_time():
    q, p, prior = vae()
    obj = fm.compile(r"E_{q(z|x)}[log p(x|z)] - \beta D_{KL}(q(z|x)||p(z))", [q, p, prior])
    assert obj.inputs == ("beta", "x")
    x = binary(B)
    for beta in (0.0, 0.5, torch.tensor(2.0)):
        torch.manual_seed(3)
        value = obj(x=x, beta=beta)
        torch.manual_seed(3)
        hand, _, _ = vae_by_hand(q, p, x, beta=beta)
        assert_same(value, hand, list(obj.parameters()))


def test_joint_form_of_elbo_uses_the_chain_rule():
    q, p, prior = vae()
    obj = fm.compile("E_{q(z|x)}[log p(x,z) - log q(z|x)]", [q, p, prior])
    x = binary(B)
    torch.manual_seed(4)
    value = obj(x=x)
    torch.manual_seed(4)
    qz = normal(q.net(x=x))
    z = qz.rsample()
    hand = bern(p.net(z=z)).log_prob(x) + std_normal(Z).log_prob(z) - qz.log_prob(z)
    assert_same(value, hand, list(obj.parameters()))


def test_cvae():
    torch.manual_seed(0)
    q = fm.Normal("q(z|x,y)", net=Gaussian(X + C))
    p = fm.Bernoulli("p(x|z,y)", net=Logits(Z + C))
    prior = fm.Normal("p(z|y)", net=Gaussian(C))
    obj = fm.compile("E_{q(z|x,y)}[log p(x|z,y)] - KL(q(z|x,y) || p(z|y))", [q, p, prior])
    x, y = binary(B), torch.arange(B) % C
    torch.manual_seed(5)
    value = obj(x=x, y=y)
    torch.manual_seed(5)
    qz = normal(q.net(x=x, y=y))
    z = qz.rsample()
    hand = bern(p.net(z=z, y=y)).log_prob(x) - kl_divergence(qz, normal(prior.net(y=y)))
    assert_same(value, hand, list(obj.parameters()))


IWAE = (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} "
        r"\frac{p(x,z_k)}{q(z_k|x)}\right]")


def iwae_by_hand(q, p, x, k):
    qz = normal(q.net(x=x))
    z = qz.rsample((k,))
    log_w = bern(p.net(z=z)).log_prob(x) + std_normal(Z).log_prob(z) - qz.log_prob(z)
    return torch.logsumexp(log_w, 0) - math.log(k)


@pytest.mark.parametrize("k", [1, 7])
def test_iwae_matches_handwritten(k):
    q, p, prior = vae()
    obj = fm.compile(IWAE, [q, p, prior])
    assert obj.inputs == ("K", "x")
    x = binary(B)
    torch.manual_seed(6)
    value = obj(x=x, K=k)
    torch.manual_seed(6)
    assert_same(value, iwae_by_hand(q, p, x, k), list(obj.parameters()))
    assert "log-sum-exp" in obj.explain()


def m2():
    torch.manual_seed(0)
    qy = fm.Categorical("q(y|x)", net=Logits(X, C))
    qz = fm.Normal("q(z|x,y)", net=Gaussian(X + C))
    px = fm.Bernoulli("p(x|y,z)", net=Logits(C + Z))
    py = fm.Categorical("p(y)", probs=torch.full((C,), 1.0 / C))
    pz = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    return qy, qz, px, py, pz


M2_LABELLED = "E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)]"
M2_UNLABELLED = ("E_{q(y|x)}[ E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] ] + H[q(y|x)]")


def m2_inner_by_hand(qz, px, py, x, y):
    qzd = normal(qz.net(x=x, y=y))
    z = qzd.rsample()
    return (bern(px.net(y=y, z=z)).log_prob(x) + Categorical(probs=py.probs).log_prob(y)
            + std_normal(Z).log_prob(z) - qzd.log_prob(z))


def test_m2_labelled():
    qy, qz, px, py, pz = m2()
    obj = fm.compile(M2_LABELLED, [qy, qz, px, py, pz])
    assert obj.inputs == ("x", "y")
    x, y = binary(B), torch.arange(B) % C
    torch.manual_seed(7)
    value = obj(x=x, y=y)
    torch.manual_seed(7)
    assert_same(value, m2_inner_by_hand(qz, px, py, x, y), list(obj.parameters()))


def test_m2_unlabelled_value_is_exact_and_uses_score_function():
    qy, qz, px, py, pz = m2()
    obj = fm.compile(M2_UNLABELLED, [qy, qz, px, py, pz])
    assert obj.inputs == ("x",)
    x = binary(B)
    torch.manual_seed(8)
    value = obj(x=x)
    torch.manual_seed(8)
    qyd = Categorical(logits=qy.net(x=x)["logits"])
    y = qyd.sample()
    hand = m2_inner_by_hand(qz, px, py, x, y) + qyd.entropy()
    torch.testing.assert_close(value, hand)
    assert "score-function" in obj.explain()
    # Gradients reach q(y|x) through the surrogate.
    grads = torch.autograd.grad(value.sum(), list(qy.parameters()))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_m2_unlabelled_by_enumeration_is_exact():
    qy, qz, px, py, pz = m2()
    text = r"\sum_{y} q(y|x) E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] + H[q(y|x)]"
    obj = fm.compile(text, [qy, qz, px, py, pz])
    x = binary(B)
    torch.manual_seed(9)
    value = obj(x=x)
    torch.manual_seed(9)
    qyd = Categorical(logits=qy.net(x=x)["logits"])
    ys = qyd.enumerate_support()  # [C, B]
    inner = m2_inner_by_hand(qz, px, py, x, ys)  # one z draw per (class, example)
    hand = (qyd.log_prob(ys).exp() * inner).sum(0) + qyd.entropy()
    assert_same(value, hand, list(obj.parameters()))


def test_jmvae_kl():
    torch.manual_seed(0)
    W = 5
    qxw = fm.Normal("q(z|x,w)", net=Gaussian(X + W))
    qx = fm.Normal("q(z|x)", net=Gaussian(X))
    qw = fm.Normal("q(z|w)", net=Gaussian(W))
    px = fm.Bernoulli("p(x|z)", net=Logits(Z))
    pw = fm.Bernoulli("p(w|z)", net=Logits(Z, W))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    text = (r"E_{q(z|x,w)}[log p(x|z) + log p(w|z)] - KL(q(z|x,w)||p(z)) - \alpha (KL(q(z|x,w)||q(z|x)) "
            r"+ KL(q(z|x,w)||q(z|w)))")
    obj = fm.compile(text, [qxw, qx, qw, px, pw, prior])
    assert obj.inputs == ("alpha", "w", "x")
    x, w = binary(B), binary(B, W, seed=1)
    torch.manual_seed(10)
    value = obj(x=x, w=w, alpha=0.3)
    torch.manual_seed(10)
    q = normal(qxw.net(x=x, w=w))
    z = q.rsample()
    hand = (bern(px.net(z=z)).log_prob(x) + bern(pw.net(z=z)).log_prob(w) - kl_divergence(q, std_normal(Z))
            - 0.3 * (kl_divergence(q, normal(qx.net(x=x))) + kl_divergence(q, normal(qw.net(w=w)))))
    assert_same(value, hand, list(obj.parameters()))


DMM = (r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)] - D_{KL}(q(z_t|z_{t-1},x) \| "
       r"p(z_t|z_{t-1}))")


class SeqPosterior(torch.nn.Module):
    """q(z_t | z_{t-1}, x): the previous state and a summary of the whole sequence."""

    def __init__(self):
        super().__init__()
        self.gauss = Gaussian(Z + X)

    def forward(self, z_prev, x):
        return self.gauss(z_prev, x.mean(1))


def dmm():
    torch.manual_seed(0)
    q = fm.Normal("q(z_t|z_{t-1},x)", net=SeqPosterior())
    trans = fm.Normal("p(z_t|z_{t-1})", net=Gaussian(Z))
    emit = fm.Bernoulli("p(x_t|z_t)", net=Logits(Z))
    return q, trans, emit


def test_deep_markov_model_steps_through_time():
    q, trans, emit = dmm()
    obj = fm.compile(DMM, [q, trans, emit])
    assert obj.inputs == ("x", "z_0")
    assert obj.optional_inputs == ("T",)
    T = 4
    x = torch.bernoulli(torch.full((B, T, X), 0.5))
    z0 = torch.zeros(B, Z)
    torch.manual_seed(11)
    value = obj(x=x, z_0=z0)
    torch.manual_seed(11)
    hand, z_prev = 0.0, z0
    for t in range(T):
        qd = normal(q.net(z_prev, x))
        z = qd.rsample()
        hand = hand + bern(emit.net(z=z)).log_prob(x[:, t]) - kl_divergence(qd, normal(trans.net(z_prev)))
        z_prev = z
    assert_same(value, hand, list(obj.parameters()))
    # T as an input overrides the sequence length: the first two steps only.
    torch.manual_seed(11)
    short = obj(x=x, z_0=z0, T=2)
    assert short.shape == (B,)
    assert "step by step" in obj.explain()


def test_td_vae_samples_the_factorised_joint_right_to_left():
    torch.manual_seed(0)
    b = 4
    belief = fm.Normal("p_B(z|b)", net=Gaussian(b))
    smooth = fm.Normal("q(z_1|z_2,b_1,b_2)", net=Gaussian(Z + 2 * b))
    trans = fm.Normal("p(z_2|z_1)", net=Gaussian(Z))
    decoder = fm.Bernoulli("p(x|z)", net=Logits(Z))
    text = ("q(z_1,z_2|b_1,b_2) = q(z_1|z_2,b_1,b_2) p_B(z_2|b_2)\n"
            "E_{q(z_1,z_2|b_1,b_2)}[log p(x_2|z_2) + log p_B(z_1|b_1) + log p(z_2|z_1) - log p_B(z_2|b_2) "
            "- log q(z_1|z_2,b_1,b_2)]")
    obj = fm.compile(text, [belief, smooth, trans, decoder])
    assert obj.inputs == ("b_1", "b_2", "x_2")
    b1, b2, x2 = torch.randn(B, b), torch.randn(B, b), binary(B)
    torch.manual_seed(12)
    value = obj(b_1=b1, b_2=b2, x_2=x2)
    torch.manual_seed(12)
    pb2 = normal(belief.net(b=b2))
    z2 = pb2.rsample()
    qz1 = normal(smooth.net(z2, b1, b2))
    z1 = qz1.rsample()
    hand = (bern(decoder.net(z=z2)).log_prob(x2) + normal(belief.net(b=b1)).log_prob(z1)
            + normal(trans.net(z1)).log_prob(z2) - pb2.log_prob(z2) - qz1.log_prob(z1))
    assert_same(value, hand, list(obj.parameters()))
    explained = obj.explain()
    assert explained.index("draw z_2") < explained.index("draw z_1")


def test_deep_markov_model_with_a_declared_initial_state():
    """z_0 drawn from a declared p(z_0) instead of being an input (docs/language.md §3)."""
    q, trans, emit = dmm()
    start = fm.Normal("p(z_0)", loc=0.0, scale=1.0, shape=(Z,))
    obj = fm.compile(DMM, [q, trans, emit, start])
    assert obj.inputs == ("x",)
    T = 3
    x = torch.bernoulli(torch.full((B, T, X), 0.5))
    torch.manual_seed(13)
    value = obj(x=x)
    torch.manual_seed(13)
    hand, z_prev = 0.0, None
    for t in range(T):
        if z_prev is None:
            z_prev = std_normal(Z).rsample((B,))
        qd = normal(q.net(z_prev, x))
        z = qd.rsample()
        hand = hand + bern(emit.net(z=z)).log_prob(x[:, t]) - kl_divergence(qd, normal(trans.net(z_prev)))
        z_prev = z
    assert_same(value, hand, list(obj.parameters()))
