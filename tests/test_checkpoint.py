"""Checkpoints: exact resumption, atomic writes, and refusing truncated, foreign or mismatched files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch

from toy_objectives import Autoencoder, GaussianVAE, binary_data, compiled_vae, parameters_vector

from formula.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, seal
from formula.errors import FormulaError
from formula.train.trainer import Trainer


def _warmup(step: int) -> float:
    return min(1.0, 0.1 + step / 10)


def _options():
    return dict(inputs={"beta": _warmup}, lr=5e-3, batch_size=16, progress=False,
                scheduler=lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.99))


def test_resume_continues_exactly(tmp_path):
    """Two epochs straight == one epoch, save, load into fresh networks, one more epoch: identical bits,
    with sampling (the RNG state travels), Adam's moments, an LR scheduler and a beta schedule."""
    x = binary_data(80)  # 5 batches: the last epoch's shuffle and every draw must match
    torch.manual_seed(0)
    straight = GaussianVAE(beta=True)
    straight_trainer = Trainer(straight, **_options())
    straight_trainer.fit({"x": x}, epochs=2)

    path = tmp_path / "run.ckpt"
    torch.manual_seed(0)
    first = GaussianVAE(beta=True)
    t1 = Trainer(first, **_options())
    t1.fit({"x": x}, epochs=1)
    t1.save(path)

    torch.manual_seed(123)  # fresh networks, different initialisation and RNG: the checkpoint restores both
    resumed = GaussianVAE(beta=True)
    options = _options()
    t2 = Trainer.load(path, resumed, inputs=options["inputs"], scheduler=options["scheduler"], progress=False)
    assert (t2.step, t2.epoch) == (5, 1)
    t2.fit({"x": x}, epochs=1)

    assert torch.equal(parameters_vector(resumed), parameters_vector(straight))
    assert t2.history == straight_trainer.history
    assert t2.optimizer.param_groups[0]["lr"] == straight_trainer.optimizer.param_groups[0]["lr"]
    assert resumed.seen_beta[-5:] == straight.seen_beta[-5:]
    assert resumed.seen_beta[-5:] == pytest.approx([_warmup(s) for s in range(5, 10)])


def test_checkpoint_holds_only_plain_data_and_loads_weights_only(tmp_path, monkeypatch):
    trainer = Trainer(Autoencoder(), inputs=None, batch_size=16, progress=False)
    trainer.fit(binary_data(32), epochs=1)
    path = tmp_path / "a.ckpt"
    trainer.save(path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    state = load_checkpoint(path)
    assert calls == [True]
    assert state["format"] == "formula.checkpoint" and state["step"] == 2
    assert state["config"]["optimizer"] == "adam" and state["config"]["rule"] == "SingleObjective"
    assert set(state["update"]["optimizers"]) == {"main"}


def test_save_is_atomic(tmp_path, monkeypatch):
    """A write that dies half-way leaves the previous checkpoint intact and no temporary file behind."""
    path = tmp_path / "run.ckpt"
    trainer = Trainer(Autoencoder(), batch_size=16, progress=False)
    trainer.save(path)
    before = path.read_bytes()
    trainer.fit(binary_data(32), epochs=1)

    def dies_before_the_rename(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", dies_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.ckpt"]


def _saved(tmp_path) -> Path:
    trainer = Trainer(Autoencoder(), batch_size=16, progress=False)
    trainer.fit(binary_data(32), epochs=1)
    path = tmp_path / "good.ckpt"
    trainer.save(path)
    return path


class _Payload:  # pickled by reference: weights_only loading must refuse it
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign", "pickle", "missing", "other networks"])
def test_bad_files_raise_and_load_nothing(tmp_path, kind):
    path = _saved(tmp_path)
    bad = tmp_path / "bad.ckpt"
    if kind == "truncated":
        data = path.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        match = "truncated"
    elif kind == "garbage":
        bad.write_bytes(b"not a checkpoint at all\n" * 10)
        match = "truncated or is not a torch checkpoint"
    elif kind == "foreign":
        torch.save({"model": torch.zeros(3)}, bad)
        match = "not a formula checkpoint"
    elif kind == "pickle":  # sealed as formula seals: only weights_only loading stands in the way
        buffer = io.BytesIO()
        torch.save({"format": "formula.checkpoint", "x": _Payload()}, buffer)
        bad.write_bytes(seal(buffer.getvalue()))
        match = "weights_only"
    elif kind == "missing":
        match = "no checkpoint"
    else:
        bad = path
        match = "does not fit the networks"
    model = Autoencoder(latent=5) if kind == "other networks" else Autoencoder()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=match) as info:
        Trainer.load(bad, model, progress=False)
    assert isinstance(info.value, FormulaError)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mismatch_lists_the_differences(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match=r"shapes differ: encoder.weight: checkpoint \(3, 8\), model \(5, 8\)"):
        Trainer.load(path, Autoencoder(latent=5))


def test_schedules_and_custom_optimizers_must_be_given_again(tmp_path):
    trainer = Trainer(GaussianVAE(beta=True), inputs={"beta": _warmup}, batch_size=32, progress=False,
                      optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    trainer.fit({"x": binary_data(32)}, epochs=1)
    path = tmp_path / "s.ckpt"
    trainer.save(path)
    with pytest.raises(CheckpointError, match="custom optimizer"):
        Trainer.load(path, GaussianVAE(beta=True))
    with pytest.raises(CheckpointError, match=r"input 'beta' by a schedule"):
        Trainer.load(path, GaussianVAE(beta=True), optimizer="sgd")
    again = Trainer.load(path, GaussianVAE(beta=True), optimizer=torch.optim.SGD, inputs={"beta": _warmup},
                         progress=False)
    assert again.step == 1 and again.scalar_values() == {"beta": _warmup(1)}


def test_constant_inputs_travel_in_the_checkpoint(tmp_path):
    trainer = Trainer(GaussianVAE(beta=True), inputs={"beta": 0.5}, batch_size=32, progress=False)
    path = tmp_path / "c.ckpt"
    trainer.save(path)
    assert Trainer.load(path, GaussianVAE(beta=True), progress=False).scalar_values() == {"beta": 0.5}


def test_low_level_round_trip(tmp_path):
    path = save_checkpoint({"step": 3, "w": torch.arange(4.0)}, tmp_path / "sub" / "x.ckpt")
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))


def test_resume_a_compiled_formula_exactly(tmp_path):
    """The same promise for `formula.compile`'s objective: declared distributions' networks and parameters."""
    x = binary_data(48)
    torch.manual_seed(0)
    straight = compiled_vae()
    Trainer(straight, batch_size=16, progress=False).fit({"x": x}, epochs=2)
    torch.manual_seed(0)
    first = compiled_vae()
    trainer = Trainer(first, batch_size=16, progress=False)
    trainer.fit({"x": x}, epochs=1)
    trainer.save(tmp_path / "elbo.ckpt")
    torch.manual_seed(7)
    resumed = compiled_vae()
    Trainer.load(tmp_path / "elbo.ckpt", resumed, progress=False).fit({"x": x}, epochs=1)
    assert torch.equal(parameters_vector(resumed), parameters_vector(straight))
