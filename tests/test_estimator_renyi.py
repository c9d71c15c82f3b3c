"""The Renyi / VR bound (Li & Turner 2016) compiles through the log-sum-exp path: finite with log-densities near
-1e4, IWAE at alpha = 0 exactly (same draws), the mean log-weight over the K draws as alpha -> 1."""

import torch

import formula as fm
from models import X, binary, vae

VR = (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\frac{1}{1-\alpha} \log \frac{1}{K}\sum_{k=1}^{K} "
      r"\left(\frac{p(x,z_k)}{q(z_k|x)}\right)^{1-\alpha}\right]")
IWAE = r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k|x)}\right]"
MEAN_LOG_W = r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\frac{1}{K}\sum_{k=1}^{K} \log \frac{p(x,z_k)}{q(z_k|x)}\right]"


def at_seed(obj, seed=0, **inputs):
    torch.manual_seed(seed)
    return obj(**inputs)


def test_vr_bound_is_a_log_sum_exp():
    assert "log-sum-exp" in fm.compile(VR, list(vae())).explain()


def test_vr_bound_at_alpha_zero_is_iwae_exactly():
    decls, x = list(vae()), binary(8)
    vr = at_seed(fm.compile(VR, decls), x=x, K=5, alpha=0.0)
    iwae = at_seed(fm.compile(IWAE, decls), x=x, K=5)
    torch.testing.assert_close(vr, iwae, rtol=0, atol=0)


def test_vr_bound_near_alpha_one_is_the_mean_log_weight():
    decls, x = list(vae()), binary(8)
    vr = at_seed(fm.compile(VR, decls), x=x, K=5, alpha=1 - 1e-4)
    mean_log_w = at_seed(fm.compile(MEAN_LOG_W, decls), x=x, K=5)
    torch.testing.assert_close(vr, mean_log_w, rtol=0, atol=5e-3)


def test_vr_bound_is_finite_with_log_densities_near_minus_1e4():
    q, p, prior = vae()
    with torch.no_grad():
        p.net.net[-1].weight.mul_(0).add_(1.0)
        p.net.net[-1].bias.fill_(-3000.0)  # log p(x|z) ~ -1e4 for x = 1
    obj = fm.compile(VR, [q, p, prior])
    value = at_seed(obj, x=torch.ones(4, X), K=50, alpha=0.5)
    assert torch.isfinite(value).all() and (value < -5e3).all()
    (g,) = torch.autograd.grad(value.sum(), [p.net.net[-1].bias])
    assert torch.isfinite(g).all()


def test_vr_bound_with_dreg_keeps_its_value():
    decls, x = list(vae()), binary(8)
    plain = at_seed(fm.compile(VR, decls), x=x, K=5, alpha=0.5)
    dreg = at_seed(fm.compile(VR, decls, gradient="dreg"), x=x, K=5, alpha=0.5)
    torch.testing.assert_close(plain, dreg)
