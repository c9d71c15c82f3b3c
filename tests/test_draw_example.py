"""examples/draw.py --smoke: checks its two spellings, trains the conditional DRAW briefly, writes the drawings and
canvas PNGs and metrics.json and ends with the metric line; the captioned shapes are what their captions say."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from example_loader import load_example

pytestmark = pytest.mark.slow  # an example run (CI runs it; -m "not slow" skips it)

METRIC = re.compile(r"^caption accuracy of drawn images: \d\.\d{3} \(chance 0\.028, real images \d\.\d{3}\)$")


def test_smoke_run_writes_the_drawings_and_ends_with_the_metric(tmp_path, capsys):
    draw = load_example("draw")
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    final = draw.main(["--smoke", "--threads", threads, "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "state h^{dec}_t = RNN^{dec}(h^{dec}_{t-1}, z_t, y)" in out and "level by level" in out  # the plan
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert math.isfinite(final["objective"]) and 0 <= final["caption_accuracy"] <= 1
    for name in ("drawings.png", "canvas.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["model"] == "conditional DRAW" and record["value"] == pytest.approx(final["caption_accuracy"])


def test_the_captioned_shapes():
    draw = load_example("draw")
    data = draw.dataset(2, seed=0)
    assert data["x"].shape == (72, 3 * 16 * 16) and data["y"].shape == (72, draw.CAPTION)
    assert set(data["x"].unique().tolist()) <= {0.0, 1.0}
    images = data["x"].reshape(-1, 3, 16, 16)
    for image, (colour, shape, corner) in zip(images, data["words"].tolist()):
        lit = image.sum((1, 2))
        assert lit[colour] > 0 and lit.sum() == lit[colour]  # one colour, the caption's
        ys, xs = image[colour].nonzero(as_tuple=True)
        top, left = ys.float().mean() < 8, xs.float().mean() < 8
        assert draw.CORNERS[corner] == f"{'top' if top else 'bottom'} {'left' if left else 'right'}"
    assert draw.caption_text(data["words"][0]) == "red square top left"
    torch.testing.assert_close(data["y"][:, :3].argmax(1), data["words"][:, 0])


def test_drawing_from_captions_needs_no_image_and_follows_the_caption():
    draw = load_example("draw")
    args = draw.arguments(["--smoke", "--hidden", "8", "--latent", "2"])
    nets, _ = draw.build(args)

    def no_encoder(*_):
        raise AssertionError("drawing from a caption must not run the encoder")

    nets["enc"].forward = no_encoder
    y = draw.one_hot(torch.tensor([[0, 1, 2], [2, 0, 3]]))
    canvases = draw.generate(nets, y, steps=3, hidden=8, seed=0)
    assert canvases.shape == (3, 2, 3 * 16 * 16) and canvases.min() >= 0 and canvases.max() <= 1
    again = draw.generate(nets, y.flip(0), steps=3, hidden=8, seed=0)
    assert not torch.allclose(again[-1], canvases[-1])  # same noise, other captions: other drawings
