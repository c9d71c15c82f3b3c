"""examples/dmm.py --smoke: checks its two spellings, trains the DMM briefly, writes the trajectories PNG and ends
with the metric line; the simulated pendulum is a pendulum (energy nearly kept, angles in range)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dmm.py"
METRIC = re.compile(r"^held-out ELBO: -?\d+\.\d{3} nats per sequence of \d+ steps$")


def _example():
    spec = importlib.util.spec_from_file_location("dmm_example", EXAMPLE)
    dmm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dmm)
    return dmm


def test_smoke_run_writes_the_trajectories_and_ends_with_the_metric(tmp_path, capsys):
    dmm = _example()
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    final = dmm.main(["--smoke", "--threads", threads, "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "step by step" in out and "h_t" in out  # the plan, printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert torch.isfinite(torch.tensor(final["objective"]))
    png = tmp_path / "trajectories.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_simulated_pendulum():
    dmm = _example()
    data = dmm.pendulum(64, 20, seed=0)
    assert data["x"].shape == (64, 20, 2) and data["theta"].shape == (64, 20)
    clean = torch.stack([data["theta"].sin(), -data["theta"].cos()], -1)
    assert (data["x"] - clean).std() < 2 * dmm.NOISE  # observations are the bob's position plus small noise
    wrapped = torch.atan2(data["theta"].sin(), data["theta"].cos())
    torch.testing.assert_close(dmm.angle(clean), wrapped, atol=1e-4, rtol=0)
