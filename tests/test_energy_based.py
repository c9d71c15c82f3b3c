"""fm.EnergyBased: the contrastive objective compiles through the ordinary expectations, equals a hand-written one
at the same draws, and its gradient is the likelihood's (the chain's draws are constants); its density is
unnormalised and `log p` is refused saying why; the replay buffer is the declaration's state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import formula as fm
from formula.families.energy import EnergyBased
from formula.samplers import Langevin

CONTRASTIVE = "E_{p_data(x)}[U_theta(x)] - E_{p_theta(x')}[U_theta(x')]"
STEPS, EPS = 7, 0.05


def _model(buffer: int = 0):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.SiLU(), nn.Linear(8, 1))
    energy = fm.Function("U_theta(x)", net=net)
    p = EnergyBased("p_theta(x)", energy=energy, shape=(2,), sampler=Langevin(steps=STEPS, step_size=EPS,
                                                                              buffer=buffer))
    return net, energy, p


def _chain_by_hand(net, n):
    """The sampler's chain written out: uniform starts in [-1, 1], then x + eps (-grad U) + sqrt(2 eps) xi."""
    x = torch.empty(n, 2).uniform_(-1, 1)
    for _ in range(STEPS):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(net(x).sum(), x)
        x = (x - EPS * g + math.sqrt(2 * EPS) * torch.randn_like(x)).detach()
    return x


def test_contrastive_objective_equals_the_hand_written_one_and_its_gradient_is_the_likelihoods():
    net, energy, p = _model()
    obj = fm.compile(CONTRASTIVE, [energy, p, fm.Data("p_data(x)")])
    data = torch.randn(6, 2)
    torch.manual_seed(5)
    value = obj(x=data)
    value.mean().backward()
    got = [w.grad.clone() for w in net.parameters()]
    net.zero_grad()
    torch.manual_seed(5)
    negatives = _chain_by_hand(net, 6)
    by_hand = net(data).squeeze(-1) - net(negatives).squeeze(-1)
    assert torch.allclose(value, by_hand, atol=1e-6)
    by_hand.mean().backward()  # E_data[grad U] - E_model[grad U] at the chain's (constant) ends
    assert all(torch.allclose(a, w.grad, atol=1e-6) for a, w in zip(got, net.parameters()))


def test_the_draws_are_pathwise_through_a_detached_chain():
    _, energy, p = _model()
    caps = p.capabilities
    assert caps.reparameterised and caps.can_sample and not caps.has_density and not caps.discrete
    assert "unnormalised" in caps.label
    x = p.sample((4,))["x"]
    assert x.shape == (4, 2) and not x.requires_grad


def test_log_p_is_refused_because_the_density_is_unnormalised():
    _, energy, p = _model()
    with pytest.raises(fm.FormulaCheckError, match="unnormalised") as info:
        fm.compile("E_{p_data(x)}[log p_theta(x)]", [p, fm.Data("p_data(x)")])
    assert "^" in str(info.value)  # a caret under the scored variable
    with pytest.raises(fm.FormulaCheckError, match="normaliser Z is unknown"):
        p.log_prob(x=torch.zeros(3, 2))
    assert torch.allclose(p.unnormalised_log_prob(x=torch.zeros(3, 2)), -energy(torch.zeros(3, 2)).squeeze(-1))


def test_the_replay_buffer_is_the_declarations_state_and_persists_chains():
    net, energy, p = _model(buffer=32)
    assert p.state_dict()["replay.samples"].shape == (32, 2)
    before = p.replay.samples.clone()
    p.sample((8,))
    assert (p.replay.samples != before).any(dim=1).sum() >= 1
    assert p.double().replay.samples.dtype == torch.float64


def test_training_lowers_the_energy_of_the_data_relative_to_elsewhere():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 32), nn.SiLU(), nn.Linear(32, 1))
    energy = fm.Function("U_theta(x)", net=net)
    p = EnergyBased("p_theta(x)", energy=energy, shape=(2,),
                    sampler=Langevin(steps=20, step_size=0.01, buffer=256, init=fm.samplers.UniformInit(-3, 3)))
    obj = fm.compile(CONTRASTIVE, [energy, p, fm.Data("p_data(x)")])
    data = 0.3 * torch.randn(512, 2) + torch.tensor([1.0, -1.0])
    trainer = fm.Trainer(obj, maximize=False, lr=3e-3, batch_size=64, progress=False, device="cpu")
    trainer.fit({"x": data}, epochs=8)
    with torch.no_grad():
        far = torch.tensor([[-2.0, 2.0], [2.5, 2.5], [-2.5, -2.5]])
        assert net(data).mean() < net(far).mean() - 1.0


@pytest.mark.parametrize("make, match", [
    (lambda: EnergyBased("p(x|y)", energy=lambda x: x, shape=(2,)), "conditional"),
    (lambda: EnergyBased("p(x)", energy=3, shape=(2,)), "energy= must be"),
    (lambda: EnergyBased("p(x)", energy=lambda x: x, shape=(2,), sampler="langevin"), "sampler= must be"),
])
def test_bad_declarations_are_check_errors(make, match):
    with pytest.raises(fm.FormulaCheckError, match=match):
        make()
