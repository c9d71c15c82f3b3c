"""examples/mvae.py --smoke: checks its two spellings, trains the sub-sampled MVAE objective, writes the
label-conditioned PNG and ends with the metric line; the two-way metric is checked on a model that is right by
construction."""

from __future__ import annotations

import re

import torch

from example_loader import load_example

METRIC = re.compile(r"^label accuracy from the image alone: [01]\.\d{3}; images from the label alone judged right: "
                    r"[01]\.\d{3}$")


def test_smoke_run_writes_the_png_and_ends_with_the_metric(tmp_path, capsys):
    mvae = load_example("mvae")
    threads = str(torch.get_num_threads())
    final = mvae.main(["--smoke", "--epochs", "1", "--threads", threads, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "ProductOfExperts" in out and "closed form [ProductOfExperts || Normal]" in out  # the plan
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert 0.0 <= final["from_image"] <= 1.0 and 0.0 <= final["from_label"] <= 1.0
    png = tmp_path / "from_label.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_the_labelled_split_keeps_each_image_with_its_own_label():
    from sklearn.datasets import load_digits

    mvae = load_example("mvae")
    (train_x, train_y), (held_x, held_y) = mvae.labelled_digits(seed=3)
    everything = load_digits()
    images = torch.as_tensor(everything.data, dtype=torch.float32) / 16.0
    for x, y in ((train_x[:20], train_y[:20]), (held_x[:20], held_y[:20])):
        rows = [int((images == xi).all(1).nonzero()[0]) for xi in x]
        assert all(int(everything.target[r]) == int(yi) for r, yi in zip(rows, y))
    assert train_x.shape[0] == train_y.shape[0] and held_x.shape[0] == held_y.shape[0]
