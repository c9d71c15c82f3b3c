"""fm.Trainer on a formula without data inputs (variational inference of a fixed target): `fit(None, epochs,
steps_per_epoch=S)` takes S steps an epoch of `batch_size` draws each, the same updates as a hand-written loop,
and `evaluate(None)` averages calls of `batch_size` draws; the mistakes are FormulaInputErrors that say the fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import formula as fm

KL_TEXT = "E_{q(z)}[log q(z) - log p(z)]"


class Gaussian(nn.Module):
    """A learnable diagonal Gaussian over 2 dimensions (the zuko pattern: forward() returns the distribution)."""

    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.tensor([0.5, -0.5]))
        self.log_scale = nn.Parameter(torch.zeros(2))

    def forward(self):
        return torch.distributions.Independent(torch.distributions.Normal(self.loc, self.log_scale.exp()), 1)


def objective():
    torch.manual_seed(0)
    return fm.compile(KL_TEXT, [fm.LazyDistribution("q(z)", Gaussian()),
                                fm.Normal("p(z)", loc=1.0, scale=2.0, shape=(2,))])


def test_fit_without_data_takes_the_hand_written_loops_steps():
    steps, draws = 7, 16
    mine, hand = objective(), objective()
    torch.manual_seed(3)
    trainer = fm.Trainer(mine, maximize=False, optimizer="sgd", lr=0.1, batch_size=draws, device="cpu",
                         progress=False)
    history = trainer.fit(None, epochs=2, steps_per_epoch=steps)

    torch.manual_seed(3)
    opt = torch.optim.SGD(hand.parameters(), lr=0.1)
    means = []
    for _ in range(2):
        total = 0.0
        for _ in range(steps):
            loss = hand(batch_size=draws).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        means.append(total / steps)

    assert trainer.step == 2 * steps and trainer.epoch == 2
    for a, b in zip(mine.parameters(), hand.parameters()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.tensor(history["loss"]), torch.tensor(means))


def test_fit_without_data_moves_toward_the_target_and_evaluate_averages_draws():
    kl = objective()
    trainer = fm.Trainer(kl, maximize=False, lr=0.05, batch_size=64, device="cpu", progress=False)
    before = trainer.evaluate(None, steps=4)["objective"]
    trainer.fit(None, epochs=1, steps_per_epoch=300)
    after = trainer.evaluate(None, steps=4)["objective"]
    q = next(m for m in kl.modules() if isinstance(m, Gaussian))
    exact = torch.distributions.kl_divergence(q(),
                                              torch.distributions.Independent(
                                                  torch.distributions.Normal(torch.ones(2), 2 * torch.ones(2)), 1))
    assert after < before and after < 0.05
    assert abs(after - float(exact.detach())) < 0.1  # the Monte Carlo KL of 256 draws is near the closed form


def test_the_mistakes_say_the_fix():
    kl = objective()
    trainer = fm.Trainer(kl, maximize=False, device="cpu", progress=False)
    with pytest.raises(fm.FormulaInputError, match="steps_per_epoch=N"):
        trainer.fit(None, epochs=1)
    with pytest.raises(fm.FormulaInputError, match="steps_per_epoch"):
        trainer.fit(None, epochs=1, steps_per_epoch=0)
    vae_like = fm.compile("E_{q(z|x)}[log p(x|z)]", [
        fm.Normal("q(z|x)", net=nn.Sequential(nn.Linear(3, 4), _LocScale())),
        fm.Normal("p(x|z)", net=nn.Sequential(nn.Linear(2, 6), _LocScale()))])
    with pytest.raises(fm.FormulaInputError, match="reads x from the data"):
        fm.Trainer(vae_like, device="cpu", progress=False).fit(None, epochs=1, steps_per_epoch=3)
    with pytest.raises(fm.FormulaInputError, match="without data"):
        fm.Trainer(vae_like, device="cpu", progress=False).fit({"x": torch.zeros(4, 3)}, steps_per_epoch=3)


class _LocScale(nn.Module):
    def forward(self, h):
        loc, s = h.chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(s) + 1e-3}


def test_a_checkpoint_resumes_inside_a_data_free_epoch(tmp_path):
    straight, resumed = objective(), objective()
    torch.manual_seed(1)
    fm.Trainer(straight, maximize=False, optimizer="sgd", lr=0.1, batch_size=8, device="cpu",
               progress=False).fit(None, epochs=1, steps_per_epoch=6)

    torch.manual_seed(1)
    first = fm.Trainer(resumed, maximize=False, optimizer="sgd", lr=0.1, batch_size=8, device="cpu", progress=False)
    first.fit(None, epochs=1, steps_per_epoch=6, checkpoint=tmp_path / "c.pt", checkpoint_every=4)
    assert first.step == 6
    again = fm.Trainer.load(tmp_path / "c.pt", objective(), device="cpu", progress=False)
    assert again.step == 6 and again.epoch == 1
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
