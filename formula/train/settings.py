"""What a user passes to `Trainer` and `fit`, checked with messages; and the Trainer arguments that continue a
checkpoint (its settings, and what the file cannot hold and the caller must give again)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from .checkpoint import CheckpointError
from .updates import SingleObjective, UpdateRule
from ..errors import FormulaInputError

__all__ = ["check_objective", "refuse_rule_options", "check_rule", "positive", "check_fit_options", "checked_inputs",
           "check_names", "load_options", "RULE_OPTIONS"]

#: The Trainer arguments that configure the default rule, with their defaults.
RULE_OPTIONS = {"optimizer": "adam", "lr": 1e-3, "clip_grad_norm": None, "scheduler": None}


def check_objective(objective: Any, update: Optional[UpdateRule]) -> None:
    """An objective keeps the protocol; a two-player one needs an explicit update rule."""
    if not isinstance(objective, nn.Module) or not hasattr(objective, "evaluate"):
        raise FormulaInputError("Trainer needs a compiled objective (an nn.Module with .evaluate and .inputs), "
                                f"got {type(objective).__name__}")
    players = tuple(getattr(objective, "players", ()) or ())
    if players and update is None:
        prefix = " ".join(f"\\{sense}_{{{','.join(who)}}}" for sense, who in players)
        raise FormulaInputError(
            f"the objective is a game ({prefix} ...): the default update rule would ascend or descend the whole "
            "formula for every player (issue 16). Pass update=fm.Alternating(...) (each player its own optimizer "
            "and sense, k steps per turn; formula.train.games) or another UpdateRule",
            getattr(objective, "text", None), None)


def refuse_rule_options(options: Mapping[str, Any], update: Any) -> None:
    """With `update=`, the optimizer settings belong to the rule; giving them to the trainer too is a mistake."""
    if not isinstance(update, UpdateRule):
        raise FormulaInputError(f"update= must be an UpdateRule (formula.train.updates), got {type(update).__name__}")
    given = [k for k, v in options.items() if v is not RULE_OPTIONS[k] and v != RULE_OPTIONS[k]]
    if given:
        raise FormulaInputError(f"Trainer(update=...) takes its optimizers from the rule; {', '.join(given)} "
                                f"would be ignored: give them to {type(update).__name__} instead")


def check_rule(rule: UpdateRule) -> None:
    """After `setup`, a rule holds at least one optimizer, by name."""
    optimizers = getattr(rule, "optimizers", None)
    if not isinstance(optimizers, dict) or not optimizers or not all(
            isinstance(o, torch.optim.Optimizer) for o in optimizers.values()):
        raise FormulaInputError(f"{type(rule).__name__}.setup(objective) must fill self.optimizers with a dict "
                                "name -> torch.optim.Optimizer (at least one)")


def positive(value: Any, name: str) -> float:
    """A setting that must be a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise FormulaInputError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def check_fit_options(epochs: Any, checkpoint: Any, every: Any) -> None:
    """`fit`'s counts are non-negative integers; `checkpoint_every` needs a `checkpoint` path to write."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise FormulaInputError(f"fit(epochs=...) must be a whole number of epochs >= 0, got {epochs!r}")
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise FormulaInputError(f"fit(checkpoint_every=...) must be a number of steps >= 1, got {every!r}")
        if checkpoint is None:
            raise FormulaInputError("fit(checkpoint_every=...) needs checkpoint=path, the file to write")


def checked_inputs(inputs: Optional[Mapping[str, Any]], objective: nn.Module) -> Dict[str, Any]:
    """`Trainer(inputs=...)`, every name an input of the formula."""
    inputs = dict(inputs or {})
    unknown = [name for name in inputs if name not in tuple(objective.inputs)]
    if unknown:
        raise FormulaInputError(
            f"Trainer(inputs=...) names {', '.join(map(repr, unknown))}, which the formula does not use; "
            f"its inputs are: {', '.join(objective.inputs) or '(none)'}"
        )
    return inputs


def check_names(batch: Mapping[str, Any], data_inputs: Tuple[str, ...], scalars: Mapping[str, Any],
                 inputs: Tuple[str, ...], optional: Tuple[str, ...] = ()) -> None:
    """A batch names exactly the data inputs (and may name optional ones, such as per-example lengths `T`); the
    error says what is missing, extra or given twice."""
    unknown = [k for k in batch if k not in data_inputs and not (k in optional and k not in scalars)]
    missing = [k for k in data_inputs if k not in batch]
    if not unknown and not missing:
        return
    parts = []
    if missing:
        parts.append(f"the data lacks {', '.join(map(repr, missing))}")
    twice = [k for k in unknown if k in scalars]
    if twice:
        parts.append(f"{', '.join(map(repr, twice))} is given both in the data and in Trainer(inputs=...)")
    unknown = [k for k in unknown if k not in scalars]
    if unknown:
        parts.append(f"{', '.join(map(repr, unknown))} in the data is not an input of the formula")
    raise FormulaInputError("; ".join(parts) + f" (formula inputs: {', '.join(inputs)}; "
                            f"given as scalars: {', '.join(scalars) or 'none'})")


def load_options(state: Mapping[str, Any], options: Dict[str, Any], path: str) -> Dict[str, Any]:
    """The Trainer arguments that continue a checkpoint: its settings, overridden by `options`; what a file
    cannot hold (schedules, custom optimizers, schedulers, update rules) must be among `options`."""
    config = dict(state["config"])
    rule, has_scheduler = config.pop("rule"), config.pop("scheduler")
    config.pop("compile")
    rule_options = {k: config.pop(k) for k in ("optimizer", "lr", "clip_grad_norm")}
    if "update" not in options:
        if rule != SingleObjective.__name__:
            raise CheckpointError(f"the run in {path!r} used the update rule {rule}; pass update=... to Trainer.load")
        if rule_options["optimizer"] is None and "optimizer" not in options:
            kind = state["update"].get("optimizer_classes", {}).get("main", "?")
            raise CheckpointError(f"the run in {path!r} used a custom optimizer ({kind}); "
                                  "pass optimizer=... to Trainer.load")
        if has_scheduler and options.get("scheduler") is None:
            raise CheckpointError(f"the run in {path!r} used a learning-rate scheduler; pass scheduler=... to "
                                  "Trainer.load")
        config.update({k: v for k, v in rule_options.items() if v is not None})
    inputs = dict(options.pop("inputs", {}) or {})
    for name, record in state["inputs"].items():
        if name in inputs:
            continue
        if "value" not in record:
            raise CheckpointError(
                f"the run in {path!r} set the input {name!r} by a schedule, which a checkpoint cannot "
                f"hold; pass inputs={{{name!r}: ...}} to Trainer.load to continue it"
            )
        inputs[name] = record["value"]
    config.update(options)
    config["inputs"] = inputs
    return config
