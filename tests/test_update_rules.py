"""Update rules as an extension point: a rule written here, outside the package, trains through `fm.Trainer`
with two optimizers over two halves of the parameters, alternating, and saves and resumes exactly."""

from __future__ import annotations

from typing import Any, Dict, Mapping

import pytest
import torch

from toy_objectives import Autoencoder, GaussianVAE, binary_data, parameters_vector

import formula as fm
from formula.errors import FormulaError, FormulaInputError
from formula.train.checkpoint import CheckpointError
from formula.train.updates import StepContext, UpdateRule, guarded_step


class Alternating(UpdateRule):
    """Even steps move the encoder with Adam, odd steps the decoder with SGD; counts each half's updates."""

    def __init__(self, lr: float = 1e-2):
        super().__init__()
        self.lr = lr
        self.counts = {"encoder": 0, "decoder": 0}

    def setup(self, objective: torch.nn.Module) -> None:
        self.optimizers = {
            "encoder": torch.optim.Adam(objective.encoder.parameters(), lr=self.lr),
            "decoder": torch.optim.SGD(objective.decoder.parameters(), lr=self.lr, momentum=0.9),
        }
        self.schedulers = {"decoder": torch.optim.lr_scheduler.StepLR(self.optimizers["decoder"], 2, 0.5)}

    def step(self, ctx: StepContext) -> Dict[str, float]:
        half = "encoder" if ctx.step % 2 == 0 else "decoder"
        values, terms = ctx.evaluate(**ctx.inputs)
        stats = guarded_step(ctx, self.optimizers[half], values, terms)
        if half == "decoder":
            self.schedulers["decoder"].step()
        self.counts[half] += 1
        return {**stats, f"loss/{half}": stats["loss"]}

    def extra_state(self) -> Dict[str, Any]:
        return {"counts": dict(self.counts)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.counts = dict(state["counts"])


def _vector(module: torch.nn.Module) -> torch.Tensor:
    return parameters_vector(module).clone()


def test_a_rule_from_outside_trains_through_the_trainer():
    torch.manual_seed(0)
    model = Autoencoder()
    trainer = fm.Trainer(model, update=Alternating(), batch_size=16, progress=False)
    assert set(trainer.optimizers) == {"encoder", "decoder"}
    x = binary_data(32)
    for step in range(4):  # each step moves exactly its half
        enc, dec = _vector(model.encoder), _vector(model.decoder)
        trainer.train_step({"x": x[:16]})
        moved = (not torch.equal(enc, _vector(model.encoder)), not torch.equal(dec, _vector(model.decoder)))
        assert moved == ((True, False) if step % 2 == 0 else (False, True))
    history = trainer.fit({"x": x}, epochs=2)
    assert trainer.update.counts == {"encoder": 4, "decoder": 4}
    assert {"loss", "objective", "term/log p(x|z)", "loss/encoder", "loss/decoder"} <= set(history)
    assert trainer.update.schedulers["decoder"].get_last_lr() == [pytest.approx(1e-2 / 4)]
    with pytest.raises(FormulaInputError, match="2 optimizers"):
        trainer.optimizer  # noqa: B018


def test_a_rule_from_outside_saves_and_resumes_exactly(tmp_path):
    x = binary_data(48)
    torch.manual_seed(0)
    straight = GaussianVAE()
    fm.Trainer(straight, update=Alternating(), batch_size=16, progress=False).fit({"x": x}, epochs=2)

    torch.manual_seed(0)
    first = GaussianVAE()
    trainer = fm.Trainer(first, update=Alternating(), batch_size=16, progress=False)
    trainer.fit({"x": x}, epochs=1)
    trainer.save(tmp_path / "alt.ckpt")
    with pytest.raises(CheckpointError, match="update rule Alternating; pass update="):
        fm.Trainer.load(tmp_path / "alt.ckpt", GaussianVAE(), progress=False)

    torch.manual_seed(5)
    resumed = GaussianVAE()
    again = fm.Trainer.load(tmp_path / "alt.ckpt", resumed, update=Alternating(), progress=False)
    assert again.update.counts == {"encoder": 2, "decoder": 1}
    again.fit({"x": x}, epochs=1)
    assert torch.equal(parameters_vector(resumed), parameters_vector(straight))


def test_optimizer_settings_belong_to_the_rule():
    with pytest.raises(FormulaInputError, match=r"optimizer, lr would be ignored: give them to Alternating"):
        fm.Trainer(Autoencoder(), update=Alternating(), optimizer="sgd", lr=0.5)
    with pytest.raises(FormulaInputError, match="must be an UpdateRule"):
        fm.Trainer(Autoencoder(), update="alternating")

    class Empty(UpdateRule):
        def setup(self, objective):
            pass

    with pytest.raises(FormulaInputError, match="must fill self.optimizers"):
        fm.Trainer(Autoencoder(), update=Empty())


class _Game(Autoencoder):
    """A stand-in for a compiled `\\min_G \\max_D` objective: only its `players` matter here."""

    players = (("min", ("G",)), ("max", ("D",)))
    text = r"\min_G \max_D E_p(x)[log D(x)] + E_p(z)[log(1 - D(G(z)))]"


def test_a_game_needs_an_explicit_rule():
    with pytest.raises(FormulaError, match=r"a game \(\\min_\{G\} \\max_\{D\} \.\.\.\).*every player \(issue 16\)"
                                           r".*update=fm.Alternating"):
        fm.Trainer(_Game())
    trainer = fm.Trainer(_Game(), update=Alternating(), batch_size=16, progress=False)
    trainer.fit({"x": binary_data(32)}, epochs=1)
    assert trainer.step == 2


def test_a_compiled_game_is_refused_by_the_default_rule():
    from torch import nn

    D = fm.Function("D(x)", net=nn.Sequential(nn.Linear(2, 1), nn.Sigmoid()))
    G = fm.Function("G(z)", net=nn.Linear(2, 2))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))
    game = fm.compile(r"\min_G \max_D \left( E_{p_data(x)}[log D(x)] + E_{p(z)}[log(1 - D(G(z)))] \right)",
                      [D, G, prior, fm.Data("p_data(x)")])
    assert game.players
    with pytest.raises(FormulaInputError, match="default update rule would ascend or descend the whole formula"):
        fm.Trainer(game)
