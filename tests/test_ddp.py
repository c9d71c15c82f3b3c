"""Multi-process training: two gloo processes started by torchrun on CPU (tests/ddp_worker.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ddp_worker import PER_RANK_BATCH
from toy_objectives import Autoencoder, binary_data, parameters_vector

from formula.train.checkpoint import load_checkpoint
from formula.train.trainer import Trainer

WORKER = Path(__file__).parent / "ddp_worker.py"


def _torchrun(out: Path, *args: str) -> None:
    """Run the worker under torchrun with 2 gloo processes on CPU."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                              "MASTER_PORT")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on CPU even where a GPU exists
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER), str(out),
         *args], capture_output=True, text=True, timeout=180, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run the worker once under torchrun with 2 processes; the two ranks' results and the output folder."""
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(out)
    results = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return results, out


def _single_process(data):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = Autoencoder()
        trainer = Trainer(model, batch_size=2 * PER_RANK_BATCH, lr=1e-2, progress=False)
        trainer.fit(data, epochs=2)
    finally:
        torch.set_num_threads(before)
    return model, trainer


def test_parameters_are_identical_on_both_ranks(ranks):
    (r0, r1), _ = ranks
    for key in ("ae", "ae_loader", "vae", "compiled"):  # vae, compiled: different init and draws per rank
        assert torch.equal(r0[key], r1[key]), key
    assert r0["ae_history"] == r1["ae_history"]  # the logged means are gathered from both ranks
    assert r0["ae_eval"] == r1["ae_eval"]


def test_without_sampling_ddp_matches_one_process_on_the_global_batch(ranks):
    (r0, _), _ = ranks
    x = binary_data(64)
    model, trainer = _single_process({"x": x})
    torch.testing.assert_close(r0["ae"], parameters_vector(model), rtol=1e-5, atol=1e-6)
    for name, values in trainer.history.items():
        assert r0["ae_history"][name] == pytest.approx(values, rel=1e-5, abs=1e-6)
    expected = trainer.evaluate({"x": x[:37]})
    assert r0["ae_eval"] == pytest.approx(expected, rel=1e-5)
    loader_model, _ = _single_process(DataLoader(TensorDataset(x), batch_size=2 * PER_RANK_BATCH))
    torch.testing.assert_close(r0["ae_loader"], parameters_vector(loader_model), rtol=1e-5, atol=1e-6)


def test_only_rank_zero_writes_the_checkpoint(ranks):
    (r0, r1), out = ranks
    assert len(r0["writes"]) == 1 and r1["writes"] == []
    state = load_checkpoint(out / "vae.ckpt")
    assert state["step"] == 2 * 64 // (2 * PER_RANK_BATCH)
    assert not any(k.startswith("module.") for k in state["objective"])  # the DDP wrapper is not saved
    saved = torch.cat([v.reshape(-1) for v in state["objective"].values()])
    assert torch.equal(saved, r0["vae"])


def test_a_signal_on_one_rank_stops_both_at_the_same_step_with_a_checkpoint(ranks):
    (r0, r1), out = ranks
    assert r0["interrupted"] == ("SIGINT", 2, 2)
    assert r1["interrupted"] == ("a signal on another rank", 2, 2)
    state = load_checkpoint(out / "stop.ckpt")
    assert (state["step"], state["epoch"], state["position"]) == (2, 0, 2)


def test_resume_under_ddp_restores_each_ranks_own_draws(ranks):
    (r0, r1), out = ranks
    for straight, resumed in (r0["resume"], r1["resume"]):
        assert torch.equal(straight, resumed)
    assert len(load_checkpoint(out / "resume.ckpt")["rng"]["ranks"]) == 2


@pytest.mark.slow
def test_a_stalled_rank_is_a_clear_error_after_the_timeout(tmp_path):
    """Rank 1 sleeps past Trainer(timeout=1): rank 0's step fails naming its rank and the setting, not after
    gloo's 30 minutes; rank 1 then finds the group gone and says so too."""
    _torchrun(tmp_path, "stall")
    for rank in range(2):
        message = (tmp_path / f"stall{rank}.txt").read_text()
        assert message.startswith(f"rank {rank} of 2: step 0 did not complete: another rank stalled")
        assert "timeout=1 s, set by Trainer(timeout=...)" in message
