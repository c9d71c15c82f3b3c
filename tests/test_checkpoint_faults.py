"""Checkpoint fault injection: every truncation, random bit flips, missing and mistyped fields, kill -9 during a
save, and mid-epoch resumption that is bit-exact. A refused file changes nothing in the trainer."""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
import signal
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from toy_objectives import GaussianVAE, binary_data, parameters_vector

from formula.errors import FormulaInputError
from formula.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from formula.train.trainer import Trainer


def _options(**extra):
    options = dict(lr=1e-2, batch_size=8, progress=False,
                   scheduler=lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9))
    return {**options, **extra}


@pytest.fixture
def saved(tmp_path):
    """A trainer two steps past the checkpoint it wrote (so a restore would change everything), and the file."""
    torch.manual_seed(0)
    trainer = Trainer(GaussianVAE(), **_options())
    x = binary_data(40)
    trainer.fit({"x": x}, epochs=1)
    path = tmp_path / "good.ckpt"
    trainer.save(path)
    trainer.fit({"x": x}, epochs=1)
    return trainer, path


def _snapshot(trainer: Trainer) -> dict:
    return copy.deepcopy({
        "networks": trainer.objective.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in trainer.update.schedulers.items()},
        "counters": (trainer.step, trainer.epoch, trainer.position),
        "running": (trainer._epoch_sums, trainer._epoch_counts, trainer._epoch_rng),
        "history": trainer.history,
        "rng": torch.get_rng_state(),
    })


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _refused(trainer: Trainer, path, match=None) -> None:
    with pytest.raises(CheckpointError, match=match):
        trainer.restore(path)


def test_every_truncation_is_refused_and_changes_nothing(saved, monkeypatch):
    """Every prefix of the file, read through the whole restore (served from memory: thousands of files on disk
    would cost minutes)."""
    trainer, path = saved
    data = path.read_bytes()
    before = _snapshot(trainer)
    served = {}
    monkeypatch.setattr(Path, "read_bytes", lambda self: served["bytes"])
    for length in range(len(data)):
        served["bytes"] = data[:length]
        _refused(trainer, path)
    _assert_same(_snapshot(trainer), before)
    served["bytes"] = data
    trainer.restore(path)  # the whole file, served the same way, loads
    assert len(data) > 5000 and trainer.step == 5


def test_random_bit_flips_are_refused_and_change_nothing(saved, tmp_path):
    trainer, path = saved
    data = bytearray(path.read_bytes())
    before = _snapshot(trainer)
    rng = random.Random(0)
    bad = tmp_path / "flipped.ckpt"
    for _ in range(100):
        flipped = bytearray(data)
        position = rng.randrange(len(flipped))
        flipped[position] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(flipped))
        _refused(trainer, bad)
    _assert_same(_snapshot(trainer), before)


def _rng_wrong_size(s):
    s["rng"]["torch"] = s["rng"]["torch"][:-1]


def _rng_wrong_dtype(s):
    s["rng"]["torch"] = s["rng"]["torch"].float()


def _optimizer_state_wrong_shape(s):
    state = s["update"]["optimizers"]["main"]["state"]
    state[0]["exp_avg"] = torch.zeros(state[0]["exp_avg"].numel() + 1)


def _optimizer_state_missing_key(s):
    del s["update"]["optimizers"]["main"]["state"][0]["exp_avg_sq"]


def _optimizer_groups_mistyped(s):
    s["update"]["optimizers"]["main"]["param_groups"][0]["lr"] = "fast"


def _scheduler_mistyped(s):
    s["update"]["schedulers"]["main"]["last_epoch"] = "seven"


def _optimizer_for_fewer_parameters(s):
    s["update"]["optimizers"]["main"]["param_groups"][0]["params"].pop()


def _scheduler_missing(s):
    s["update"]["schedulers"] = {}


def _another_rule(s):
    s["update"]["rule"] = "Alternating"


def _network_missing(s):
    s["objective"].pop(next(iter(s["objective"])))


def _set(key, value):
    def change(s):
        s[key] = value
    change.__name__ = f"{key}={value!r}"
    return change


def _drop(key):
    def change(s):
        del s[key]
    change.__name__ = f"no {key}"
    return change


