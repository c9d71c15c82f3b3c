"""examples/wgan_gp.py --smoke: its LaTeX and ASCII spellings agree, the game trains, the scatter PNG is written and
the metric is the last line."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
METRIC = re.compile(r"^modes covered of 8 \(share within 3σ\): WGAN-GP [0-8]/8 \(\d+\.\d%\)$")


def test_smoke_run_writes_the_scatter_plot_and_ends_with_the_metric(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("wgan_gp")
    threads = torch.get_num_threads()
    try:
        covered, share = example.main(["--smoke", "--epochs", "1", "--batch-size", "64", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "where" in out and "∇" in out  # the critic's loss as printed, with its where clause
    assert "bind \\hat{x} = epsilon * x + (1 - epsilon) * \\tilde{x} (a definition)" in out  # and its plan
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert 0 <= covered <= 8 and 0.0 <= share <= 1.0
    png = tmp_path / "wgan_gp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
