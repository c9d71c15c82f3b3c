"""formula.samplers: Langevin reaches a known Gaussian's mean and variance in a bounded number of steps (fixed
seeds), follows an energy or a score alike, keeps or cuts the graph through the chain as asked, restarts from its
replay buffer; annealed Langevin ends at the last noise level's smoothed target; ancestral sampling walks
t = T, ..., 1 and returns the last mean."""

from __future__ import annotations

import math

import pytest
import torch

import formula as fm
from formula.samplers import progress
from formula.samplers import Ancestral, AnnealedLangevin, Langevin, ReplayBuffer, UniformInit, score_of_energy

MEAN = torch.tensor([1.5, -2.0])
STD = torch.tensor([0.5, 1.2])


def gaussian_energy(x):
    return (((x - MEAN) / STD) ** 2).sum(-1) / 2


def gaussian_score(x):
    return -(x - MEAN) / STD ** 2


def test_langevin_reaches_the_mean_and_variance_of_a_gaussian_energy():
    torch.manual_seed(0)
    sampler = Langevin(steps=400, step_size=0.02)
    x = sampler.run(torch.zeros(4000, 2), energy=gaussian_energy)
    assert torch.allclose(x.mean(0), MEAN, atol=0.06)
    # unadjusted Langevin's bias in the variance is about eps / 2 relative: well inside 10%
    assert torch.allclose(x.var(0), STD ** 2, rtol=0.1)


def test_an_energy_and_its_score_give_the_same_chain():
    sampler = Langevin(steps=20, step_size=0.01)
    torch.manual_seed(1)
    by_energy = sampler.run(torch.zeros(50, 2), energy=gaussian_energy)
    torch.manual_seed(1)
    by_score = sampler.run(torch.zeros(50, 2), score=gaussian_score)
    assert torch.allclose(by_energy, by_score, atol=1e-5)


def test_score_of_energy_is_minus_the_gradient_and_leaves_the_parameters_alone():
    w = torch.nn.Parameter(torch.tensor(2.0))
    x = torch.randn(5, 2)
    s = score_of_energy(lambda v: w * (v ** 2).sum(-1), x)
    assert torch.allclose(s, -2 * 2.0 * x) and w.grad is None and not s.requires_grad


def test_the_chain_is_detached_unless_create_graph():
    w = torch.nn.Parameter(torch.tensor([0.5, 0.5]))
    energy = lambda v: ((v - w) ** 2).sum(-1) / 2  # noqa: E731
    cut = Langevin(steps=5, step_size=0.1).run(torch.zeros(3, 2), energy=energy)
    assert not cut.requires_grad
    kept = Langevin(steps=5, step_size=0.1, noise=0.0, create_graph=True).run(torch.zeros(3, 2), energy=energy)
    kept.sum().backward()
    # noise-free, x_k = w (1 - 0.9^k) exactly: d sum(x_5) / d w_i = 3 (1 - 0.9^5)
    assert torch.allclose(w.grad, torch.full((2,), 3 * (1 - 0.9 ** 5)))


def test_clip_keeps_every_step_in_the_box():
    x = Langevin(steps=10, step_size=1.0, clip=(-1, 1)).run(torch.zeros(100, 2), score=lambda v: 10 + 0 * v)
    assert x.min() >= -1 and x.max() <= 1


def test_replay_buffer_restarts_from_its_samples_and_writes_the_ends_back():
    buffer = ReplayBuffer(1000, (2,), reinit=0.0, init=UniformInit(5.0, 6.0))
    torch.manual_seed(3)
    index, start = buffer.starts(8)  # the slots and starts that sample() below will draw, from the same seed
    assert torch.equal(start, buffer.samples[index]) and len(set(index.tolist())) == 8
    torch.manual_seed(3)
    x = Langevin(steps=3, step_size=0.01).sample(8, start, (2,), energy=gaussian_energy, buffer=buffer)
    assert torch.equal(buffer.samples[index], x) and not torch.equal(x, start)
    fresh = ReplayBuffer(16, (2,), reinit=1.0, init=UniformInit(5.0, 6.0))
    fresh.samples.zero_()
    _, start = fresh.starts(8)
    assert (start >= 5).all()  # every chain reinitialised from the noise


def test_replay_buffer_is_module_state():
    buffer = ReplayBuffer(4, (3,))
    assert buffer.state_dict()["samples"].shape == (4, 3)
    assert buffer.double().samples.dtype == torch.float64


def test_annealed_langevin_ends_at_the_smoothed_target_of_the_last_level():
    torch.manual_seed(0)
    sigmas = [1.0, 0.5, 0.25]
    smoothed = lambda x, s: -(x - MEAN) / (STD ** 2 + s ** 2)  # noqa: E731  (N(MEAN, STD^2) convolved with N(0, s^2))
    x = AnnealedLangevin(sigmas, steps=150, step_size=0.05).run(torch.zeros(4000, 2), score=smoothed)
    assert torch.allclose(x.mean(0), MEAN, atol=0.06)
    assert torch.allclose(x.var(0), STD ** 2 + 0.25 ** 2, rtol=0.12)


def test_ancestral_walks_down_from_T_and_returns_the_last_mean():
    seen = []

    def transition(x, t):
        seen.append(int(t[0]))
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        return torch.distributions.Normal(0 * x + t[:, None], 1.0)  # the mean forgets x_t

    x = Ancestral(steps=4).run(torch.zeros(6, 2), transition)
    assert seen == [4, 3, 2, 1]
    assert torch.equal(x, torch.ones(6, 2))  # the last step is the mean at t = 1: no noise added there
    noisy = Ancestral(steps=4, mean_last=False).run(torch.zeros(6, 2), transition)
    assert noisy.std() > 0


def test_ancestral_refuses_what_is_not_a_transition():
    with pytest.raises(fm.FormulaInputError, match="torch distribution"):
        Ancestral(steps=2).run(torch.zeros(2, 2), lambda x, t: x)
    with pytest.raises(fm.FormulaInputError, match="failed at t = 2"):
        Ancestral(steps=2).run(torch.zeros(2, 2), lambda x, t: torch.distributions.Normal(x @ torch.ones(3), 1.0))


@pytest.mark.parametrize("make, match", [
    (lambda: Langevin(steps=0), "steps= must be a whole number"),
    (lambda: Langevin(step_size=-0.1), "step_size= must be a finite number > 0"),
    (lambda: Langevin(step_size=math.nan), "step_size="),
    (lambda: Langevin(reinit=1.5), "reinit= must be a probability"),
    (lambda: Langevin(clip=(1, 0)), "low < high"),
    (lambda: Langevin(buffer=True), "buffer="),
    (lambda: AnnealedLangevin([0.1, 1.0]), "decreasing"),
    (lambda: Langevin().run(torch.zeros(1, 1)), "exactly one of energy=, score="),
    (lambda: AnnealedLangevin([1.0]).run(torch.zeros(1, 1), energy=gaussian_energy), "score="),
])
def test_bad_options_are_input_errors(make, match):
    with pytest.raises(fm.FormulaInputError, match=match):
        make()


def test_progress_bar_counts_the_steps(capsys):
    Langevin(steps=7, step_size=0.01, progress=True).run(torch.zeros(2, 2), score=gaussian_score)
    assert "Langevin" in capsys.readouterr().err
    bar = progress.steps(7, "Langevin", True)
    assert list(bar) == list(range(7)) and bar.n == 7 and bar.total == 7
    assert progress.steps(7, "Langevin", False) == range(7)  # off: a plain range, nothing printed
