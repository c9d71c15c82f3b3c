"""Denoising score matching as Vincent (2011) and NCSN (Song & Ermon 2019, eqs. 5-6) write it: the compiled loss
equals a hand-written one at the same noise, for one sigma and for the sum over several; annealed Langevin from
the score of a known smoothed Gaussian lands on it (tests/test_samplers.py), and here from a trained score."""

from __future__ import annotations

import torch
from torch import nn

import formula as fm
from formula.families.schedule import Schedule

DSM = (r"\mathbb{E}_{p_{data}(x)} \mathbb{E}_{\tilde x \sim \mathcal{N}(x, \sigma^2 I)}"
       r"[\| s_\theta(\tilde x) + (\tilde x - x) / \sigma^2 \|^2]")
NCSN = (r"\frac{1}{L} \sum_{i=1}^{L} \frac{1}{2} \sigma_i^2 \mathbb{E}_{p_{data}(x)} "
        r"\mathbb{E}_{\tilde x \sim \mathcal{N}(x, \sigma_i^2 I)}"
        r"[\| s_\theta(\tilde x, \sigma_i) + (\tilde x - x) / \sigma_i^2 \|^2]")


class NoiseConditional(nn.Module):
    """(x, sigma) -> net([x, log sigma]) / sigma, sigma a number or a 0-d tensor."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 2))

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, sigma.log()], -1)) / sigma


def test_dsm_equals_the_hand_written_loss_at_the_same_noise():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 2))
    objective = fm.compile(DSM, [fm.Function(r"s_\theta(\tilde x)", net=net), fm.Data("p_data(x)")])
    x, sigma = torch.randn(8, 2), 0.3
    torch.manual_seed(1)
    got = objective(x=x, sigma=sigma)
    torch.manual_seed(1)
    noisy = x + sigma * torch.randn_like(x)
    want = ((net(noisy) + (noisy - x) / sigma ** 2) ** 2).sum(-1)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def _ncsn_by_hand(net, x, sigmas):
    want = torch.zeros(len(x))
    for s in sigmas:  # i = 1..L in order, one draw of x~ each
        noisy = x + s * torch.randn_like(x)
        want = want + 0.5 * s ** 2 * ((net(noisy, s) + (noisy - x) / s ** 2) ** 2).sum(-1) / len(sigmas)
    return want


def test_ncsn_sum_over_sigmas_equals_the_hand_written_loss_at_the_same_noise():
    torch.manual_seed(0)
    net = NoiseConditional()
    x, sigmas = torch.randn(8, 2), torch.tensor([1.0, 0.5, 0.1])
    objective = fm.compile(NCSN, [fm.Function(r"s_\theta(\tilde x, \sigma)", net=net), fm.Data("p_data(x)")])
    torch.manual_seed(1)
    got = objective(x=x, sigma=sigmas.expand(8, 3), L=3)  # sigma_i: column i of an input sigma [batch, L]
    torch.manual_seed(1)
    assert torch.allclose(got, _ncsn_by_hand(net, x, sigmas), rtol=1e-5, atol=1e-5)
    got.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_ncsn_with_the_sigmas_declared_as_a_schedule():
    torch.manual_seed(0)
    net = NoiseConditional()
    x, sigmas = torch.randn(8, 2), torch.tensor([1.0, 0.5, 0.1])
    decls = [fm.Function(r"s_\theta(\tilde x, \sigma)", net=net), fm.Data("p_data(x)"), Schedule("sigma", sigmas)]
    objective = fm.compile(NCSN, decls)
    torch.manual_seed(1)
    got = objective(x=x, L=3)
    torch.manual_seed(1)
    assert torch.allclose(got, _ncsn_by_hand(net, x, sigmas), rtol=1e-5, atol=1e-5)


def test_a_trained_noise_conditional_score_samples_a_gaussian_by_annealed_langevin():
    torch.manual_seed(0)
    net = NoiseConditional()
    mean, std = torch.tensor([1.0, -1.0]), 0.5
    data = mean + std * torch.randn(2048, 2)
    sigmas = torch.tensor([1.0, 0.4, 0.15])
    decls = [fm.Function(r"s_\theta(\tilde x, \sigma)", net=net), fm.Data("p_data(x)"), Schedule("sigma", sigmas)]
    objective = fm.compile(NCSN, decls)
    trainer = fm.Trainer(objective, maximize=False, lr=3e-3, batch_size=128, progress=False, device="cpu",
                         inputs={"L": 3})
    trainer.fit({"x": data}, epochs=10)
    sampler = fm.AnnealedLangevin(sigmas.tolist(), steps=100, step_size=0.02)
    with torch.no_grad():
        x = sampler.run(torch.rand(2000, 2) * 6 - 3, score=net)
    assert torch.allclose(x.mean(0), mean, atol=0.15)
    assert torch.allclose(x.std(0), torch.full((2,), (std ** 2 + 0.15 ** 2) ** 0.5), rtol=0.25)
