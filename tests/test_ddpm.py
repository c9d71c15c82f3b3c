"""DDPM's simple loss (Ho et al. 2020, eq. 14) as the paper writes it, with \\bar\\alpha_t a declared schedule
looked up at the drawn t: the compiled loss equals a hand-written one at the same draws, its gradient reaches the
noise predictor, and training it lowers the loss of a noise predictor on a 1-D Gaussian towards the exact one."""

from __future__ import annotations

import torch
from torch import nn

import formula as fm
from formula.families.diffusion import linear_betas
from formula.families.schedule import Schedule

SIMPLE = (r"t \sim \mathcal{U}\{1, \ldots, T\}" "\n" r"\epsilon \sim \mathcal{N}(0, I)" "\n"
          r"\mathbb{E}_{t, x_0, \epsilon}\left[\| \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0"
          r" + \sqrt{1 - \bar\alpha_t} \epsilon, t) \|^2\right]")
SIMPLE_ASCII = (r"t ~ \mathcal{U}\{1, ..., T\}; epsilon ~ \mathcal{N}(0, I); E_{t, x_0, epsilon}[||epsilon - "
                r"epsilon_theta(sqrt(\bar{alpha}_t) x_0 + sqrt(1 - \bar{alpha}_t) epsilon, t)||^2]")
T = 20


class Noise(nn.Module):
    """(x_t, t) -> eps, t an integer tensor [batch] scaled to [0, 1]."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 2))

    def forward(self, x, t):
        return self.net(torch.cat([x, t.reshape(-1, 1).to(x.dtype) / T], -1))


def _decls(net):
    alpha_bar = torch.cumprod(1 - linear_betas(T, 1e-3, 0.3), 0).float()
    return [fm.Function(r"\epsilon_\theta(x_t, t)", net=net), fm.Data("p_data(x_0)"),
            Schedule("alpha_bar", alpha_bar)], alpha_bar


def test_simple_loss_equals_the_hand_written_one_at_the_same_draws():
    torch.manual_seed(0)
    net = Noise()
    decls, alpha_bar = _decls(net)
    loss = fm.compile(SIMPLE, decls)
    x_0 = torch.randn(8, 2)
    torch.manual_seed(1)
    got = loss(x_0=x_0, T=T)
    torch.manual_seed(1)  # t first (uniform on 1..T), then epsilon, as the expectation's items are written
    t = torch.distributions.Categorical(logits=torch.zeros(T)).sample((8,)) + 1
    eps = torch.randn(8, 2)
    a = alpha_bar[t - 1][:, None]
    want = ((eps - net(a.sqrt() * x_0 + (1 - a).sqrt() * eps, t)) ** 2).sum(-1)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    got.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_the_paper_s_latex_and_the_ascii_are_one_formula():
    assert fm.equivalent(SIMPLE, SIMPLE_ASCII)


def test_training_approaches_the_exact_noise_predictor_of_gaussian_data():
    """Data N(0, I): E[eps | x_t] = sqrt(1 - abar_t) x_t, whose loss is E[1 - (1 - abar_t)] * D = D * E[abar_t]."""
    torch.manual_seed(0)
    net = Noise()
    decls, alpha_bar = _decls(net)
    loss = fm.compile(SIMPLE, decls)
    trainer = fm.Trainer(loss, maximize=False, lr=3e-3, batch_size=256, progress=False, device="cpu",
                         inputs={"T": T})
    history = trainer.fit({"x_0": torch.randn(4096, 2)}, epochs=12)
    floor = 2 * float(alpha_bar.mean())  # the exact predictor's expected loss
    assert history["loss"][-1] < history["loss"][0]
    assert abs(history["loss"][-1] - floor) < 0.1 * 2  # within 0.1 per dimension of the optimum
