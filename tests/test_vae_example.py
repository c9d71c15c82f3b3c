"""examples/vae.py --smoke: prints the formula, plan and per-term values, writes its pictures and a checkpoint
that `Trainer.load` continues."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vae.py"


def test_smoke_run_writes_outputs_and_a_resumable_checkpoint(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("vae_example", EXAMPLE)
    vae = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vae)
    threads = torch.get_num_threads()
    try:
        final = vae.main(["--smoke", "--epochs", "1", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "𝔼" in out and "KL" in out  # the pretty formula
    assert "closed form" in out  # the plan
    assert "held-out ELBO" in out.strip().splitlines()[-1]  # the metric is the last line
    for name in ("samples.png", "reconstructions.png", "loss.png", "vae.ckpt"):
        assert (tmp_path / name).stat().st_size > 0
        if name.endswith(".png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert final["objective"] < 0 and final["loss"] == -final["objective"]

    import formula as fm

    torch.manual_seed(1)
    q = fm.Normal("q(z|x)", net=vae.Encoder(8, 256))
    p = fm.Bernoulli("p(x|z)", net=vae.Decoder(8, 256))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(8,))
    elbo = fm.compile(vae.ELBO, [q, p, prior])
    trainer = fm.Trainer.load(tmp_path / "vae.ckpt", elbo, progress=False)
    assert trainer.epoch == 1 and trainer.step == 24
    held = vae.digits.load()[1]
    assert trainer.evaluate({"x": held})["objective"] < 0
