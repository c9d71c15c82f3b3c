"""`Trainer(log=..., tensorboard=...)` writes the run as TensorBoard scalars when TensorBoard is installed."""

from __future__ import annotations

import pytest
import torch

from toy_objectives import binary_data, compiled_vae

from formula.errors import FormulaInputError
from formula.train.tensorboard_log import tensorboard_available, tensorboard_dir
from formula.train.trainer import Trainer

TEXT = "E_q(z|x)[log p(x|z)] - beta KL(q(z|x)||p(z))"


def test_tensorboard_off_or_required():
    assert tensorboard_dir(False, "run.csv") is None
    assert tensorboard_dir(None, None) is None
    if not tensorboard_available():
        assert tensorboard_dir(None, "run.csv") is None
        with pytest.raises(FormulaInputError, match="formula\\[tensorboard\\]"):
            tensorboard_dir(True, "run.csv")


def test_scalars_of_every_term_beta_and_lr(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    elbo = compiled_vae(text=TEXT)
    trainer = Trainer(elbo, inputs={"beta": lambda step: min(1.0, step / 4)}, batch_size=16, progress=False,
                      log=tmp_path / "run.jsonl")
    trainer.fit({"x": binary_data(64)}, epochs=2, eval_data={"x": binary_data(16, seed=2)})
    events = EventAccumulator(str(tmp_path)).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/input/beta", "step/lr/main", "epoch/eval/loss"} <= tags
    assert {f"step/term/{name}" for name in elbo.term_names} <= tags
    assert [e.step for e in events.Scalars("step/loss")] == list(range(1, 9))
    assert [e.value for e in events.Scalars("step/input/beta")] == [min(1.0, s / 4) for s in range(8)]
