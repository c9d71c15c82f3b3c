"""examples/gqn.py --smoke: checks its two spellings, trains the GQN briefly on rooms seen from 1..5 views, writes
the views PNG and metrics.json and ends with the metric line; the renderer shows each panel where it should be."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from example_loader import load_example

pytestmark = pytest.mark.slow  # an example run (CI runs it; -m "not slow" skips it)

METRIC = re.compile(r"^held-out query-view MSE: \d+\.\d{4} \(nearest context view \d+\.\d{4}, mean image "
                    r"\d+\.\d{4}\)$")


def test_smoke_run_writes_the_views_and_ends_with_the_metric(tmp_path, capsys):
    gqn = load_example("gqn")
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    final = gqn.main(["--smoke", "--threads", threads, "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "over the elements of the set x, v" in out and "one vectorised pass" in out  # the plan, printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert math.isfinite(final["objective"]) and math.isfinite(final["mse/gqn"])
    png = tmp_path / "views.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["model"] == "GQN" and record["value"] == pytest.approx(final["mse/gqn"])


def test_the_rooms_and_their_views():
    gqn = load_example("gqn")
    data = gqn.scenes(40, seed=0)
    assert data["x"].shape == (40, gqn.MAX_VIEWS, 48) and data["v"].shape == (40, gqn.MAX_VIEWS, 2)
    assert data["N"].min() >= 1 and data["N"].max() <= gqn.MAX_VIEWS
    for b in range(40):  # padding after each room's views is zero
        assert torch.all(data["x"][b, int(data["N"][b]):] == 0) and torch.all(data["v"][b, int(data["N"][b]):] == 0)
    # a camera turned to the middle of panel k sees panel k in its central pixels, k-1 and k+1 at its edges
    panels = gqn.PALETTE[torch.arange(gqn.PANELS) % len(gqn.PALETTE)][None]
    k = 3
    centre = torch.tensor([[(k + 0.5) * 2 * math.pi / gqn.PANELS]])
    view = gqn.render(panels, centre)[0, 0]  # [PIXELS, 3]
    hue = lambda c: c / c.norm()  # noqa: E731  (the shading only dims)
    middle = gqn.PIXELS // 2
    torch.testing.assert_close(hue(view[middle]), hue(panels[0, k]))
    torch.testing.assert_close(hue(view[0]), hue(panels[0, k + 1]))  # left: the larger angle
    torch.testing.assert_close(hue(view[-1]), hue(panels[0, k - 1]))


def test_the_nearest_view_baseline_copies_a_view_from_the_querys_direction():
    gqn = load_example("gqn")
    data = gqn.scenes(64, seed=1)
    data["v^q"] = data["v"][:, 0].clone()
    data["x^q"] = data["x"][:, 0].clone()
    torch.testing.assert_close(gqn.nearest_view(data), data["x^q"])
