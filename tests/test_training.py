"""The trainer: fitting, logging by term, scalar schedules, clipping, evaluation, the divergence guard."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, TensorDataset

from toy_objectives import KL, REC, Autoencoder, GaussianVAE, binary_data, parameters_vector

from formula.errors import FormulaError, FormulaInputError
from formula.train.trainer import TensorBatches, Trainer, TrainingDivergedError


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same seed (conftest.py fixes one torch thread for the whole suite)."""
    torch.manual_seed(0)


def test_fit_learns_and_logs_every_term_per_epoch():
    x = binary_data(256)
    trainer = Trainer(GaussianVAE(), maximize=True, lr=1e-2, batch_size=32, progress=False)
    history = trainer.fit({"x": x}, epochs=6)
    assert set(history) == {"loss", "objective", "term/" + REC, "term/" + KL, "lr/main"}
    assert history["lr/main"] == [1e-2] * 6
    assert all(len(v) == 6 for v in history.values())
    assert history["loss"][-1] < history["loss"][0] - 1.0  # the ELBO improves clearly
    for loss, objective, rec, kl in zip(history["loss"], history["objective"], history["term/" + REC],
                                        history["term/" + KL]):
        assert loss == pytest.approx(-objective)
        assert objective == pytest.approx(rec - kl, rel=1e-5, abs=1e-5)  # terms add up to the total
    assert trainer.step == 6 * 8 and trainer.epoch == 6


