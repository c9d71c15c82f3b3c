"""Two-player games (`fm.Alternating`, `fm.Game`): each step moves only the stepping player's parameters, in its
own sense (checked against hand-written PyTorch), k critic steps per generator step, separate objectives per
player, per-player statistics, exact resume, and the errors for games that cannot be trained."""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest
import torch
from torch import nn

import formula as fm
from formula.errors import FormulaError, FormulaInputError

MINIMAX = r"\min_G \max_D [E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))]]"
CRITIC = r"\max_D [E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))]]"
NON_SATURATING = r"\max_G E_{z \sim p(z)}[\log D(G(z))]"
BATCH = 8


def _nets() -> Tuple[nn.Module, nn.Module]:
    critic = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())
    generator = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    return critic, generator


def _declarations(critic: nn.Module, generator: nn.Module) -> List:
    return [fm.Function("D(x)", net=critic), fm.Function("G(z)", net=generator), fm.Data("p_data(x)"),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))]


def _minimax(seed: int = 0):
    torch.manual_seed(seed)
    critic, generator = _nets()
    return fm.compile(MINIMAX, _declarations(critic, generator)), critic, generator


def _game(seed: int = 0):
    """The non-saturating GAN: the critic's objective and the generator's, one per player."""
    torch.manual_seed(seed)
    critic, generator = _nets()
    decls = _declarations(critic, generator)
    game = fm.Game({"D": fm.compile(CRITIC, decls), "G": fm.compile(NON_SATURATING, decls, samples=BATCH)})
    return game, critic, generator


def _data(n: int = 4 * BATCH) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(7)) * 0.5 + 1.0


def _snapshot(*nets: nn.Module) -> Dict[str, torch.Tensor]:
    return {f"{i}.{name}": p.detach().clone() for i, net in enumerate(nets) for name, p in net.named_parameters()}


def _moved(before: Dict[str, torch.Tensor], after: Dict[str, torch.Tensor]) -> Dict[str, bool]:
    return {name: not torch.equal(before[name], after[name]) for name in before}


@pytest.mark.parametrize("build", [_minimax, _game], ids=["one objective", "one objective per player"])
def test_each_step_moves_every_parameter_of_the_stepping_player_and_no_other(build):
    objective, critic, generator = build()
    rule = fm.Alternating(lr={"D": 1e-2, "G": 1e-2}, steps={"D": 2, "G": 1})
    trainer = fm.Trainer(objective, update=rule, batch_size=BATCH, progress=False)
    x = _data()
    for step in range(6):
        player = rule.player_at(step)
        before = _snapshot(critic, generator)
        stats = trainer.train_step({"x": x[:BATCH]})
        moved = _moved(before, _snapshot(critic, generator))
        assert all(moved[k] == (k.startswith("0.") == (player == "D")) for k in moved), (step, player, moved)
        other_name = "G" if player == "D" else "D"
        assert f"{player}/loss" in stats and not any(k.startswith(other_name + "/") for k in stats)
        for p in list(critic.parameters()) + list(generator.parameters()):
            assert p.requires_grad  # the other player's parameters are unfrozen after the step
        other = generator if player == "D" else critic
        assert all(p.grad is None for p in other.parameters())
    assert [rule.player_at(s) for s in range(6)] == ["D", "D", "G", "D", "D", "G"]
    assert rule.updates == {"D": 4, "G": 2}


def _hand_written_value(critic: nn.Module, generator: nn.Module, x: torch.Tensor, seed: int,
                        player: str = "D") -> torch.Tensor:
    """V(D, G) at the draws the compiled objective makes after `torch.manual_seed(seed)`; for the generator, the
    term that depends on it (its step evaluates no other)."""
    torch.manual_seed(seed)
    z = torch.randn(x.shape[0], 2)
    fake = torch.log(1 - critic(generator(z))).squeeze(-1)
    return (fake if player == "G" else torch.log(critic(x)).squeeze(-1) + fake).mean()


