"""examples/factorvae.py --smoke: the spellings agree, FactorVAE's game and the VAE train, the traversal PNGs are
written and the metric is the last line; the data's factors and the metric itself are checked on known encoders."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
METRIC = re.compile(r"^FactorVAE disentanglement metric \(0\.25 is chance\): FactorVAE \d\.\d{3}, VAE \d\.\d{3}$")


def test_smoke_run_writes_the_traversals_and_ends_with_the_metric(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module("factorvae")
    threads = torch.get_num_threads()
    try:
        scores = example.main(["--smoke", "--epochs", "1", "--hidden", "32", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "KL_D" in out and "q̄(z) = ∏_{j} q(zⱼ)" in out  # eq. 2 with its definitions, as printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert set(scores) == {"FactorVAE", "VAE"} and all(0.0 <= s <= 1.0 for s in scores.values())
    for name in ("traversals_factorvae.png", "traversals_vae.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_shapes_have_four_independent_factors_and_the_metric_tells_them_apart(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    shapes = importlib.import_module("common.shapes")
    images, factors = shapes.dataset()
    assert images.shape == (576, 256) and factors.shape == (576, 4)
    assert len({tuple(i.tolist()) for i in images}) == 576  # every combination of the factors is its own image
    lookup = {tuple(i.tolist()): f for i, f in zip(images, factors)}
    perfect = lambda x: torch.stack([lookup[tuple(i.tolist())] for i in x]).float()  # noqa: E731
    assert shapes.factor_vae_metric(perfect, votes=200) == 1.0
    noise = lambda x: torch.randn(x.shape[0], 4, generator=torch.Generator().manual_seed(x.shape[0]))  # noqa: E731
    assert shapes.factor_vae_metric(noise, votes=200) < 0.5