FAULTS = [
    _drop("rng"), _drop("step"), _drop("update"), _drop("history"), _drop("position"), _drop("declarations"),
    _set("step", "3"), _set("step", True), _set("epoch", -1), _set("position", 2.5), _set("history", [1.0]),
    _set("history", {"loss": "low"}), _set("epoch_sums", {"loss": None}), _set("config", {}),
    _set("inputs", {"beta": {"value": "x"}}), _set("formula", "E_q(z|x)[log p(x|z)]"),
    _rng_wrong_size, _rng_wrong_dtype, _optimizer_state_wrong_shape, _optimizer_state_missing_key,
    _optimizer_groups_mistyped, _optimizer_for_fewer_parameters, _scheduler_mistyped, _scheduler_missing,
    _another_rule, _network_missing,
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.__name__)
def test_each_missing_or_mistyped_field_is_refused_with_nothing_restored(saved, tmp_path, fault):
    trainer, path = saved
    state = load_checkpoint(path)
    fault(state)
    bad = save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, tmp_path / "bad.ckpt")
    before = _snapshot(trainer)
    _refused(trainer, bad)
    _assert_same(_snapshot(trainer), before)
    with pytest.raises(CheckpointError):
        Trainer.load(bad, GaussianVAE(), **_options())


def test_another_formula_is_refused_unless_strict_is_false(saved, tmp_path):
    trainer, path = saved
    state = load_checkpoint(path)
    state["formula"] = "E_q(z|x)[log p(x|z)]"
    other = save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, tmp_path / "o.ckpt")
    with pytest.raises(CheckpointError, match=r"another objective(.|\n)*formula given: +E_q\(z\|x\)\[log p\(x\|z\)\] - "
                                              r"KL(.|\n)*strict=False"):
        trainer.restore(other)
    trainer.restore(other, strict=False)
    assert trainer.step == 5


def test_a_compiled_objective_with_other_declarations_is_refused(tmp_path):
    import formula as fm
    from toy_objectives import compiled_vae

    torch.manual_seed(0)
    trainer = Trainer(compiled_vae(), batch_size=16, progress=False)
    trainer.save(tmp_path / "a.ckpt")
    other = compiled_vae()
    laplace = fm.Laplace("q(z|x)", net=other.distributions[0].net)  # the same networks, another family
    relabelled = fm.compile(other.text, [laplace, *other.distributions[1:]])
    with pytest.raises(CheckpointError, match=r"declarations given: +Laplace q\(z\|x\)"):
        Trainer.load(tmp_path / "a.ckpt", relabelled, progress=False)
    assert Trainer.load(tmp_path / "a.ckpt", relabelled, strict=False, progress=False).step == 0


