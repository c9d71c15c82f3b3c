"""examples/wgan_gp.py, examples/factorvae.py and examples/avb.py --smoke: each checks its LaTeX against its ASCII, trains, writes its
PNGs and ends with its metric; the generated shapes' factors and the disentanglement metric are checked on known
encoders."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WGAN_GP_METRIC = re.compile(r"^modes covered of 8 \(share within 3σ\): WGAN-GP [0-8]/8 \(\d+\.\d%\)$")
FACTORVAE_METRIC = re.compile(r"^FactorVAE disentanglement metric \(0\.25 is chance\): FactorVAE \d\.\d{3}, "
                              r"VAE \d\.\d{3}$")
AVB_METRIC = re.compile(r"^held-out per image: E_q\[log p\(x\|z\)\] AVB -?\d+\.\d\d vs VAE -?\d+\.\d\d; KL term "
                        r"\(AVB: E_q\[T\]\) AVB -?\d+\.\d\d vs VAE -?\d+\.\d\d$")
PNG = b"\x89PNG\r\n\x1a\n"


def _run(monkeypatch, capsys, name: str, argv):
    """The example's main(argv) (torch's thread count restored after), its result and its printed lines."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = importlib.import_module(name)
    threads = torch.get_num_threads()
    try:
        result = example.main(["--smoke", "--epochs", "1", *argv])
    finally:
        torch.set_num_threads(threads)
    return result, capsys.readouterr().out.strip().splitlines()


def test_wgan_gp_smoke_run_writes_the_scatter_plot_and_ends_with_the_metric(tmp_path, capsys, monkeypatch):
    (covered, share), lines = _run(monkeypatch, capsys, "wgan_gp", ["--batch-size", "64", "--out", str(tmp_path)])
    out = "\n".join(lines)
    assert "where" in out and "∇" in out  # the critic's loss as printed, with its where clause
    assert "bind \\hat{x} = epsilon * x + (1 - epsilon) * \\tilde{x} (a definition)" in out  # and its plan
    assert WGAN_GP_METRIC.match(lines[-1]), lines[-1]
    assert 0 <= covered <= 8 and 0.0 <= share <= 1.0
    assert (tmp_path / "wgan_gp.png").read_bytes()[:8] == PNG


def test_factorvae_smoke_run_writes_the_traversals_and_ends_with_the_metric(tmp_path, capsys, monkeypatch):
    scores, lines = _run(monkeypatch, capsys, "factorvae", ["--hidden", "32", "--out", str(tmp_path)])
    out = "\n".join(lines)
    assert "KL_D" in out and "q̄(z) = ∏_{j} q(zⱼ)" in out  # eq. 2 with its definitions, as printed
    assert FACTORVAE_METRIC.match(lines[-1]), lines[-1]
    assert set(scores) == {"FactorVAE", "VAE"} and all(0.0 <= s <= 1.0 for s in scores.values())
    for name in ("traversals_factorvae.png", "traversals_vae.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_avb_smoke_run_writes_the_reconstructions_and_ends_with_the_metric(tmp_path, capsys, monkeypatch):
    results, lines = _run(monkeypatch, capsys, "avb", ["--hidden", "32", "--out", str(tmp_path)])
    out = "\n".join(lines)
    assert "where z = z_φ(x, ε)" in out  # the implicit encoder, defined in the formula
    assert AVB_METRIC.match(lines[-1]), lines[-1]
    assert set(results) == {"AVB", "VAE"} and all(r["reconstruction"] < 0 for r in results.values())
    assert (tmp_path / "reconstructions.png").read_bytes()[:8] == PNG


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
