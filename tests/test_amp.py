"""`Trainer(amp=True)`: bfloat16 autocast for the networks, float32 for the densities; the digits VAE trained so
reaches the float32 run's held-out ELBO within 1% (the same seed, a fixed number of steps)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import formula as fm
from formula.errors import FormulaInputError
from formula.train.precision import amp_dtype

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from common import digits  # noqa: E402

ELBO = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
STEPS = 240


class _Encoder(nn.Module):
    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))

    def forward(self, x):
        loc, s = self.body(x).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(s) + 1e-4}


class _Decoder(nn.Module):
    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 64))

    def forward(self, z):
        return {"logits": self.body(z)}


def _vae(latent: int = 4, hidden: int = 64):
    q = fm.Normal("q(z|x)", net=_Encoder(latent, hidden))
    p = fm.Bernoulli("p(x|z)", net=_Decoder(latent, hidden))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(latent,))
    return fm.compile(ELBO, [q, p, prior])


def _held_out_elbo(amp) -> float:
    torch.manual_seed(0)
    train, held = digits.load(seed=0)
    elbo = _vae()
    trainer = fm.Trainer(elbo, lr=3e-3, batch_size=64, amp=amp, device="cpu", progress=False)
    while trainer.step < STEPS:
        trainer.fit({"x": train[: 64 * 24]}, epochs=1)
    torch.manual_seed(1)
    full = fm.Trainer(elbo, batch_size=512, device="cpu", progress=False)  # evaluated in float32 either way
    return sum(full.evaluate({"x": held})["objective"] for _ in range(4)) / 4


def test_amp_trains_the_digits_vae_within_one_percent_of_float32():
    float32, bf16 = _held_out_elbo(False), _held_out_elbo(True)
    assert abs(bf16 - float32) <= 0.01 * abs(float32), (bf16, float32)


def test_networks_run_in_bfloat16_and_densities_in_float32():
    torch.manual_seed(0)
    elbo = _vae()
    seen, given = [], []
    for module in elbo.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    trainer = fm.Trainer(elbo, batch_size=16, amp=True, device="cpu", progress=False)
    for module in elbo.modules():  # registered after the trainer's: sees what the distributions are given
        if isinstance(module, (_Encoder, _Decoder)):
            module.register_forward_hook(lambda m, a, out: given.extend(v.dtype for v in out.values()))
    stats = trainer.train_step({"x": torch.rand(16, 64)})
    assert seen and set(seen) == {torch.bfloat16}  # the networks' matrix products
    assert given and set(given) == {torch.float32}  # the distributions' parameters
    values, terms = elbo.evaluate(x=torch.rand(4, 64))  # outside autocast: float32 throughout
    assert values.dtype == torch.float32 and all(t.dtype == torch.float32 for t in terms.values())
    assert all(isinstance(v, float) for v in stats.values())


def test_amp_options():
    cpu = torch.device("cpu")
    assert amp_dtype(False, cpu) is None and amp_dtype(True, cpu) == torch.bfloat16
    assert amp_dtype("bf16", cpu) == torch.bfloat16
    assert amp_dtype("float16", cpu) == amp_dtype("fp16", cpu) == torch.float16
    with pytest.raises(FormulaInputError, match="amp="):
        amp_dtype("int8", cpu)


def test_float16_trains_with_a_loss_scaler_that_resumes_exactly(tmp_path):
    """amp="float16": networks in float16, the loss scaled by a GradScaler (its state in the checkpoint)."""
    torch.manual_seed(0)
    train, _ = digits.load(seed=0)
    elbo = _vae()
    trainer = fm.Trainer(elbo, lr=3e-3, batch_size=64, amp="float16", device="cpu", progress=False)
    first = trainer.fit({"x": train[:512]}, epochs=1)["objective"][-1]
    last = trainer.fit({"x": train[:512]}, epochs=3)["objective"][-1]
    assert last > first  # the ELBO rises
    assert trainer._scaler is not None and trainer._scaler.get_scale() > 0
    trainer._scaler.update(1234.0)
    trainer.save(tmp_path / "run.ckpt")
    again = fm.Trainer.load(tmp_path / "run.ckpt", _vae(), amp="float16", device="cpu", progress=False)
    assert again._scaler.get_scale() == 1234.0


def test_a_float16_step_whose_gradients_overflow_is_skipped_not_diverged():
    torch.manual_seed(0)
    elbo = _vae()
    trainer = fm.Trainer(elbo, batch_size=16, amp="float16", device="cpu", progress=False)
    trainer._scaler.load_state_dict({**trainer._scaler.state_dict(), "scale": 1e38})  # scaled gradients overflow
    before = [p.detach().clone() for p in elbo.parameters()]
    stats = trainer.train_step({"x": torch.rand(16, 64).round()})
    assert stats["skipped"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(before, elbo.parameters()))  # no update
    assert trainer._scaler.get_scale() < 1e38  # backed off
