"""examples/ddpm.py --smoke: checks its spelling, trains the simple loss for a few steps, samples by the reverse
process, writes the figure and ends with the metric line."""

from __future__ import annotations

from mixture_examples import smoke


def test_smoke_run_writes_the_figure_and_ends_with_the_metric(tmp_path, capsys):
    score, out = smoke("ddpm", "DDPM", ["--epochs", "1", "--steps", "20"], tmp_path, capsys)
    assert "ε_θ(" in out and "x₀" in out  # the loss, printed
    assert set(score) == {"mmd2", "nll"}
