"""examples/flow.py --smoke: its two spellings are equivalent, the NSF trains through fm.Flow, the change of variables
written in the formula equals zuko's log-density, the PNG is written and the metric is the last line."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
METRIC = re.compile(r"^held-out log-likelihood \(nats per point\): NSF flow -?\d+\.\d{3}, GMM\(8\) -?\d+\.\d{3}, "
                    r"Gaussian -?\d+\.\d{3}$")

pytest.importorskip("sklearn")


def test_smoke_run_writes_the_figure_and_ends_with_the_metric(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("flow")
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    results = example.main(["--smoke", "--epochs", "1", "--hidden", "16", "--device", "cpu", "--threads", threads,
                            "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "change of variables = zuko's log-density" in out
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert set(results) == {"NSF flow", "GMM(8)", "Gaussian"}
    assert results["Gaussian"] < results["GMM(8)"]  # the baselines are in their known order on two moons
    png = tmp_path / "flow.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
