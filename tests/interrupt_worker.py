"""Started by test_checkpoint_faults.py: a fit that another process stops with SIGTERM, as a cluster preempts a job.

Usage: python tests/interrupt_worker.py CHECKPOINT
Prints "ready" during step 10 and keeps that step busy for up to half a second, so that the parent's SIGTERM
arrives mid-epoch; the fit then writes CHECKPOINT and returns, and this prints the trainer's counters.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_objectives import GaussianVAE, binary_data  # noqa: E402

from formula.train.trainer import Trainer  # noqa: E402


def beta(step: int) -> float:
    if step == 10:
        print("ready", flush=True)
        for _ in range(50):
            time.sleep(0.01)
    return 1.0


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    trainer = Trainer(GaussianVAE(beta=True), inputs={"beta": beta}, lr=1e-2, batch_size=4, progress=False)
    trainer.fit({"x": binary_data(100)}, epochs=2, checkpoint_on_interrupt=Path(sys.argv[1]))
    print(trainer.interrupted, trainer.step, trainer.epoch, trainer.position, flush=True)
