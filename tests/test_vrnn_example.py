"""examples/vrnn.py --smoke: checks its two spellings, trains the VRNN and the RNN baseline briefly, writes the
sequences PNG and metrics.json, and ends with the metric line; the simulated oscillator turns back at random steps
and stays on the unit circle."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vrnn.py"
METRIC = re.compile(r"^held-out ELBO: -?\d+\.\d{3} nats per sequence of \d+ steps$")

pytestmark = pytest.mark.slow  # an example run (CI runs it; -m "not slow" skips it)


def _example():
    spec = importlib.util.spec_from_file_location("vrnn_example", EXAMPLE)
    vrnn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vrnn)
    return vrnn


def test_smoke_run_writes_the_sequences_and_ends_with_the_metric(tmp_path, capsys):
    vrnn = _example()
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    final = vrnn.main(["--smoke", "--threads", threads, "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "state h_t = f_{theta}(h_{t-1}, x_t, z_t)" in out  # the plan, printed: the state computed per step
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert torch.isfinite(torch.tensor([final["objective"], final["rnn"]])).all()
    png = tmp_path / "sequences.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["model"] == "VRNN" and record["value"] == pytest.approx(final["objective"])
    assert record["rnn_log_likelihood"] == pytest.approx(final["rnn"])


def test_the_simulated_oscillator_turns_back_at_random_steps():
    vrnn = _example()
    x = vrnn.oscillator(400, 30, seed=0)
    assert x.shape == (400, 30, 2)
    assert ((x.norm(dim=-1) - 1).abs().mean() < 3 * vrnn.NOISE)  # on the unit circle, up to the noise
    clean = vrnn.oscillator(400, 30, seed=0)
    assert torch.equal(x, clean)  # seeded
    step = torch.atan2(x[:, 1:, 1], x[:, 1:, 0]) - torch.atan2(x[:, :-1, 1], x[:, :-1, 0])
    step = torch.remainder(step + torch.pi, 2 * torch.pi) - torch.pi  # the angle moved, in (-pi, pi]
    turns = (step[:, 1:].sign() != step[:, :-1].sign()).float().mean()
    assert abs(turns - vrnn.SWITCH) < 0.03  # reverses with probability SWITCH per step
    assert (step.abs() - vrnn.OMEGA).abs().mean() < 0.1
