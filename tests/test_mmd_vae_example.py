"""examples/mmd_vae.py --smoke: the InfoVAE formula as LaTeX equals its ASCII, both models train, and the pictures
and the final metric line are written."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_smoke_run_compares_the_mmd_vae_with_the_vae(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("mmd_vae")
    threads = torch.get_num_threads()
    try:
        results = example.main(["--smoke", "--epochs", "1", "--hidden", "64", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "MMD" in out and "unbiased estimator of MMD^2" in out  # the formula and its plan
    assert out.strip().splitlines()[-1].startswith("held-out reconstruction: MMD-VAE")
    assert set(results) == {"VAE", "MMD-VAE"}
    for r in results.values():
        assert r["reconstruction"] < 0 and r["KL"] >= 0 and abs(r["MMD"]) < 1
    for name in ("samples.png", "reconstructions.png", "loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