def test_the_critic_ascends_and_the_generator_descends_as_hand_written_sgd():
    objective, critic, generator = _minimax()
    lr = 0.05
    rule = fm.Alternating(optimizer="sgd", lr=lr)
    trainer = fm.Trainer(objective, update=rule, batch_size=BATCH, progress=False)
    x = _data()[:BATCH]
    for step, (player, sign) in enumerate([("D", 1.0), ("G", -1.0), ("D", 1.0)]):
        assert rule.player_at(step) == player
        net = critic if player == "D" else generator
        value = _hand_written_value(critic, generator, x, seed=step, player=player)
        grads = torch.autograd.grad(value, list(net.parameters()))
        expected = [p.detach() + sign * lr * g for p, g in zip(net.parameters(), grads)]
        torch.manual_seed(step)
        stats = trainer.train_step({"x": x})
        assert stats[f"{player}/objective"] == pytest.approx(value.item(), rel=1e-5)
        assert stats[f"{player}/loss"] == pytest.approx(-sign * value.item(), rel=1e-5)
        for p, e in zip(net.parameters(), expected):
            torch.testing.assert_close(p.detach(), e)


def test_k_critic_steps_per_generator_step_are_counted_over_a_fit():
    objective, _, _ = _minimax()
    rule = fm.Alternating(steps={"D": 5, "G": 1})
    trainer = fm.Trainer(objective, update=rule, batch_size=BATCH, progress=False)
    trainer.fit({"x": _data(6 * BATCH)}, epochs=2)  # 12 steps: two rounds of 5 + 1
    assert trainer.step == 12 and rule.updates == {"D": 10, "G": 2}
    assert rule.schedule == ("D",) * 5 + ("G",)
    history = trainer.history
    assert {"D/loss", "G/loss", "D/term/E_{p_{data}(x)}[log D(x)]", "lr/D", "lr/G"} <= set(history)
    assert "loss" not in history  # every statistic is a player's


def test_a_step_builds_no_graph_through_the_player_that_does_not_move():
    objective, critic, generator = _minimax()
    seen: List[bool] = []
    generator.register_forward_hook(lambda module, args, out: seen.append(out.requires_grad))
    rule = fm.Alternating()
    trainer = fm.Trainer(objective, update=rule, batch_size=BATCH, progress=False)
    x = _data()[:BATCH]
    trainer.train_step({"x": x})  # the critic's step: G(z) is a constant to it
    trainer.train_step({"x": x})  # the generator's step: gradients flow through D into G
    assert seen == [False, True]


def test_separate_objectives_each_player_its_own_sense_and_terms():
    game, critic, generator = _game()
    assert game.players == (("max", ("D",)), ("max", ("G",)))
    assert game.inputs == ("x",)
    calls: List[str] = []
    original = {name: o.evaluate for name, o in game.objectives.items()}
    for name, objective in game.objectives.items():
        objective.__dict__["evaluate"] = lambda name=name, **kw: (calls.append(name), original[name](**kw))[1]
    rule = fm.Alternating(lr={"D": 1e-2, "G": 5e-3}, steps={"D": 1, "G": 2})
    trainer = fm.Trainer(game, update=rule, batch_size=BATCH, progress=False)
    x = _data()[:BATCH]
    first = trainer.train_step({"x": x})
    second = trainer.train_step({"x": x})
    assert calls == ["D", "G"]  # each step evaluates its player's objective only
    assert set(second) >= {"G/loss", "G/objective", "G/term/E_{p(z)}[log D(G(z))]"}
    assert second["G/loss"] == pytest.approx(-second["G/objective"])  # the generator ascends log D(G(z))
    assert first["D/loss"] == pytest.approx(-first["D/objective"])
    assert trainer.optimizers["G"].param_groups[0]["lr"] == 5e-3
    held = trainer.evaluate({"x": x})
    assert {"term/D", "term/G", "term/G/E_{p(z)}[log D(G(z))]"} <= set(held)
    with pytest.raises(FormulaInputError, match="the game's players are D, G"):
        fm.Trainer(game, update=fm.Alternating({"critic": ["D"], "G": ["G"]}, senses={"critic": "max"}))


