"""examples/hvae.py --smoke: checks its two spellings, trains the three-group hierarchy and the one-group VAE
briefly, writes the samples and reconstructions PNGs and metrics.json with a KL per group, and ends with the
metric line; its hand-written sampler and reconstruction use each group's own networks."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hvae.py"
METRIC = re.compile(r"^held-out ELBO: HVAE -?\d+\.\d{3} vs one-group VAE -?\d+\.\d{3} nats per image; "
                    r"KL per group: z_1 -?\d+\.\d\d, z_2 -?\d+\.\d\d, z_3 -?\d+\.\d\d$")


def _example():
    spec = importlib.util.spec_from_file_location("hvae_example", EXAMPLE)
    hvae = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hvae)
    return hvae


@pytest.mark.slow
def test_smoke_run_writes_the_figures_and_ends_with_the_metric(tmp_path, capsys):
    hvae = _example()
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    result = hvae.main(["--smoke", "--threads", threads, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "level by level" in out  # the plan, printed
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert len(result["kls"]) == 3 and all(k >= 0 for k in result["kls"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"kl_z1", "kl_z2", "kl_z3", "one_group_vae", "value"} <= set(metrics)
    for name in ("samples.png", "reconstructions.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000


def test_sampler_and_reconstruction_use_each_groups_networks():
    """The hand-written top-down sampler draws z_l from group l's prior net (a change to group 3's prior changes
    the samples), and the one-group VAE has as many latent dimensions and about as many parameters."""
    hvae = _example()
    args = hvae.arguments(["--smoke"])
    torch.manual_seed(0)
    h = hvae.hierarchy(args)
    before = hvae.sample(h, 4, args)
    assert before.shape == (4, 64) and 0 <= before.min() and before.max() <= 1
    with torch.no_grad():
        h["p"].nets[1].net[-1].bias.add_(3.0)  # group 3's prior
    assert not torch.allclose(hvae.sample(h, 4, args), before)
    assert hvae.reconstruct(h, torch.rand(3, 64), args).shape == (3, 64)
    size = hvae.parameters([h["q1"], h["q"], h["p"], h["decoder"]])
    v = hvae.one_group(args, size)
    assert v["encoder"].net[-1].out_features == 2 * args.groups * args.group_size
    assert abs(hvae.parameters([v["encoder"], v["decoder"]]) - size) < 0.02 * size
