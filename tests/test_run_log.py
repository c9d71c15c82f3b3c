"""`Trainer(log=path)`: every step's and epoch's terms, scheduled inputs and learning rates in a CSV or JSON-lines
file, read back here; the history records the scheduled inputs too."""

from __future__ import annotations

import csv
import json

import torch

from toy_objectives import binary_data, compiled_vae

from formula.train.trainer import Trainer

TEXT = "E_q(z|x)[log p(x|z)] - beta KL(q(z|x)||p(z))"


def _warmup(step: int) -> float:
    return min(1.0, step / 6)


def _train(log, epochs=2):
    torch.manual_seed(0)
    elbo = compiled_vae(text=TEXT)
    trainer = Trainer(elbo, inputs={"beta": _warmup}, optimizer="sgd", lr=0.1, batch_size=16, progress=False,
                      scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), log=log)
    trainer.fit({"x": binary_data(64)}, epochs=epochs, eval_data={"x": binary_data(16, seed=3)})
    return elbo, trainer


def test_csv_log_of_a_two_epoch_run_has_every_term_beta_and_the_lr(tmp_path):
    path = tmp_path / "run.csv"
    elbo, trainer = _train(path)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["kind", "epoch", "step", "name", "value"]
    steps = {}
    for row in rows:
        if row["kind"] == "step":
            steps.setdefault(int(row["step"]), {})[row["name"]] = float(row["value"])
    assert sorted(steps) == list(range(1, 9))  # 64 examples / 16 per step * 2 epochs
    for step, values in steps.items():
        assert {"loss", "objective", *("term/" + t for t in elbo.term_names)} <= set(values)
        assert values["input/beta"] == _warmup(step - 1)  # the value the step used
        assert values["lr/main"] == 0.1 * 0.5 ** ((step - 1) // 3)
    epochs = [row for row in rows if row["kind"] == "epoch"]
    names = {row["name"] for row in epochs}
    assert {"input/beta", "lr/main", "eval/loss", *("eval/term/" + t for t in elbo.term_names)} <= names
    assert {int(row["epoch"]) for row in epochs} == {1, 2}
    beta_means = [float(r["value"]) for r in epochs if r["name"] == "input/beta"]
    assert beta_means == trainer.history["input/beta"] == [sum(map(_warmup, range(4))) / 4,
                                                           sum(map(_warmup, range(4, 8))) / 4]


def test_json_lines_log_and_resume_appends(tmp_path):
    path = tmp_path / "run.jsonl"
    elbo, trainer = _train(path, epochs=1)
    trainer.save(tmp_path / "run.ckpt")
    torch.manual_seed(1)
    again = Trainer.load(tmp_path / "run.ckpt", compiled_vae(text=TEXT), inputs={"beta": _warmup}, progress=False,
                         scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), log=path)
    again.fit({"x": binary_data(64)}, epochs=1)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "step"] == list(range(1, 9))
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2]
    assert all(("term/" if r["kind"] == "step" else "eval/term/") + name in r
               for r in rows for name in elbo.term_names if r["kind"] == "step" or r["epoch"] == 1)


def test_a_games_log_has_each_players_learning_rate_every_step(tmp_path):
    import formula as fm

    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
    generator = torch.nn.Linear(2, 2)
    decls = [fm.Function("D(x)", net=critic), fm.Function("G(z)", net=generator), fm.Data("p_data(x)"),
             fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))]
    value = fm.compile(r"\min_G \max_D [E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))]]", decls)
    rule = fm.Alternating(optimizer="sgd", lr={"D": 0.1, "G": 0.01})
    trainer = Trainer(value, update=rule, batch_size=8, progress=False, log=tmp_path / "game.csv")
    trainer.fit({"x": torch.randn(32, 2)}, epochs=2)
    with open(tmp_path / "game.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["kind"] == "step"]
    for step in range(1, 9):
        values = {r["name"]: float(r["value"]) for r in rows if int(r["step"]) == step}
        assert values["lr/D"] == 0.1 and values["lr/G"] == 0.01
        player = "D" if step % 2 else "G"  # D steps first, then G
        assert f"{player}/loss" in values
