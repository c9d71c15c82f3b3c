"""examples/ddpm.py --smoke: checks its spelling, trains the simple loss for a few steps, samples by the reverse
process, writes the figure and ends with the metric line."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ddpm.py"
METRIC = re.compile(r"^DDPM: MMD\^2 to held-out data -?\d+\.\d{4} \(data -?\d+\.\d{4}, one Gaussian \d+\.\d{4}\); "
                    r"NLL of samples under the true mixture -?\d+\.\d{3} nats \(data \d+\.\d{3}, one Gaussian "
                    r"\d+\.\d{3}\)$")


def test_smoke_run_writes_the_figure_and_ends_with_the_metric(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("ddpm_example", EXAMPLE)
    ddpm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ddpm)
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    score = ddpm.main(["--smoke", "--epochs", "1", "--steps", "20", "--threads", threads, "--device", "cpu",
                       "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "ε_θ" in out or "epsilon" in out  # the loss, printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert set(score) == {"mmd2", "nll"}
    png = tmp_path / "ddpm.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
