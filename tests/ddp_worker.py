"""Started by `torchrun --nproc_per_node=2` from test_ddp.py: trains under DDP and saves what each rank ends with.

Usage: torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py OUT_DIR [stall]
Writes OUT_DIR/rank{R}.pt with the parameters each objective reached on this rank, the history, and how many
times this rank wrote a checkpoint. With `stall`, rank 1 sleeps past the trainer's 1-second timeout before its
first step, and each rank writes OUT_DIR/stall{R}.txt with the error it got.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))
from toy_objectives import Autoencoder, GaussianVAE, binary_data, compiled_vae, parameters_vector  # noqa: E402

import formula.train.trainer as training  # noqa: E402
from formula.train.distributed import StalledRankError  # noqa: E402
from formula.train.trainer import Trainer  # noqa: E402

PER_RANK_BATCH = 8


def main(out: Path) -> None:
    writes = []
    real_save = training.save_checkpoint
    training.save_checkpoint = lambda state, path: writes.append(str(path)) or real_save(state, path)
    x = binary_data(64)
    result = {}

    torch.manual_seed(0)  # no sampling: must match one process with the global batch
    ae = Autoencoder()
    trainer = Trainer(ae, batch_size=PER_RANK_BATCH, lr=1e-2, progress=False)
    assert dist.is_initialized() and dist.get_world_size() == 2, "the trainer starts the torchrun group"
    result["ae_history"] = trainer.fit({"x": x}, epochs=2)
    result["ae"] = parameters_vector(ae)
    result["ae_eval"] = trainer.evaluate({"x": x[:37]})  # uneven shards (19 + 18), gathered exactly

    torch.manual_seed(0)
    ae_loader = Autoencoder()
    Trainer(ae_loader, lr=1e-2, progress=False).fit(DataLoader(TensorDataset(x), batch_size=PER_RANK_BATCH), epochs=2)
    result["ae_loader"] = parameters_vector(ae_loader)

    torch.manual_seed(dist.get_rank())  # different init and draws per rank: DDP keeps the parameters equal
    vae = GaussianVAE()
    vae_trainer = Trainer(vae, batch_size=PER_RANK_BATCH, lr=1e-2, progress=False)
    vae_trainer.fit({"x": x}, epochs=2)
    result["vae"] = parameters_vector(vae)
    vae_trainer.save(out / "vae.ckpt")

    torch.manual_seed(10 + dist.get_rank())  # the real front end: formula.compile's objective, unchanged code
    elbo = compiled_vae()
    Trainer(elbo, batch_size=PER_RANK_BATCH, lr=1e-2, progress=False).fit({"x": x}, epochs=1)
    result["compiled"] = parameters_vector(elbo)
    result["writes"] = list(writes)

    def beta(step: int) -> float:  # SIGINT on rank 0 only, during step 1: both ranks stop after it
        if step == 1 and dist.get_rank() == 0:
            signal.raise_signal(signal.SIGINT)
        return 1.0

    torch.manual_seed(0)
    stopped = Trainer(GaussianVAE(beta=True), inputs={"beta": beta}, batch_size=PER_RANK_BATCH, progress=False)
    stopped.fit({"x": x}, epochs=2, checkpoint_on_interrupt=out / "stop.ckpt")
    result["interrupted"] = (stopped.interrupted, stopped.step, stopped.position)

    torch.manual_seed(20 + dist.get_rank())  # per-rank draws: the checkpoint must hold every rank's RNG state
    straight = GaussianVAE()
    Trainer(straight, batch_size=PER_RANK_BATCH, lr=1e-2, progress=False).fit({"x": x}, epochs=2)
    torch.manual_seed(20 + dist.get_rank())
    first = Trainer(GaussianVAE(), batch_size=PER_RANK_BATCH, lr=1e-2, progress=False)
    first.fit({"x": x}, epochs=1)
    first.save(out / "resume.ckpt")
    torch.manual_seed(99)  # the same seed on both ranks: each must get its own state back from the file
    resumed = GaussianVAE()
    Trainer.load(out / "resume.ckpt", resumed, progress=False).fit({"x": x}, epochs=1)
    result["resume"] = (parameters_vector(straight), parameters_vector(resumed))
    result["rank"] = dist.get_rank()
    torch.save(result, out / f"rank{dist.get_rank()}.pt")
    dist.destroy_process_group()


def stall(out: Path) -> None:
    """Rank 1 stalls for longer than the timeout: rank 0's step must fail with an error naming its rank."""
    torch.manual_seed(0)
    trainer = Trainer(Autoencoder(), batch_size=PER_RANK_BATCH, progress=False, timeout=1)
    if dist.get_rank() == 1:
        time.sleep(4)
    try:
        trainer.fit({"x": binary_data(32)}, epochs=1)
        message = "no error"
    except StalledRankError as err:
        message = str(err)
    (out / f"stall{dist.get_rank()}.txt").write_text(message)
    os._exit(0)  # the group is broken: no orderly shutdown


if __name__ == "__main__":
    if sys.argv[2:] == ["stall"]:
        stall(Path(sys.argv[1]))
    else:
        main(Path(sys.argv[1]))
