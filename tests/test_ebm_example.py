"""examples/ebm.py --smoke: checks its spellings, trains the EBM for a few steps, writes the figure and ends with
the metric line; the figure's metric (examples/common/mixture2d.py) is checked on the mixture's own samples, on a
mode-collapsed set and on one Gaussian."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
METRIC = re.compile(r"^EBM \(replay buffer\): MMD\^2 to held-out data -?\d+\.\d{4} \(data -?\d+\.\d{4}, one Gaussian "
                    r"\d+\.\d{4}\); NLL of samples under the true mixture -?\d+\.\d{3} nats \(data \d+\.\d{3}, one "
                    r"Gaussian \d+\.\d{3}\)$")


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_the_figure_and_ends_with_the_metric(tmp_path, capsys):
    ebm = _example("ebm")
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    scores = ebm.main(["--smoke", "--epochs", "1", "--eval-steps", "5", "--threads", threads, "--device", "cpu",
                       "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "E_θ(x′)" in out  # the formula, printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert set(scores) == {"EBM (replay buffer)", "EBM (5-step chains)"}
    png = tmp_path / "ebm.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_metric_tells_the_mixture_from_a_collapse_and_from_one_gaussian():
    sys.path.insert(0, str(EXAMPLES))
    from common import mixture2d

    train, held_out = mixture2d.sample(4000, 0), mixture2d.sample(2000, 1)
    base = mixture2d.baselines(train, held_out, 2000, 2)
    assert abs(base["data"]["mmd2"]) < 0.003  # the same distribution: zero in expectation
    assert base["one Gaussian"]["mmd2"] > 0.05
    centres = torch.tensor(mixture2d.CENTRES)[torch.arange(2000) % 6]
    collapsed = mixture2d.quality(centres, held_out)  # every sample on a mode's centre
    assert collapsed["nll"] < base["data"]["nll"] and collapsed["mmd2"] > 0.05  # the NLL is fooled, the MMD not
    # the true density integrates to one over the plane (a grid over a box holding all six modes)
    grid = torch.linspace(-5, 5, 401)
    xy = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    mass = mixture2d.log_density(xy).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(float(mass) - 1) < 1e-3
