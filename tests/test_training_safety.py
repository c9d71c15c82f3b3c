"""Training safety: non-finite gradients always stop a step before it changes anything, history keys never
collide with term names, numpy data, and clear device errors."""

from __future__ import annotations

import copy

import pytest
import torch

from toy_objectives import Autoencoder, binary_data, compiled_vae, parameters_vector

from formula.errors import FormulaInputError
from formula.train.trainer import Trainer, TrainingDivergedError


class _NanGradientAt(Autoencoder):
    """Finite values always; from step `bad` on, a term sqrt(0 * f(x)) whose gradient is NaN."""

    def __init__(self, bad: int):
        super().__init__()
        self.bad, self.calls = bad, 0

    def evaluate(self, x):
        values, terms = super().evaluate(x)
        self.calls += 1
        if self.calls <= self.bad:
            return values, terms
        root = (0.0 * self.encoder(x)).sum(-1).sqrt()
        return values - root, {**terms, "sqrt(0·f(x))": root}


@pytest.mark.parametrize("clip", [None, 1.0])
def test_non_finite_gradients_stop_the_step_with_everything_as_before(clip):
    """Without clipping too (it used to be checked only with clip_grad_norm): the parameters and Adam's
    moments after three good steps are untouched by the fourth, whose gradient is NaN."""
    torch.manual_seed(0)
    model = _NanGradientAt(bad=3)
    trainer = Trainer(model, clip_grad_norm=clip, batch_size=8, progress=False)
    x = binary_data(32)
    for i in range(3):
        trainer.train_step({"x": x[8 * i: 8 * i + 8]})
    params = parameters_vector(model).clone()
    moments = copy.deepcopy(trainer.optimizer.state_dict())
    with pytest.raises(TrainingDivergedError, match=r"step 3 .*the gradient norm is (nan|inf).*as they were") as info:
        trainer.train_step({"x": x[24:]})
    assert info.value.term == "the gradient norm" and trainer.step == 3
    assert torch.equal(parameters_vector(model), params)
    after = trainer.optimizer.state_dict()["state"]
    assert all(torch.equal(after[i][k], v) for i, entry in moments["state"].items() for k, v in entry.items())


def test_terms_named_loss_and_objective_do_not_overwrite_the_trainers_values():
    text = r"\underbrace{E_q(z|x)[log p(x|z)]}_{loss} - \underbrace{KL(q(z|x)||p(z))}_{objective}"
    torch.manual_seed(0)
    elbo = compiled_vae(text=text)
    assert elbo.term_names == ("loss", "objective")
    trainer = Trainer(elbo, batch_size=16, progress=False)
    history = trainer.fit({"x": binary_data(32)}, epochs=1, eval_data={"x": binary_data(16)})
    assert set(history) == {"loss", "objective", "term/loss", "term/objective", "eval/loss", "eval/objective",
                            "eval/term/loss", "eval/term/objective", "lr/main"}
    assert history["loss"][0] == pytest.approx(-history["objective"][0])
    assert history["objective"][0] == pytest.approx(history["term/loss"][0] - history["term/objective"][0], rel=1e-5)


def test_progress_bar_shows_short_names_unless_they_collide(capsys):
    from toy_objectives import GaussianVAE

    Trainer(GaussianVAE(), batch_size=32).fit({"x": binary_data(64)}, epochs=1)
    err = capsys.readouterr().err
    assert "E[log p]=" in err and "KL(q‖p)=" in err and "term/" not in err  # short names on the bar
    Trainer(compiled_vae(text=r"\underbrace{E_q(z|x)[log p(x|z)]}_{loss} - KL(q(z|x)||p(z))"),
            batch_size=32).fit({"x": binary_data(64)}, epochs=1)
    err = capsys.readouterr().err
    assert "loss=" in err and "t1=" in err and "t1 = loss" in err  # a short name, and its legend


def test_numpy_data_is_converted_once():
    """numpy's float64 default becomes the networks' float32, in a dict, bare, or batch by batch."""
    x = binary_data(64)

    def train(data):
        torch.manual_seed(1)
        model = Autoencoder()
        Trainer(model, batch_size=16, progress=False).fit(data, epochs=2, eval_data={"x": x.double().numpy()})
        return parameters_vector(model)

    reference = train({"x": x})
    for data in ({"x": x.numpy()}, x.double().numpy()):
        assert torch.equal(train(data), reference)
    in_order = [{"x": x[i:i + 16]} for i in range(0, 64, 16)]
    assert torch.equal(train([{"x": b["x"].double().numpy()} for b in in_order]), train(in_order))
    with pytest.raises(FormulaInputError, match="tensors \\(or numpy arrays\\) with the same first"):
        Trainer(Autoencoder(), progress=False).fit({"x": [[0.0] * 8]}, epochs=1)


def test_device_mistakes_say_what_is_available():
    with pytest.raises(FormulaInputError, match=r"device='gpu' is not a torch device \(a GPU is device='cuda'\); "
                                                r"available here: auto, cpu"):
        Trainer(Autoencoder(), device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(FormulaInputError, match=r"device='cuda', but this torch .* sees no CUDA GPU; available"):
            Trainer(Autoencoder(), device="cuda")
    else:
        with pytest.raises(FormulaInputError, match="GPUs; available"):
            Trainer(Autoencoder(), device=f"cuda:{torch.cuda.device_count()}")


def test_fit_and_timeout_options_are_checked():
    trainer = Trainer(Autoencoder(), progress=False)
    x = binary_data(16)
    for options, match in (({"epochs": -1}, "epochs"), ({"epochs": 1.5}, "epochs"),
                           ({"checkpoint_every": 0, "checkpoint": "c.ckpt"}, "checkpoint_every"),
                           ({"checkpoint_every": 5}, "needs checkpoint=path")):
        with pytest.raises(FormulaInputError, match=match):
            trainer.fit(x, **options)
    assert trainer.step == 0
    for bad in (0, -3, "10", True):
        with pytest.raises(FormulaInputError, match="timeout must be a positive number of seconds"):
            Trainer(Autoencoder(), timeout=bad)
