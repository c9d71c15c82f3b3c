"""examples/sentence_vae.py --smoke: checks its two spellings, trains the sentence VAE briefly (teacher-forced
decoder, annealed β, word dropout), prints reconstructions, prior samples and a homotopy, writes curves.png and
metrics.json and ends with the metric line; the committed corpus encodes and decodes back to its sentences."""

from __future__ import annotations

import json
import re

import pytest
import torch

from example_loader import load_example

pytestmark = pytest.mark.slow

METRIC = re.compile(r"^held-out -ELBO: \d+\.\d{3} nats per word \(KL -?\d+\.\d{2} nats per sentence\), against a GRU "
                    r"language model without z \d+\.\d{3} and a unigram model \d+\.\d{3}$")


def _example():
    return load_example("sentence_vae")


def test_smoke_run_prints_reconstructions_samples_and_a_homotopy_and_ends_with_the_metric(tmp_path, capsys):
    example = _example()
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    final = example.main(["--smoke", "--threads", threads, "--out", str(tmp_path), "--device", "cpu"])
    out = capsys.readouterr().out
    assert "teacher-forced: one call" in out  # the plan, printed
    for heading in ("reconstructions of test sentences", "sentences from the prior", "homotopy from"):
        assert heading in out
    last = out.strip().splitlines()[-1]
    assert METRIC.match(last), last
    assert torch.isfinite(torch.tensor(final["elbo"])) and final["kl"] >= 0
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["model"] == "Sentence VAE" and record["value"] == pytest.approx(final["nll_per_word"])
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_corpus_encodes_and_decodes_back():
    example = _example()
    sentences = example.read_corpus()
    assert 300 <= len(sentences) <= 1000 and all(2 <= len(s) <= 15 for s in sentences)
    vocab = example.Vocabulary(sentences)
    data = vocab.encode(sentences[:20], steps=16)
    assert data["x"].shape == (20, 16) and data["x"].dtype == torch.long
    assert [vocab.decode(x) for x in data["x"]] == [" ".join(s) for s in sentences[:20]]
    assert data["T"].tolist() == [len(s) + 1 for s in sentences[:20]]  # the words and </s>
    assert (data["x"][torch.arange(20), data["T"] - 1] == vocab.ids[example.END]).all()


def test_the_beta_schedule_anneals_from_zero_to_one():
    beta = _example().beta_schedule(100, 0.5)
    assert beta(0) == 0.0 and beta(25) == 0.5 and beta(50) == 1.0 and beta(99) == 1.0
