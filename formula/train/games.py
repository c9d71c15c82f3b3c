"""Two-player games: `\\min_G \\max_D V(D, G)` and separate objectives per player, trained by alternating updates.

`Alternating` is an `UpdateRule`: each player owns the parameters of the declarations its letter names (or that a
`players=` mapping lists), has its own optimizer and learning rate, moves in its own sense (min descends, max
ascends) and takes `steps[player]` consecutive updates in its turn (k critic steps per generator step). A step
freezes the other players' parameters, so autograd builds no graph for what it does not move and their
gradients stay empty, and evaluates only the terms that use the stepping player's declarations (the generator's
step of `\\min_G \\max_D` skips `E_x[\\log D(x)]`). `Game({"D": obj_d, "G": obj_g})` holds one objective per
player (the non-saturating GAN, FactorVAE, AVB); a player's step evaluates its own objective only.

>>> rule = fm.Alternating(lr={"D": 4e-4, "G": 1e-4}, steps={"D": 5, "G": 1})   # doctest: +SKIP
>>> fm.Trainer(gan, update=rule).fit({"x": data}, epochs=10)                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .trainer import TrainingDivergedError
from .updates import StepContext, UpdateRule, build_optimizer, guarded_step
from ..errors import FormulaInputError

__all__ = ["Alternating", "Game", "Player", "SENSES", "PLAYER_KEY"]

#: The senses a player moves in: whether it ascends its objective.
SENSES: Dict[str, bool] = {"min": False, "max": True}

#: The keyword `Game.evaluate` takes to evaluate one player's objective (no formula input can be named so).
PLAYER_KEY = "_player"

Entry = Tuple[str, str, Tuple[str, ...]]  # (player name, sense, the declaration names it owns)


@dataclasses.dataclass
class Player:
    """One player of a game: its name, sense, declarations and the parameters they own."""

    name: str
    sense: str
    declarations: Tuple[Any, ...]
    parameters: Tuple[nn.Parameter, ...]

    @property
    def maximize(self) -> bool:
        """Whether the player ascends its objective."""
        return SENSES[self.sense]


class Game(nn.Module):
    """One objective per player, trained by `Alternating`: `Game({"D": obj_d, "G": obj_g})`.

    Each player's sense and declarations come from its objective's prefix (`\\max_D ...`; the prefix entry that
    names the player, or the only one), else from `senses={"G": "min"}` with the declarations named like the
    player. `evaluate(**inputs)` (held-out means) gives each player's objective as the term `<player>` and its
    terms as `<player>/<term>`; the total is the first player's objective.
    """

    def __init__(self, objectives: Mapping[str, nn.Module], senses: Optional[Mapping[str, str]] = None):
        super().__init__()
        if not isinstance(objectives, Mapping) or len(objectives) < 2:
            raise FormulaInputError("Game({...}) takes a dict player -> compiled objective with two players or more, "
                                    f"got {type(objectives).__name__}")
        for name, objective in objectives.items():
            if not isinstance(objective, nn.Module) or not hasattr(objective, "evaluate"):
                raise FormulaInputError(f"Game: the objective of player {name!r} is {type(objective).__name__}, "
                                        "not a compiled objective (fm.compile)")
        self.objectives = nn.ModuleDict(dict(objectives))
        senses = _checked_senses(senses, tuple(objectives))
        self.entries: Tuple[Entry, ...] = tuple(_game_entry(name, objective, senses.get(name))
                                                for name, objective in objectives.items())

    @property
    def players(self) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
        """((sense, declaration names), ...), one entry per player in the game's order."""
        return tuple((sense, letters) for _, sense, letters in self.entries)

    @property
    def inputs(self) -> Tuple[str, ...]:
        """Every input some player's objective needs, sorted."""
        return tuple(sorted({name for o in self.objectives.values() for name in o.inputs}))

    @property
    def optional_inputs(self) -> Tuple[str, ...]:
        """Every input some player's objective may take, sorted."""
        return tuple(sorted({n for o in self.objectives.values() for n in getattr(o, "optional_inputs", ())}))

    @property
    def text(self) -> str:
        """Each player's formula, `D: ...; G: ...`."""
        return "; ".join(f"{name}: {getattr(o, 'text', o)}" for name, o in self.objectives.items())

    @property
    def _decls(self) -> Tuple[Any, ...]:
        """Every objective's declarations, each once, in order."""
        seen: Dict[int, Any] = {}
        for objective in self.objectives.values():
            for decl in getattr(objective, "_decls", ()):
                seen.setdefault(id(decl), decl)
        return tuple(seen.values())

    def evaluate(self, **inputs: Any) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """One player's `(values, terms)` with `_player=name`; else every player's, terms prefixed by player."""
        player = inputs.pop(PLAYER_KEY, None)
        if player is not None:
            return self._evaluate_one(player, inputs)
        total, terms = None, {}
        for name in self.objectives:
            values, own = self._evaluate_one(name, inputs)
            total = values if total is None else total
            terms[name] = values
            terms.update({f"{name}/{term}": v for term, v in own.items()})
        return total, terms

    def forward(self, **inputs: Any) -> torch.Tensor:
        return self.evaluate(**inputs)[0]

    def _evaluate_one(self, name: str, inputs: Mapping[str, Any]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        objective = self.objectives[name]
        wanted = set(objective.inputs) | set(getattr(objective, "optional_inputs", ()))
        return objective.evaluate(**{k: v for k, v in inputs.items() if k in wanted})

    def __repr__(self) -> str:
        return f"Game({', '.join(f'{n}={sense}' for n, sense, _ in self.entries)}: {self.text!r})"


class Alternating(UpdateRule):
    """Alternate the players of a game, each with its own optimizer, learning rate, sense and number of steps.

    Args:
        players: who owns what, `{"G": [G, q], "D": [D]}` (declarations or their names); default: the
            objective's prefix (`\\min_{G, q} \\max_D` gives the players `G,q` and `D`) or its `Game` keys.
        lr, optimizer, clip_grad_norm: one value for every player or a dict by player; `optimizer` is a name
            from `OPTIMIZERS`, an optimizer class or a factory `params -> Optimizer` (betas, weight decay).
        steps: consecutive updates in a player's turn, `{"D": 5, "G": 1}` (default 1 each).
        order: the players' turns (default: innermost first for a prefix, `D` then `G`; else the mapping's order).
        scheduler: a factory `optimizer -> LR scheduler` (or a dict by player, None for none), stepped after each
            of that player's updates.
        senses: `{"G": "min", "D": "max"}` for players the formula does not give a sense.
    """

    def __init__(self, players: Optional[Mapping[str, Sequence[Any]]] = None, *, lr: Any = 1e-3,
                 optimizer: Any = "adam", steps: Any = 1, order: Optional[Sequence[str]] = None,
                 senses: Optional[Mapping[str, str]] = None, clip_grad_norm: Any = None, scheduler: Any = None):
        super().__init__()
        self.player_spec = None if players is None else dict(players)
        self.options = {"lr": lr, "optimizer": optimizer, "steps": steps, "clip_grad_norm": clip_grad_norm,
                        "scheduler": scheduler}
        self.order_spec = None if order is None else tuple(order)
        self.senses = dict(senses or {})
        self.players: Dict[str, Player] = {}
        self.schedule: Tuple[str, ...] = ()
        self.updates: Dict[str, int] = {}
        self.clip: Dict[str, Any] = {}
        self.terms: Dict[str, Optional[Tuple[str, ...]]] = {}  # player -> the terms its step evaluates (None: all)
        self._objective: Optional[nn.Module] = None
        self._game = False

    def setup(self, objective: nn.Module) -> None:
        """Find the players and their parameters, build one optimizer per player and the turn schedule."""
        self._game = isinstance(objective, Game)
        senses = _checked_senses(self.senses, None)
        players = resolve_players(objective, self.player_spec, senses)
        check_ownership(objective, players)
        names = tuple(p.name for p in players)
        if self._game and set(names) != set(objective.objectives):
            raise FormulaInputError(f"Alternating(players=...) names {', '.join(names)}, but the game's players are "
                                    f"{', '.join(objective.objectives)}: each player steps on its own objective")
        option = {key: _per_player(key, value, names) for key, value in self.options.items()}
        self.players = {p.name: p for p in players}
        self.optimizers = {p.name: build_optimizer(option["optimizer"][p.name], p.parameters,
                                                   float(option["lr"][p.name])) for p in players}
        self.clip = option["clip_grad_norm"]
        self.schedulers = {name: factory(self.optimizers[name]) for name, factory in option["scheduler"].items()
                           if factory is not None}
        order = self.order_spec or names
        if sorted(order) != sorted(names):
            raise FormulaInputError(f"Alternating(order=...) must list each player once: {', '.join(names)}; "
                                    f"got {', '.join(order)}")
        self.schedule = tuple(name for name in order for _ in range(_count(option["steps"][name], name)))
        self.updates = {name: 0 for name in names}
        self._objective = objective
        self.terms = {} if self._game else {p.name: player_terms(objective, p) for p in players}

    def player_at(self, step: int) -> str:
        """The player whose turn it is at trainer step `step`."""
        return self.schedule[step % len(self.schedule)]

    def step(self, ctx: StepContext) -> Dict[str, float]:
        """One update of the player whose turn it is; statistics under `<player>/loss`, `<player>/term/...`."""
        player = self.players[self.player_at(ctx.step)]
        inputs = {**ctx.inputs, PLAYER_KEY: player.name} if self._game else ctx.inputs
        own = dataclasses.replace(ctx, diverged=lambda stats: _for_player(ctx.diverged(stats), player.name))
        others = [p for q in self.players.values() if q is not player for p in q.parameters]
        with _frozen(others), only_terms(self._objective, self.terms.get(player.name)):
            values, terms = ctx.evaluate(**inputs)
            stats = guarded_step(own, self.optimizers[player.name], values, terms, maximize=player.maximize,
                                 clip_grad_norm=self.clip[player.name])
        self.updates[player.name] += 1
        if player.name in self.schedulers:
            self.schedulers[player.name].step()
        return {f"{player.name}/{key}": value for key, value in stats.items()}

    def extra_state(self) -> Dict[str, Any]:
        """Each player's update count."""
        return {"updates": dict(self.updates)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.updates = {name: int(state.get("updates", {}).get(name, 0)) for name in self.players}

    def describe(self) -> str:
        turns = ", ".join(f"{name}: {p.sense} {type(self.optimizers[name]).__name__} x{self.schedule.count(name)}"
                          for name, p in self.players.items())
        return f"Alternating({turns})"


# ---------------------------------------------------------------------- who plays what


def resolve_players(objective: nn.Module, spec: Optional[Mapping[str, Sequence[Any]]],
                    senses: Mapping[str, str]) -> List[Player]:
    """The players of `objective`: from an explicit mapping, else its prefix (or Game), else `senses`."""
    decls = tuple(getattr(objective, "_decls", ()))
    entries = prefix_entries(objective)
    if spec is not None:
        return [_explicit_player(name, members, decls, entries, senses, objective) for name, members in spec.items()]
    if not entries and senses:
        entries = [(name, sense, (name,)) for name, sense in senses.items()]
    if not entries:
        raise FormulaInputError("Alternating needs players: write them in the formula (\\min_G \\max_D [ ... ]), "
                                "or pass players={'G': [G], 'D': [D]} with senses={'G': 'min', 'D': 'max'}",
                                getattr(objective, "text", None), None)
    for name, sense, _ in entries:
        if senses.get(name, sense) != sense:
            raise FormulaInputError(f"Alternating(senses=...) says {name!r} is {senses[name]}, the formula says "
                                    f"\\{sense}", getattr(objective, "text", None))
    return [Player(name, sense, *_owned(letters, decls, objective)) for name, sense, letters in entries]


def prefix_entries(objective: nn.Module) -> List[Entry]:
    """(player name, sense, declaration names) from a `Game` or a prefix, innermost player first for a prefix."""
    if isinstance(objective, Game):
        return list(objective.entries)
    prefix = tuple(getattr(objective, "players", ()) or ())
    return [(",".join(letters), sense, tuple(letters)) for sense, letters in reversed(prefix)]


def _explicit_player(name: str, members: Sequence[Any], decls: Tuple[Any, ...], entries: List[Entry],
                     senses: Mapping[str, str], objective: nn.Module) -> Player:
    """A player of `players={name: [declaration or name, ...]}`; its sense from `senses` or the prefix."""
    if isinstance(members, (str, nn.Module)):
        members = [members]
    chosen: Dict[int, Any] = {}
    for member in members:
        found = _owned((member,), decls, objective)[0] if isinstance(member, str) else (member,)
        for decl in found:
            chosen.setdefault(id(decl), decl)
    names = {_plain(name), *(_plain(getattr(d, "name", None)) for d in chosen.values())}
    sense = senses.get(name) or next((s for n, s, letters in entries
                                      if n == name or names & {_plain(t) for t in letters}), None)
    if sense is None:
        raise FormulaInputError(f"Alternating: the player {name!r} has no sense: the formula's prefix does not name "
                                f"it; pass senses={{{name!r}: 'min'}} (or 'max')", getattr(objective, "text", None))
    return Player(name, sense, tuple(chosen.values()), _parameters(chosen.values()))


def _owned(letters: Sequence[str], decls: Tuple[Any, ...], objective: nn.Module
           ) -> Tuple[Tuple[Any, ...], Tuple[nn.Parameter, ...]]:
    """The declarations named by `letters` and their parameters; a letter naming none is an error."""
    found: List[Any] = []
    for letter in letters:
        named = [d for d in decls if _plain(getattr(d, "name", None)) == _plain(letter)]
        if not named:
            known = ", ".join(dict.fromkeys(str(getattr(d, "name", "?")) for d in decls)) or "none"
            raise FormulaInputError(f"the player {letter!r} names no declaration (declared: {known}); declare "
                                    f"fm.Function('{letter}(...)', net=...) or name the player after one",
                                    getattr(objective, "text", None))
        found.extend(named)
    return tuple(found), _parameters(found)


def _plain(name: Any) -> Any:
    """A name as the prefix prints it (`p_{theta}`) or as a declaration keeps it (`p_theta`), compared alike."""
    return name.replace("{", "").replace("}", "").replace("\\", "") if isinstance(name, str) else name


def _parameters(decls: Any) -> Tuple[nn.Parameter, ...]:
    """The trainable parameters of some declarations, each once, in order."""
    seen: Dict[int, nn.Parameter] = {}
    for decl in decls:
        if isinstance(decl, nn.Module):
            for p in decl.parameters():
                if p.requires_grad:
                    seen.setdefault(id(p), p)
    return tuple(seen.values())


def check_ownership(objective: nn.Module, players: Sequence[Player]) -> None:
    """Every player owns parameters, none is owned twice, and every trainable parameter has an owner."""
    owner: Dict[int, str] = {}
    for player in players:
        if not player.parameters:
            raise FormulaInputError(f"the player {player.name!r} owns no trainable parameters (its declarations: "
                                    f"{', '.join(str(getattr(d, 'name', d)) for d in player.declarations) or 'none'})")
        for p in player.parameters:
            if id(p) in owner and owner[id(p)] != player.name:
                raise FormulaInputError(f"a parameter is owned by both players {owner[id(p)]!r} and {player.name!r} "
                                        "(a network shared by their declarations); give it to one player")
            owner[id(p)] = player.name
    orphans = [n for n, p in objective.named_parameters() if p.requires_grad and id(p) not in owner]
    if orphans:
        named = [str(getattr(d, "name", "?")) for d in getattr(objective, "_decls", ())
                 if any(id(p) not in owner for p in _parameters([d]))]
        what = ", ".join(dict.fromkeys(named)) or ", ".join(orphans[:3])
        raise FormulaInputError(f"no player owns the parameters of {what}: they would never move; name it in the "
                                "prefix (\\min_{G, q}), list it in players={...}, or freeze its parameters "
                                "(requires_grad_(False))", getattr(objective, "text", None))


# ---------------------------------------------------------------------- what a player's step evaluates


def player_terms(objective: nn.Module, player: Player) -> Optional[Tuple[str, ...]]:
    """The terms of one objective for both players that use `player`'s declarations (a draw, a density or a call
    of one): its step evaluates only those, the others' gradients with respect to its parameters being zero.
    None when that is every term (or the objective is not a compiled formula)."""
    if not hasattr(objective, "terms_using"):
        return None
    mine = objective.terms_using(player.declarations)
    return None if not mine or len(mine) == len(objective.term_names) else mine


@contextlib.contextmanager
def only_terms(objective: Optional[nn.Module], names: Optional[Tuple[str, ...]]) -> Iterator[None]:
    """Evaluate only the terms `names` of a compiled objective within the block (`Objective.only_terms`)."""
    if objective is None or names is None:
        yield
        return
    with objective.only_terms(names):
        yield


# ---------------------------------------------------------------------- helpers


def _game_entry(name: str, objective: nn.Module, sense: Optional[str]) -> Entry:
    """A Game player's sense and declaration names: its prefix entry naming it (or the only one), else `senses`."""
    prefix = tuple(getattr(objective, "players", ()) or ())
    named = [entry for entry in prefix if name in entry[1]]
    chosen = named[0] if named else (prefix[0] if len(prefix) == 1 else None)
    if chosen is not None:
        if sense is not None and sense != chosen[0]:
            raise FormulaInputError(f"Game: senses says {name!r} is {sense}, its formula says \\{chosen[0]}",
                                    getattr(objective, "text", None))
        return name, chosen[0], tuple(chosen[1])
    if sense is None:
        raise FormulaInputError(f"Game: the objective of player {name!r} does not say its sense: write "
                                f"\\min_{name} or \\max_{name} in front of it, or pass senses={{{name!r}: 'max'}}",
                                getattr(objective, "text", None))
    return name, sense, (name,)


def _checked_senses(senses: Optional[Mapping[str, str]], names: Optional[Tuple[str, ...]]) -> Dict[str, str]:
    """`senses=` as a dict of 'min'/'max' for known players."""
    senses = dict(senses or {})
    for name, sense in senses.items():
        if sense not in SENSES:
            raise FormulaInputError(f"the sense of player {name!r} must be 'min' or 'max', got {sense!r}")
        if names is not None and name not in names:
            raise FormulaInputError(f"senses names {name!r}, which is not a player ({', '.join(names)})")
    return senses


def _per_player(key: str, value: Any, names: Tuple[str, ...]) -> Dict[str, Any]:
    """An option given once for all players, or as a dict by player (every player present, no other)."""
    if not isinstance(value, Mapping):
        return {name: value for name in names}
    unknown, missing = sorted(set(value) - set(names)), [n for n in names if n not in value]
    if unknown or missing:
        raise FormulaInputError(f"Alternating({key}=...) must give every player ({', '.join(names)})"
                                f"{'; unknown: ' + ', '.join(unknown) if unknown else ''}"
                                f"{'; missing: ' + ', '.join(missing) if missing else ''}")
    return dict(value)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FormulaInputError(f"Alternating(steps=...) for player {name!r} must be a whole number >= 1, got {value!r}")
    return value


@contextlib.contextmanager
def _frozen(parameters: Sequence[nn.Parameter]) -> Iterator[None]:
    """Other players' parameters: gradients dropped, `requires_grad` off for the step, then restored."""
    frozen = [p for p in parameters if p.requires_grad]
    for p in parameters:
        p.grad = None
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _for_player(error: Exception, player: str) -> Exception:
    """The trainer's divergence error, saying whose step diverged."""
    if isinstance(error, TrainingDivergedError):
        return TrainingDivergedError(f"player {player}: {error}", error.term, error.step, error.statistics)
    return error