def test_explicit_players_own_what_they_list():
    torch.manual_seed(0)
    critic, generator = _nets()
    encoder = nn.Linear(2, 4)
    decls = _declarations(critic, generator) + [fm.Normal("q(z|x)", net=_Gaussian(encoder))]
    text = r"\min_{G, q} \max_D [E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))] + E_{q(z|x)}[\log D(G(z))]]"
    objective = fm.compile(text, decls)
    by_prefix = fm.Alternating()
    fm.Trainer(objective, update=by_prefix, progress=False)
    assert list(by_prefix.players) == ["D", "G,q"]
    assert {id(p) for p in by_prefix.players["G,q"].parameters} == \
        {id(p) for p in [*generator.parameters(), *encoder.parameters()]}
    mapped = fm.Alternating({"gen": [decls[1], "q"], "D": ["D"]}, senses={"gen": "min"})
    trainer = fm.Trainer(objective, update=mapped, progress=False)
    assert [p.sense for p in mapped.players.values()] == ["min", "max"]
    before = _snapshot(critic, generator, encoder)
    trainer.train_step({"x": _data()[:BATCH]})  # "gen" steps first: the mapping's order
    moved = _moved(before, _snapshot(critic, generator, encoder))
    assert all(moved[k] == (not k.startswith("0.")) for k in moved)