def test_progress_bar_shows_loss_and_terms_by_short_name(capsys):
    trainer = Trainer(GaussianVAE(), lr=1e-2, batch_size=32)
    trainer.fit({"x": binary_data(64)}, epochs=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err
    for name in ("loss=", "E[log p]=", "KL(q‖p)="):  # REC and KL, abbreviated (tests/test_progress_bar.py)
        assert name in err


def test_progress_bar_is_silent_when_disabled(capsys):
    Trainer(GaussianVAE(), batch_size=32, progress=False).fit({"x": binary_data(64)}, epochs=1)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("wrap", ["tensor", "one-tuple", "dict", "bare tensor"])
def test_data_forms_give_the_same_training(wrap):
    """A dict, a bare tensor, and DataLoaders yielding tensors, 1-tuples or dicts are all the input x."""
    x = binary_data(64)
    loaders = {
        "tensor": DataLoader(x, batch_size=16),
        "one-tuple": DataLoader(TensorDataset(x), batch_size=16),
        "dict": DataLoader([{"x": row} for row in x], batch_size=16),
        "bare tensor": x,
    }
    torch.manual_seed(1)
    reference = Autoencoder()
    Trainer(reference, batch_size=16, progress=False).fit({"x": x}, epochs=1)
    torch.manual_seed(1)
    model = Autoencoder()
    trainer = Trainer(model, batch_size=16, progress=False)
    if wrap == "bare tensor":
        trainer.fit(x, epochs=1)
        torch.testing.assert_close(parameters_vector(model), parameters_vector(reference))
    else:  # unshuffled loader: a different order, the same number of steps and a finite history
        trainer.fit(loaders[wrap], epochs=1)
        assert trainer.step == 4 and all(math.isfinite(v[0]) for v in trainer.history.values())


def test_maximize_false_descends_the_formula():
    x = binary_data(64)
    for maximize in (True, False):
        torch.manual_seed(2)
        model = Autoencoder()
        before = model(x=x).mean().item()
        Trainer(model, maximize=maximize, optimizer="sgd", lr=0.05, batch_size=64, progress=False).fit(x, epochs=5)
        after = model(x=x).mean().item()
        assert (after > before) if maximize else (after < before)


def test_scalar_schedule_is_called_with_the_step():
    model = GaussianVAE(beta=True)
    schedule = lambda step: min(1.0, step / 4)  # noqa: E731  KL warm-up
    trainer = Trainer(model, inputs={"beta": schedule}, batch_size=16, progress=False)
    trainer.fit({"x": binary_data(64)}, epochs=2)  # 8 steps
    assert model.seen_beta == [schedule(s) for s in range(8)]
    assert trainer.scalar_values() == {"beta": 1.0}
    assert trainer.history["input/beta"] == [sum(map(schedule, range(4))) / 4, 1.0]  # the epoch's mean
    assert "term/β·" + KL in trainer.history


def test_constant_scalar_input_and_history_term_name():
    model = GaussianVAE(beta=True)
    Trainer(model, inputs={"beta": 0.25}, batch_size=32, progress=False).fit({"x": binary_data(64)}, epochs=1)
    assert model.seen_beta == [0.25, 0.25]


def test_gradient_clipping_bounds_each_step():
    torch.manual_seed(3)
    model = Autoencoder()
    x = binary_data(64) * 50  # large gradients
    before = parameters_vector(model)
    Trainer(model, optimizer="sgd", lr=1.0, clip_grad_norm=1e-3, batch_size=64, progress=False).fit(x, epochs=1)
    step = (parameters_vector(model) - before).norm().item()
    assert 0 < step <= 1e-3 * (1 + 1e-4)


def test_evaluate_is_the_exact_mean_and_is_logged_under_eval():
    torch.manual_seed(4)
    model = Autoencoder()
    train, held = binary_data(64, seed=1), binary_data(50, seed=2)
    trainer = Trainer(model, batch_size=16, progress=False)
    history = trainer.fit({"x": train}, epochs=2, eval_data={"x": held})
    assert len(history["eval/objective"]) == 2 and "eval/term/log p(x|z)" in history
    result = trainer.evaluate({"x": held})  # 16 + 16 + 16 + 2: unequal batches, weighted exactly
    with torch.no_grad():
        values, terms = model.evaluate(held)
    assert result["objective"] == pytest.approx(values.mean().item(), rel=1e-5)
    assert result["loss"] == pytest.approx(-values.mean().item(), rel=1e-5)
    assert result["term/0.1·R(z)"] == pytest.approx(terms["0.1·R(z)"].mean().item(), rel=1e-5)
    assert history["eval/objective"][-1] == pytest.approx(result["objective"], rel=1e-5)


def test_divergence_names_the_term_step_and_input_statistics():
    x = binary_data(64)
    x[40, 3] = float("nan")  # in the third batch of 16 (no shuffling for an explicit order below)
    model = GaussianVAE()
    trainer = Trainer(model, batch_size=16, progress=False)
    loader = DataLoader(x, batch_size=16)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.fit(loader, epochs=1)
    err = info.value
    assert isinstance(err, FormulaError)
    assert err.step == 2 and err.term == REC
    message = str(err)
    assert "step 2" in message and REC in message and "nan" in message
    assert "x: shape (16, 8)" in message and "1 NaN/inf" in message
    assert trainer.step == 2  # the bad step changed nothing
    assert torch.isfinite(parameters_vector(model)).all()


def test_divergence_from_a_scalar_names_the_scaled_term():
    trainer = Trainer(GaussianVAE(beta=True), inputs={"beta": lambda s: math.inf if s >= 1 else 1.0},
                      batch_size=32, progress=False)
    with pytest.raises(TrainingDivergedError, match=r"step 1 .*the term β·KL\(q\(z\|x\)\|\|p\(z\)\) is inf") as info:
        trainer.fit({"x": binary_data(64)}, epochs=1)
    assert "beta: inf" in str(info.value)


def test_input_mistakes_are_formula_input_errors():
    x = binary_data(32)
    with pytest.raises(FormulaInputError, match="'y' in the data is not an input"):
        Trainer(Autoencoder(), progress=False).fit({"x": x, "y": x}, epochs=1)
    with pytest.raises(FormulaInputError, match="the data lacks 'beta'"):
        Trainer(GaussianVAE(beta=True), progress=False).fit({"x": x}, epochs=1)
    with pytest.raises(FormulaInputError, match="'beta' is given both in the data and in Trainer"):
        Trainer(GaussianVAE(beta=True), inputs={"beta": 1.0}, progress=False).fit({"x": x, "beta": x[:, 0]})
    with pytest.raises(FormulaInputError, match="does not use"):
        Trainer(Autoencoder(), inputs={"beta": 1.0})
    with pytest.raises(FormulaInputError, match="unknown optimizer 'adamm'"):
        Trainer(Autoencoder(), optimizer="adamm")
    with pytest.raises(FormulaInputError, match="same first"):
        Trainer(GaussianVAE(beta=True), progress=False).fit({"x": x, "beta": x[:3]}, epochs=1)


def test_optimizer_forms_and_lr_scheduler():
    x = binary_data(32)
    for spec in ("adamw", torch.optim.SGD, lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9)):
        trainer = Trainer(Autoencoder(), optimizer=spec, lr=0.1, batch_size=16, progress=False)
        trainer.fit(x, epochs=1)
        assert trainer.step == 2
    trainer = Trainer(Autoencoder(), optimizer="sgd", lr=1.0, batch_size=8, progress=False,
                      scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5))
    trainer.fit(x, epochs=1)  # 4 steps: lr halves twice
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    assert trainer.optimizers == {"main": trainer.optimizer} and trainer.scheduler is trainer.update.schedulers["main"]


