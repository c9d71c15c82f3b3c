"""examples/gan.py --smoke: checks its two spellings, trains both losses, writes the scatter PNG and ends with the
metric line; the metric itself is checked on the ring's own samples and on a collapsed generator."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gan.py"
METRIC = re.compile(r"^modes covered of 8 \(share within 3σ\): minimax [0-8]/8 \(\d+\.\d%\), "
                    r"non-saturating [0-8]/8 \(\d+\.\d%\)$")


def _example():
    spec = importlib.util.spec_from_file_location("gan_example", EXAMPLE)
    gan = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gan)
    return gan


def test_smoke_run_writes_the_scatter_plot_and_ends_with_the_metric(tmp_path, capsys):
    gan = _example()
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    metrics = gan.main(["--smoke", "--epochs", "1", "--threads", threads, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "V(D, G) =" in out and "max_G" in out  # eq. 1 and the non-saturating generator, printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert set(metrics) == {"minimax", "non-saturating"}
    assert all(0 <= c <= 8 and 0.0 <= s <= 1.0 for c, s in metrics.values())
    png = tmp_path / "gan.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_metric_counts_modes_and_the_share_within_three_sigma():
    gan = _example()
    covered, share = gan.coverage(gan.ring(2500, seed=0))
    assert covered == 8
    assert abs(share - (1 - math.exp(-4.5))) < 0.01  # a 2-D Gaussian holds 1 - e^{-9/2} within 3σ
    collapsed = gan.centres()[:1].repeat(2500, 1)  # every sample on one mode
    assert gan.coverage(collapsed) == (1, 1.0)
    assert gan.coverage(torch.zeros(2500, 2)) == (0, 0.0)  # the ring's centre is far from every mode
