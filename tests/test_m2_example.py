"""examples/m2.py --smoke: checks its two spellings, trains M2 on two sources briefly and ends with the metric line;
the split has the labels it says (as many per class) and no labelled image among the unlabelled or test ones; the
likelihood is a Binomial over the pixel counts, as torch computes it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch

import formula as fm

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "m2.py"
METRIC = re.compile(r"^test accuracy: M2 \d\.\d{3} vs the classifier on the 100 labels alone \d\.\d{3}$")


def _example():
    spec = importlib.util.spec_from_file_location("m2_example", EXAMPLE)
    m2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m2)
    return m2


def test_smoke_run_ends_with_the_metric(tmp_path, capsys):
    m2 = _example()
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    result = m2.main(["--smoke", "--threads", threads, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert 0.0 <= result["m2"] <= 1.0 and 0.0 <= result["labels_alone"] <= 1.0
    assert (tmp_path / "metrics.json").exists()


def test_the_split():
    m2 = _example()
    data = m2.split(100, seed=0)
    assert data["x_l"].shape == (100, 64) and torch.bincount(data["y_l"]).tolist() == [10] * 10
    assert data["x_u"].shape[0] + 100 + data["x_test"].shape[0] == 1797
    labelled = {tuple(r.tolist()) for r in data["x_l"]}
    assert not any(tuple(r.tolist()) in labelled for r in data["x_test"][:50])


def test_the_likelihood_is_a_binomial_over_the_pixel_counts():
    """p(x|y, z) scores each pixel's count 0..16 as Binomial(16, p): the compiled log-density is torch's, summed
    over the 64 pixels; the split's images are those counts."""
    m2 = _example()
    data = m2.split(100, seed=0)
    assert data["x_l"].max() == 16 and torch.equal(data["x_l"], data["x_l"].round())
    torch.manual_seed(0)
    decoder = m2.Decoder(latent=3, hidden=16)
    p = fm.Binomial("p(x|y,z)", net=decoder, total_count=16.0)
    x, y, z = data["x_l"][:4], data["y_l"][:4], torch.randn(4, 3)
    value = fm.compile("log p(x|y,z)", [p])(x=x, y=y, z=z)
    hand = torch.distributions.Binomial(16.0, logits=decoder(y, z)["logits"]).log_prob(x).sum(-1)
    torch.testing.assert_close(value, hand)