def test_kill_during_save_never_leaves_a_file_that_loads_wrongly(tmp_path):
    """A forked writer saves self-describing states in a loop and is killed with SIGKILL at a random moment, 20
    times: the checkpoint is then absent or a complete earlier state; the next save removes stale temporaries."""
    path = tmp_path / "k.ckpt"
    rng = random.Random(1)
    for attempt in range(20):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer
            os.close(read)
            try:
                for i in range(10_000):
                    save_checkpoint({"i": i, "w": torch.full((50_000,), float(i))}, path)
                    if i == 0:
                        os.write(write, b"1")
            finally:
                os._exit(0)
        os.close(write)
        os.read(read, 1)  # one save is complete; kill inside one of the next ones
        time.sleep(rng.uniform(0.0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
        state = load_checkpoint(path)
        assert torch.equal(state["w"], torch.full((50_000,), float(state["i"]))), attempt
    save_checkpoint({"i": -1}, path)
    assert sorted(os.listdir(tmp_path)) == ["k.ckpt"]


# ---------------------------------------------------------------------- mid-epoch resumption


def _beta_raising_sigint_at(step: int, number: int = signal.SIGINT):
    def beta(s: int) -> float:
        if s == step:
            signal.raise_signal(number)
        return 1.0
    return beta


def _one(s: int) -> float:
    return 1.0


@pytest.mark.parametrize("form, number", [("dict", signal.SIGINT), ("loader", signal.SIGINT),
                                          ("dict", signal.SIGTERM)])
def test_a_signal_mid_epoch_saves_and_resume_is_bit_exact(tmp_path, form, number):
    """100 examples in batches of 4 (25 steps an epoch): a SIGINT or SIGTERM during step 19 stops the fit after
    it with a checkpoint; loading it and fitting the same 2 epochs ends with the bits of an uninterrupted run."""
    x = binary_data(100)

    def data():
        return {"x": x} if form == "dict" else DataLoader(TensorDataset(x), batch_size=4, shuffle=True)

    def run(beta, seed=0):
        torch.manual_seed(seed)
        model = GaussianVAE(beta=True)
        return model, Trainer(model, inputs={"beta": beta}, **_options(batch_size=4))

    straight, straight_trainer = run(_one)
    straight_trainer.fit(data(), epochs=2)

    path = tmp_path / "stop.ckpt"
    _, stopped = run(_beta_raising_sigint_at(19, number))
    handler = signal.getsignal(number)
    stopped.fit(data(), epochs=2, checkpoint_on_interrupt=path)
    assert stopped.interrupted == signal.Signals(number).name
    assert (stopped.step, stopped.epoch, stopped.position) == (20, 0, 20)
    assert signal.getsignal(number) is handler  # the handler is put back

    torch.manual_seed(99)  # other weights and RNG: the checkpoint restores both
    resumed = GaussianVAE(beta=True)
    trainer = Trainer.load(path, resumed, inputs={"beta": _one}, scheduler=_options()["scheduler"], progress=False)
    assert (trainer.step, trainer.epoch, trainer.position) == (20, 0, 20)
    trainer.fit(data(), epochs=2)
    assert trainer.step == straight_trainer.step == 50
    assert torch.equal(parameters_vector(resumed), parameters_vector(straight))
    assert trainer.history == straight_trainer.history


def test_checkpoint_every_writes_at_those_steps(tmp_path, monkeypatch):
    torch.manual_seed(0)
    trainer = Trainer(GaussianVAE(), **_options(batch_size=8))
    written = []
    monkeypatch.setattr(trainer, "save", lambda path: written.append((trainer.step, trainer.position)))
    trainer.fit({"x": binary_data(40)}, epochs=2, checkpoint=tmp_path / "c.ckpt", checkpoint_every=3)
    assert written == [(3, 3), (5, 0), (6, 1), (9, 4), (10, 0)]  # every 3 steps and at each epoch's end


def test_resuming_with_less_data_than_the_checkpoint_saw_is_a_clear_error(tmp_path):
    x = binary_data(100)
    torch.manual_seed(0)
    trainer = Trainer(GaussianVAE(beta=True), inputs={"beta": _beta_raising_sigint_at(19)}, **_options(batch_size=4))
    trainer.fit({"x": x}, epochs=1, checkpoint_on_interrupt=tmp_path / "s.ckpt")
    for data in ({"x": x[:40]}, DataLoader(TensorDataset(x[:40]), batch_size=4)):
        again = Trainer.load(tmp_path / "s.ckpt", GaussianVAE(beta=True), inputs={"beta": _one},
                             scheduler=_options()["scheduler"], progress=False)
        with pytest.raises(FormulaInputError, match=r"stopped after batch 20 .* 10 batches.*same data"):
            again.fit(data, epochs=1)


def test_sigterm_from_another_process_stops_cleanly_and_resumes_exactly(tmp_path):
    """As a cluster preempts a job: SIGTERM from outside mid-epoch; the process exits normally with a checkpoint
    that continues to the bits of an uninterrupted run."""
    path = tmp_path / "preempted.ckpt"
    worker = subprocess.Popen([sys.executable, str(Path(__file__).parent / "interrupt_worker.py"), str(path)],
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "ready"
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0
    name, step, epoch, position = out.split()
    assert name == "SIGTERM" and int(epoch) == 0 and int(step) == int(position) >= 11

    torch.manual_seed(0)
    straight = GaussianVAE(beta=True)
    Trainer(straight, inputs={"beta": _one}, lr=1e-2, batch_size=4, progress=False).fit({"x": binary_data(100)},
                                                                                         epochs=2)
    resumed = GaussianVAE(beta=True)
    Trainer.load(path, resumed, inputs={"beta": _one}, progress=False).fit({"x": binary_data(100)}, epochs=2)
    assert torch.equal(parameters_vector(resumed), parameters_vector(straight))
