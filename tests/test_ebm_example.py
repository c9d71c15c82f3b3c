"""examples/ebm.py --smoke: checks its spellings, trains the EBM for a few steps, writes the figure and ends with
the metric line; the figure's metric (examples/common/mixture2d.py) is checked on the mixture's own samples, on a
mode-collapsed set and on one Gaussian."""

from __future__ import annotations

import torch

from mixture_examples import mixture2d, smoke


def test_smoke_run_writes_the_figure_and_ends_with_the_metric(tmp_path, capsys):
    scores, out = smoke("ebm", "EBM (replay buffer)", ["--epochs", "1", "--eval-steps", "5"], tmp_path, capsys)
    assert "p_θ(x′)" in out and "(x′)]" in out  # the formula, printed
    assert set(scores) == {"EBM (replay buffer)", "EBM (5-step chains)"}


def test_the_metric_tells_the_mixture_from_a_collapse_and_from_one_gaussian():
    m = mixture2d()
    train, held_out = m.sample(4000, 0), m.sample(2000, 1)
    base = m.baselines(train, held_out, 2000, 2)
    assert abs(base["data"]["mmd2"]) < 0.003  # the same distribution: zero in expectation
    assert base["one Gaussian"]["mmd2"] > 0.05
    centres = torch.tensor(m.CENTRES)[torch.arange(2000) % 6]
    collapsed = m.quality(centres, held_out)  # every sample on a mode's centre
    assert collapsed["nll"] < base["data"]["nll"] and collapsed["mmd2"] > 0.05  # the NLL is fooled, the MMD not
    # the true density integrates to one over the plane (a grid over a box holding all six modes)
    grid = torch.linspace(-5, 5, 401)
    xy = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    mass = m.log_density(xy).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(float(mass) - 1) < 1e-3