def test_device_auto_takes_cuda_only_when_present():
    trainer = Trainer(Autoencoder(), device="auto", progress=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainer.device.type == expected
    assert all(p.device.type == expected for p in trainer.objective.parameters())


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), batch=st.integers(1, 9), world=st.integers(1, 4), epoch=st.integers(0, 3))
def test_sharded_batches_together_are_the_global_batches(n, batch, world, epoch):
    """Rank r's k-th batch, over all r, is the k-th batch of one process with batch*world (padded like
    DistributedSampler), every rank takes the same number of steps, and every example is seen."""
    data = {"i": torch.arange(n)}
    batches = TensorBatches(data, batch, seed=7)
    per_rank = [[b["i"] for b in batches.epoch(epoch, r, world)] for r in range(world)]
    assert len({len(p) for p in per_rank}) == 1 and len(per_rank[0]) == batches.batches_per_epoch(world)
    padded = -(-n // world) * world
    order = batches.order(epoch).repeat(padded // n + 1)[:padded]  # wrap around, as DistributedSampler pads
    glob = TensorBatches({"i": order}, batch * world, shuffle=False)
    global_batches = [b["i"] for b in glob.epoch(0)]
    assert len(global_batches) == len(per_rank[0])
    for k, global_batch in enumerate(global_batches):
        assert torch.equal(torch.stack([p[k] for p in per_rank], 1).reshape(-1), global_batch)
    assert set(torch.cat([torch.cat(p) for p in per_rank]).tolist()) == set(range(n))
    unpadded = torch.cat([torch.cat(list(b["i"] for b in batches.epoch(epoch, r, world, pad=False)) or
                                    [torch.empty(0, dtype=torch.long)]) for r in range(world)])
    assert sorted(unpadded.tolist()) == list(range(n))


def test_trains_a_compiled_formula_with_a_warmup_schedule():
    """The real front end: fm.compile's objective, a KL warm-up on beta, terms logged by their printed names."""
    import formula as fm
    from toy_objectives import compiled_vae

    elbo = compiled_vae(text="E_q(z|x)[log p(x|z)] - beta KL(q(z|x)||p(z))")
    assert fm.Trainer is Trainer
    x = binary_data(128)
    with torch.no_grad():
        _, terms = elbo.evaluate(x=x, beta=1.0)
    trainer = fm.Trainer(elbo, maximize=True, lr=1e-2, batch_size=32, progress=False,
                         inputs={"beta": lambda step: min(1.0, step / 8)})
    history = trainer.fit({"x": x}, epochs=5, eval_data={"x": x})
    assert all("term/" + name in history and "eval/term/" + name in history for name in terms)
    assert history["eval/loss"][-1] < history["eval/loss"][0]
    assert trainer.scalar_values() == {"beta": 1.0}


class _SqrtAtZero(Autoencoder):
    """Finite values (a term that is always 0) whose gradient is NaN: sqrt at 0 of something with parameters."""

    def evaluate(self, x):
        values, terms = super().evaluate(x)
        root = (0.0 * self.encoder(x)).sum(-1).sqrt()
        return values - root, {**terms, "sqrt(0·f(x))": root}


def test_non_finite_gradients_are_caught_when_clipping():
    x = binary_data(16)
    model = _SqrtAtZero()
    before = parameters_vector(model)
    trainer = Trainer(model, clip_grad_norm=1.0, batch_size=16, progress=False)
    with pytest.raises(TrainingDivergedError, match="step 0 .*the gradient norm is (nan|inf)") as info:
        trainer.fit({"x": x}, epochs=1)
    assert info.value.term == "the gradient norm"
    assert torch.equal(parameters_vector(model), before)