class _Gaussian(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        h = self.body(x)
        return {"loc": h[:, :2], "scale": nn.functional.softplus(h[:, 2:]) + 1e-3}


@pytest.mark.parametrize("build", [_minimax, _game], ids=["one objective", "one objective per player"])
def test_a_checkpoint_mid_round_resumes_exactly(tmp_path, build):
    x = {"x": _data(5 * BATCH)}
    options = dict(lr={"D": 4e-3, "G": 1e-3}, steps={"D": 3, "G": 1},
                   scheduler={"D": None, "G": lambda o: torch.optim.lr_scheduler.StepLR(o, 1, 0.5)})
    objective, critic, generator = build(seed=1)
    straight = fm.Trainer(objective, update=fm.Alternating(**options), batch_size=BATCH, progress=False)
    torch.manual_seed(5)
    straight.fit(x, epochs=3)

    first, _, _ = build(seed=1)
    trainer = fm.Trainer(first, update=fm.Alternating(**options), batch_size=BATCH, progress=False)
    torch.manual_seed(5)
    trainer.fit(x, epochs=1)
    path = tmp_path / "game.ckpt"
    trainer.save(path)  # after 5 steps: inside the second round (D D D G | D ...)

    resumed, critic_r, generator_r = build(seed=2)  # other initial weights: all must come from the file
    again = fm.Trainer.load(path, resumed, update=fm.Alternating(**options), progress=False)
    assert again.step == 5 and again.update.updates == {"D": 4, "G": 1}
    again.fit(x, epochs=2)
    assert again.update.updates == straight.update.updates == {"D": 12, "G": 3}
    for a, b in zip(_snapshot(critic, generator).values(), _snapshot(critic_r, generator_r).values()):
        assert torch.equal(a, b)
    for name in ("D", "G"):
        saved, mine = straight.optimizers[name].state_dict()["state"], again.optimizers[name].state_dict()["state"]
        assert all(torch.equal(saved[k]["exp_avg_sq"], mine[k]["exp_avg_sq"]) for k in saved)
    assert straight.history == again.history
    assert set(again.update.schedulers) == {"G"}
    assert again.optimizers["G"].param_groups[0]["lr"] == straight.optimizers["G"].param_groups[0]["lr"] == 1e-3 / 8


def test_a_game_without_an_update_rule_is_refused():
    objective, _, _ = _minimax()
    with pytest.raises(FormulaError, match=r"\\min_\{G\} \\max_\{D\}.*update="):
        fm.Trainer(objective)
    game, _, _ = _game()
    with pytest.raises(FormulaError, match="update="):
        fm.Trainer(game)


def _compiled(text: str, *extra):
    critic, generator = _nets()
    return fm.compile(text, _declarations(critic, generator) + list(extra))


@pytest.mark.parametrize("make, message", [
    (lambda: (_compiled(MINIMAX.replace(r"\min_G \max_D ", "")), fm.Alternating()), "needs players"),
    (lambda: (_compiled(MINIMAX.replace("min_G", "min_{G, q}")), fm.Alternating()), "'q' names no declaration"),
    (lambda: (_compiled(MINIMAX.replace(r"\min_G ", "")), fm.Alternating()), "no player owns the parameters of G"),
    (lambda: (_compiled(MINIMAX), fm.Alternating(lr={"D": 1e-3})), "missing: G"),
    (lambda: (_compiled(MINIMAX), fm.Alternating(steps={"D": 0, "G": 1})), "whole number >= 1"),
    (lambda: (_compiled(MINIMAX), fm.Alternating(senses={"D": "min"})), "the formula says"),
    (lambda: (_compiled(MINIMAX), fm.Alternating(senses={"D": "up"})), "'min' or 'max'"),
    (lambda: (_compiled(MINIMAX), fm.Alternating(order=["D"])), "each player once"),
    (lambda: (_compiled(MINIMAX), fm.Alternating({"D": ["D"], "G": ["G", "D"]})), "owned by both"),
])
def test_games_that_cannot_be_trained_say_why(make, message):
    objective, rule = make()
    with pytest.raises(FormulaInputError, match=message):
        fm.Trainer(objective, update=rule, progress=False)


def test_a_game_objective_without_a_sense_says_how_to_give_one():
    critic, generator = _nets()
    decls = _declarations(critic, generator)
    plain = fm.compile(NON_SATURATING.replace(r"\max_G ", ""), decls)
    with pytest.raises(FormulaInputError, match=r"senses=\{'G': 'max'\}"):
        fm.Game({"D": fm.compile(CRITIC, decls), "G": plain})
    game = fm.Game({"D": fm.compile(CRITIC, decls), "G": plain}, senses={"G": "max"})
    assert game.players[1] == ("max", ("G",))


def test_players_without_a_prefix_come_from_senses():
    objective = _compiled(MINIMAX.replace(r"\min_G \max_D ", ""))
    rule = fm.Alternating(senses={"G": "min", "D": "max"}, order=["D", "G"])
    fm.Trainer(objective, update=rule, progress=False).train_step({"x": _data()[:BATCH]})
    assert rule.updates == {"D": 1, "G": 0} and rule.players["G"].sense == "min"


def test_a_diverged_step_names_the_player():
    objective, _, _ = _minimax()
    trainer = fm.Trainer(objective, update=fm.Alternating(), progress=False)
    bad = _data()[:BATCH].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(fm.TrainingDivergedError, match="player D: training diverged at step 0"):
        trainer.train_step({"x": bad})


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 6)

    def forward(self, z):
        return {"logits": self.net(z)}


