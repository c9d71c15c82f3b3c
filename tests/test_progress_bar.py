"""The progress bar fits an 80-100 column terminal with every term visible: short names on the bar, the full names
in the legend printed when a fit starts and in the log's metadata (formula.train.progress)."""

from __future__ import annotations

import json

import torch
from tqdm import tqdm

from toy_objectives import binary_data, compiled_vae

from formula.train.progress import BAR_FORMAT, MAX_SHORT, postfix, short_names
from formula.train.runlog import meta_path
from formula.train.trainer import Trainer

BETA_VAE = r"\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)] - \beta D_{KL}(q_\phi(z|x) \| p(z))"


def _frames(err: str):
    return [frame for line in err.splitlines() for frame in line.split("\r") if "epoch " in frame]


def test_beta_vae_bar_line_fits_100_columns_with_every_term(capsys):
    torch.manual_seed(0)
    elbo = compiled_vae(text=BETA_VAE)
    trainer = Trainer(elbo, inputs={"beta": 4.0}, batch_size=16)
    trainer.fit({"x": binary_data(64)}, epochs=2, eval_data={"x": binary_data(32, seed=1)})
    err = capsys.readouterr().err
    bar = trainer.bar_names
    assert set(bar) == set(elbo.term_names)
    frames = [f for f in _frames(err) if "loss=" in f]
    assert frames and any("eval:" in f for f in frames)
    for frame in frames:
        assert len(frame) <= 100, frame
        assert all(f"{short}=" in frame for short in bar.values()), frame
    for name, short in bar.items():  # the legend: each short name with its full name
        assert f"{short} = {name}" in err


def test_worst_case_counts_still_fit():
    """A long run (epoch 200/200, thousands of steps, hours) with held-out values: still within 100 columns."""
    bar = short_names(compiled_vae(text=BETA_VAE).term_names)
    stats = {"eval/loss": -12345.6, "eval/objective": 1.0, **{f"eval/term/{n}": -1234.56 for n in bar}}
    line = tqdm.format_meter(n=2400, total=4800, elapsed=7200.0, prefix="epoch 200/200", bar_format=BAR_FORMAT,
                             postfix=postfix(stats, bar), ncols=None)
    assert len(line) <= 100, line
    assert all(short in line for short in bar.values())


def test_paper_notation_terms_get_short_names():
    """Issue 13's notation on the bar: prose \\underbrace labels (WGAN-GP eq. 3) by their words, cut at a word;
    joined sums, starred names and decorated subscripts (`P_{\\hat{x}}`) abbreviated like any term; all short and
    unique."""
    from formula.check.checker import split_terms
    from formula.lang.parser import parse_expr

    objective = parse_expr(r"\underbrace{\mathbb{E}_{\tilde x \sim \mathbb{P}_g}[D(\tilde x)] - "
                           r"\mathbb{E}_{x \sim \mathbb{P}_r}[D(x)]}_{\text{Original critic loss}} + "
                           r"\underbrace{\lambda \mathbb{E}_{\hat x \sim \mathbb{P}_{\hat x}}"
                           r"[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2]}_{\text{Our gradient penalty}}"
                           r" + \sum_{\ell, j} k(z_\ell, z_j) + \mathbb{E}_{q_j^*(z)}[\log p(x)]")
    names = [name for name, _, _ in split_terms(objective)]
    assert names[:2] == [r"\text{Original critic loss}", r"\text{Our gradient penalty}"]
    short = short_names(names)
    assert short[names[0]] == "Original…" and short[names[1]] == "Our gradient…"
    assert short[names[2]] == "sum k" and short[names[3]] == "E[log p]"
    assert len(set(short.values())) == len(names) and all(len(s) <= MAX_SHORT for s in short.values())


def test_short_names_are_short_unique_and_keep_short_ones():
    names = ["E_{q(z|x)}[log p(x|z)]", "E_{q(z|y)}[log p(x|z)]", "L_rec", "lambda * E[(||nabla_x D(x)||_2 - 1)^2]"]
    short = short_names(names)
    assert short["L_rec"] == "L_rec"
    assert short["E_{q(z|x)}[log p(x|z)]"] == "E[log p]"
    assert short["E_{q(z|y)}[log p(x|z)]"] == "t2"  # the same abbreviation is taken: called by its place
    assert len(set(short.values())) == len(names)
    assert all(len(s) <= MAX_SHORT for s in short.values())


def test_metadata_beside_the_log_has_the_full_names(tmp_path):
    elbo = compiled_vae(text=BETA_VAE)
    trainer = Trainer(elbo, inputs={"beta": lambda step: min(1.0, step / 4)}, batch_size=16, progress=False,
                      log=tmp_path / "run.csv")
    trainer.fit({"x": binary_data(32)}, epochs=1)
    meta = json.loads(meta_path(tmp_path / "run.csv").read_text(encoding="utf-8"))
    assert meta["formula"] == elbo.text
    assert [t["name"] for t in meta["terms"]] == list(elbo.term_names)
    assert [t["bar"] for t in meta["terms"]] == [trainer.bar_names[n] for n in elbo.term_names]
    assert meta["inputs"] == {"beta": "schedule"}
    assert meta["optimizers"]["main"] == {"class": "Adam", "lr": [1e-3]}


def test_a_game_shows_each_players_loss_and_each_term_once():
    stats = {"D/loss": 1.2, "D/objective": -1.2, "D/term/E_{p_data(x)}[log D(x)]": -0.7,
             "D/term/E_{p_z(z)}[log(1 - D(G(z)))]": -0.5, "G/loss": -0.5, "G/objective": -0.5,
             "G/term/E_{p_z(z)}[log(1 - D(G(z)))]": -0.5, "lr/D": 1e-3, "lr/G": 1e-3}
    line = postfix(stats, short_names(["E_{p_data(x)}[log D(x)]", "E_{p_z(z)}[log(1 - D(G(z)))]"]))
    assert line == "D:loss=1.2 E[log D]=-0.7 E[log(1-D(G))]=-0.5 G:loss=-0.5"
