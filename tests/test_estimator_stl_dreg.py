"""STL (ELBO) and DReG (IWAE): same value, unbiased encoder gradients, lower variance, on a fixed small
linear-Gaussian VAE whose encoder sits near the exact posterior (fixed seeds, bounded draws)."""

import torch
from torch import nn

import formula as fm

D = 3
W = torch.tensor([1.5, -0.8, 0.6])
ELBO = "E_q(z|x)[log p(x,z) - log q(z|x)]"
IWAE = r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k|x)}\right]"


class Encoder(nn.Module):
    """loc = a * x + c, scale = exp(s): near the exact posterior of p(x|z) = N(W z, I), p(z) = N(0, I); keeps
    its outputs so that each example's gradient can be read off (the examples do not share a draw)."""

    def __init__(self):
        super().__init__()
        post_var = 1 / (1 + W ** 2)
        self.a = nn.Parameter(W * post_var + 0.15)
        self.c = nn.Parameter(torch.full((D,), 0.1))
        self.s = nn.Parameter(0.5 * torch.log(post_var) + 0.2)
        self.out = []  # every call's outputs (the compiled IWAE may condition q more than once)

    def forward(self, x):
        loc, scale = self.a * x + self.c, torch.exp(self.s).expand_as(x)
        for t in (loc, scale):
            if t.requires_grad:
                t.retain_grad()
        self.out.append((loc, scale))
        return {"loc": loc, "scale": scale}


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(W.clone())

    def forward(self, z):
        return {"loc": self.w * z, "scale": torch.ones_like(z)}


def model():
    q = fm.Normal("q(z|x)", net=Encoder())
    p = fm.Normal("p(x|z)", net=Decoder())
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(D,))
    return q, p, prior


X1 = torch.tensor([[0.7, -1.2, 0.4]])


def per_example_grads(text, gradient, n, seed, **inputs):
    """The gradients of each example's value with respect to its encoder outputs (loc, scale): [n, 2D]."""
    q, p, prior = model()
    obj = fm.compile(text, [q, p, prior], gradient=gradient)
    torch.manual_seed(seed)
    value = obj(x=X1.expand(n, D), **inputs)
    value.sum().backward()
    grads = [torch.cat([g(loc), g(scale)], -1) for loc, scale in q.net.out]
    return value.detach(), sum(grads)


def g(t):
    return t.grad if t.grad is not None else torch.zeros_like(t)


def check_unbiased_and_lower_variance(text, gradient, n=4000, **inputs):
    v0, g0 = per_example_grads(text, None, n, seed=1, **inputs)
    v1, g1 = per_example_grads(text, gradient, n, seed=2, **inputs)
    se = (g0.var(0) / n + g1.var(0) / n).sqrt()
    assert ((g0.mean(0) - g1.mean(0)).abs() < 4.5 * se + 1e-6).all(), (g0.mean(0), g1.mean(0), se)
    return (g0.var(0).sum() / g1.var(0).sum()).item()


def test_stl_same_value_as_the_standard_estimator():
    v0, _ = per_example_grads(ELBO, None, 64, seed=0)
    v1, _ = per_example_grads(ELBO, "stl", 64, seed=0)
    torch.testing.assert_close(v0, v1)


def test_stl_is_unbiased_with_lower_variance():
    ratio = check_unbiased_and_lower_variance(ELBO, "stl")
    assert ratio > 2.0, ratio


def test_dreg_same_value_and_the_decoders_gradient_is_iwaes():
    grads = []
    for gradient in (None, "dreg"):
        q, p, prior = model()
        obj = fm.compile(IWAE, [q, p, prior], gradient=gradient)
        torch.manual_seed(0)
        value = obj(x=X1.expand(16, D), K=5)
        (g,) = torch.autograd.grad(value.sum(), [p.net.w])
        grads.append((value.detach(), g))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_dreg_is_unbiased_with_lower_variance():
    ratio = check_unbiased_and_lower_variance(IWAE, "dreg", K=5)
    assert ratio > 2.0, ratio


def test_explain_names_the_estimators():
    q, p, prior = model()
    assert "sticking the landing" in fm.compile(ELBO, [q, p, prior], gradient="stl").explain()
    assert "DReG" in fm.compile(IWAE, [q, p, prior], gradient="dreg").explain()


def test_stl_refuses_iwae():
    q, p, prior = model()
    obj = fm.compile(IWAE, [q, p, prior], gradient="stl")
    try:
        obj(x=X1, K=3)
    except fm.FormulaError as e:
        assert "dreg" in str(e) and "^" in str(e)
    else:
        raise AssertionError("STL on IWAE should be refused")


VR = (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\frac{1}{1-\alpha} \log \frac{1}{K}\sum_{k=1}^{K} "
      r"\left(\frac{p(x,z_k)}{q(z_k|x)}\right)^{1-\alpha}\right]")


def test_dreg_is_unbiased_for_the_vr_bound():
    ratio = check_unbiased_and_lower_variance(VR, "dreg", n=3000, K=5, alpha=0.5)
    assert ratio > 2.0, ratio