def test_the_factorvae_game_of_the_docs_trains_each_side_on_its_own_objective():
    torch.manual_seed(0)
    encoder, decoder = nn.Linear(6, 4), _Decoder()
    discriminator = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())
    decls = [fm.Normal("q(z|x)", net=_Gaussian(encoder)), fm.Bernoulli("p(x|z)", net=decoder), fm.Data("p_data(x)"),
             fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,)), fm.Function("D(z)", net=discriminator)]
    defs = "q(z) = E_{p_data(x)}[q(z|x)]\n" r"\bar q(z) = \prod_j q(z_j)" "\n"
    vae = fm.compile(defs + r"E_{p_data(x)}[E_{q(z|x)}[\log p(x|z)] - KL(q(z|x) \| p(z))]"
                     r" - \gamma \mathrm{KL}_D(q(z) \| \bar q(z))", decls)
    critic = fm.compile(defs + r"E_{q(z)}[\log D(z)] + E_{z' \sim \bar q(z)}[\log(1 - D(z'))]", decls)
    rule = fm.Alternating({"vae": ["q", "p"], "D": ["D"]}, lr=1e-2)
    game = fm.Game({"vae": vae, "D": critic}, senses={"vae": "max", "D": "max"})
    trainer = fm.Trainer(game, inputs={"gamma": 6.0}, update=rule, batch_size=BATCH, progress=False)
    assert {id(p) for p in rule.players["vae"].parameters} == \
        {id(p) for p in [*encoder.parameters(), *decoder.parameters()]}
    x = (torch.rand(BATCH, 6, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    for player in ("vae", "D"):
        before = _snapshot(encoder, decoder, discriminator)
        stats = trainer.train_step({"x": x})
        moved = _moved(before, _snapshot(encoder, decoder, discriminator))
        assert all(moved[k] == (k.startswith("2.") == (player == "D")) for k in moved), (player, moved)
        assert f"{player}/loss" in stats


def test_a_step_evaluates_only_the_terms_of_the_stepping_player():
    objective, critic, generator = _minimax()
    calls = {"D": 0, "G": 0}
    critic.register_forward_hook(lambda *_: calls.__setitem__("D", calls["D"] + 1))
    generator.register_forward_hook(lambda *_: calls.__setitem__("G", calls["G"] + 1))
    rule = fm.Alternating()
    trainer = fm.Trainer(objective, update=rule, batch_size=BATCH, progress=False)
    assert rule.terms == {"D": None, "G": ("E_{p(z)}[log(1 - D(G(z)))]",)}
    x = _data()[:BATCH]
    stats = trainer.train_step({"x": x})  # the critic's step: both terms, D on x and on G(z)
    assert calls == {"D": 2, "G": 1} and "D/term/E_{p_{data}(x)}[log D(x)]" in stats
    stats = trainer.train_step({"x": x})  # the generator's: E_x[log D(x)] does not depend on G
    assert calls == {"D": 3, "G": 2}
    assert [k for k in stats if k.startswith("G/term/")] == ["G/term/E_{p(z)}[log(1 - D(G(z)))]"]
    assert len(objective.terms(x=x)) == 2  # the objective itself is whole again after the step


def test_terms_using_and_only_terms_are_the_public_way_to_evaluate_a_subset():
    objective, critic, generator = _minimax()
    decls = list(objective.modules())
    generator_decl = next(d for d in decls if isinstance(d, fm.Function) and d.net is generator)
    critic_decl = next(d for d in decls if isinstance(d, fm.Function) and d.net is critic)
    assert objective.terms_using([generator_decl]) == ("E_{p(z)}[log(1 - D(G(z)))]",)
    assert objective.terms_using([critic_decl]) == objective.term_names
    x = _data()[:BATCH]
    torch.manual_seed(3)
    whole = objective.terms(x=x)
    with objective.only_terms(["E_{p(z)}[log(1 - D(G(z)))]"]):
        torch.manual_seed(3)
        total, terms = objective.evaluate(x=x)
    assert list(terms) == ["E_{p(z)}[log(1 - D(G(z)))]"]
    torch.testing.assert_close(total, whole["E_{p(z)}[log(1 - D(G(z)))]"])  # the same draws, the one term
    assert len(objective.terms(x=x)) == 2
    with pytest.raises(FormulaInputError, match="no term 'log D'; the terms are"):
        with objective.only_terms(["log D"]):
            pass
