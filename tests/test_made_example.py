"""examples/made.py --smoke: checks its two spellings, trains a MADE by exact maximum likelihood, writes the
samples PNG and ends with the metric line; the factorised baseline is checked against a hand-written NLL."""

from __future__ import annotations

import re

import torch

from example_loader import load_example

METRIC = re.compile(r"^held-out NLL \(nats per image\): MADE \d+\.\d\d, factorised Bernoulli \d+\.\d\d$")


def test_smoke_run_writes_the_samples_and_ends_with_the_metric(tmp_path, capsys):
    made = load_example("made")
    threads = str(torch.get_num_threads())
    final = made.main(["--smoke", "--epochs", "1", "--threads", threads, "--hidden", "32", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "E_{p_{data}(x)}[log p_{theta}(x)]" in out  # the plan
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert 0 < final["made"] < 64 * 0.7 and 0 < final["factorised"] < 64 * 0.7  # below log 2 nats a pixel
    png = tmp_path / "samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_the_factorised_baseline_is_the_independent_bernoulli_nll():
    made = load_example("made")
    train = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    held = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([3.0 / 5.0, 2.0 / 5.0])  # (count + 1) / (n + 2)
    want = -(torch.log(p[0]) + torch.log(1 - p[1]))
    assert abs(made.factorised_nll(train, held) - float(want)) < 1e-6
