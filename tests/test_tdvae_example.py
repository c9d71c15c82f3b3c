"""examples/tdvae.py --smoke: checks its two spellings, trains TD-VAE briefly, writes the rollouts PNG and
metrics.json and ends with the metric line; the generated sprite sequences move and bounce as the docstring says,
and the copy-the-last-frame baseline is computed as written."""

from __future__ import annotations

import json
import re

import pytest
import torch

from example_loader import load_example

pytestmark = pytest.mark.slow  # an example run (CI runs it; -m "not slow" skips it)

METRIC = re.compile(r"^jumpy prediction error: \d+\.\d{4} MSE per pixel from t = \d+, jumps 1\.\.\d+ "
                    r"\(copying the last frame: \d+\.\d{4}\)$")


def _example():
    return load_example("tdvae")


def test_smoke_run_writes_the_rollouts_and_ends_with_the_metric(tmp_path, capsys):
    tdvae = _example()
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    final = tdvae.main(["--smoke", "--threads", threads, "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "a gather along time" in out and "draw z_{t_1}" in out  # the plan, printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert torch.isfinite(torch.tensor([final["objective"], final["jumpy"], final["copy"]])).all()
    png = tmp_path / "rollouts.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["model"] == "TD-VAE" and record["value"] == pytest.approx(final["jumpy"])
    assert len(record["per_jump"]["model"]) == len(record["per_jump"]["copy"]) == 4


def test_the_sprite_moves_one_or_two_pixels_a_step_and_bounces():
    tdvae = _example()
    x = tdvae.sprites(64, 30, seed=0)
    assert x.shape == (64, 30, tdvae.WIDTH) and set(x.unique().tolist()) == {0.0, 1.0}
    assert (x.sum(-1) == tdvae.SPRITE).all()  # the whole sprite is in the frame at every step
    left = x.argmax(-1)  # the sprite's first pixel
    moves = (left[:, 1:] - left[:, :-1]).abs()
    assert moves.max() <= 2
    still = left[:, 1:][moves == 0]  # a jump of 2 into a wall reflects back to where it was: next to the edge
    assert set(still.tolist()) <= {1, tdvae.WIDTH - tdvae.SPRITE - 1}
    assert ((left[:, 1:] - left[:, :-1]).sign().diff(dim=1) != 0).any()  # some sequence turns back


def test_the_copy_baseline_and_the_jumps_are_computed_as_written():
    tdvae = _example()
    args = tdvae.arguments(["--smoke", "--hidden", "8", "--latent", "2"])
    nets, _ = tdvae.build(args)
    x = tdvae.sprites(16, args.steps, seed=1)
    errors = tdvae.jumpy_errors(nets, x, 5, args.jump, seed=0, draws=2)
    for delta, copy in enumerate(errors["copy"], start=1):
        assert copy == pytest.approx(float(((x[:, 4] - x[:, 4 + delta]) ** 2).mean()))
    assert all(0 <= e <= 1 for e in errors["model"])
