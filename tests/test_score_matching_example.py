"""examples/score_matching.py --smoke: checks its spellings, trains NCSN's objective for a few steps, samples by
annealed Langevin, writes the figure and ends with the metric line."""

from __future__ import annotations

from mixture_examples import smoke


def test_smoke_run_writes_the_figure_and_ends_with_the_metric(tmp_path, capsys):
    quality, out = smoke("score_matching", "NCSN", ["--epochs", "1", "--levels", "3", "--langevin-steps", "5"],
                         tmp_path, capsys)
    assert "s_θ(x̃, σᵢ)" in out and "s_θ(x̃)" in out  # both formulas, printed
    assert set(quality) == {"mmd2", "nll"}
