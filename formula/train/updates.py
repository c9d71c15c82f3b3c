"""Update rules: what one training step does with a batch (which losses, which optimizers, in what order).

`Trainer` owns the data, the schedules, the history and the checkpoints; an `UpdateRule` owns the optimizers
(a dict name -> optimizer) and the learning-rate schedulers, and turns one batch into parameter updates. The
default, `SingleObjective`, ascends (or descends) the whole formula with one optimizer. A rule with several
optimizers (two players, k critic steps per generator step, parameters split in groups) is a new subclass:

>>> class Alternating(UpdateRule):                                  # doctest: +SKIP
...     def setup(self, objective):
...         first, second = split(objective.parameters())
...         self.optimizers = {"first": torch.optim.SGD(first, 0.1), "second": torch.optim.SGD(second, 0.1)}
...     def step(self, ctx):
...         name = "first" if ctx.step % 2 == 0 else "second"
...         values, terms = ctx.evaluate(**ctx.inputs)
...         return guarded_step(ctx, self.optimizers[name], values, terms)

`guarded_step` is the safe update every rule should use: one backward pass, one fused reduction that checks the
values and the gradients for NaN/inf, and the optimizer step only when all of them are finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from . import distributed as ddp
from .checkpoint import CheckpointError
from ..errors import FormulaInputError

__all__ = [
    "UpdateRule", "SingleObjective", "StepContext", "guarded_step", "step_statistics", "build_optimizer",
    "OPTIMIZERS", "LOSS", "OBJECTIVE", "TERM", "EVAL", "INPUT", "LR", "GRADIENT",
]

#: Optimizers a rule builds from a name; any `torch.optim.Optimizer` class or factory works as well.
OPTIMIZERS: Dict[str, type] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

# History keys: the trainer's own values, then every term under its own prefix, so a term named `loss` collides
# with nothing; held-out means carry `eval/` in front of the same keys. The trainer adds each scalar input's value
# (`input/beta`) and each optimizer's learning rate (`lr/main`) at the step.
LOSS, OBJECTIVE, TERM, EVAL, INPUT, LR = "loss", "objective", "term/", "eval/", "input/", "lr/"
GRADIENT = "the gradient norm"  # what a divergence names when only the gradients are non-finite
SKIPPED = "skipped"  # a float16 step whose gradients overflowed: no update, a smaller loss scale


@dataclass
class StepContext:
    """What the trainer hands an update rule for one step.

    `evaluate(**inputs)` runs the objective as the trainer wraps it (DistributedDataParallel, torch.compile) and
    gives `(values [batch], {term: [batch]})`; `diverged(stats)` builds the `TrainingDivergedError` for a step
    whose statistics hold a NaN/inf (`guarded_step` raises it for you).
    """

    inputs: Dict[str, Any]
    step: int
    maximize: bool
    evaluate: Callable[..., Tuple[torch.Tensor, Dict[str, torch.Tensor]]]
    diverged: Callable[[Mapping[str, float]], Exception]
    scaler: Optional[Any] = None  # a torch.amp.GradScaler under Trainer(amp="float16"); guarded_step uses it


class UpdateRule:
    """What one training step does; subclass it and implement `setup` and `step`.

    `setup(objective)` is called once by the trainer (after the objective is on its device) and fills
    `self.optimizers` (name -> optimizer) and optionally `self.schedulers` (name -> LR scheduler). `step(ctx)`
    updates the parameters from one batch and returns its statistics (history key -> float, for example from
    `guarded_step`). Checkpoints hold every optimizer and scheduler by name; `extra_state` and
    `load_extra_state` carry anything else a rule counts (plain data only).
    """

    def __init__(self) -> None:
        self.optimizers: Dict[str, torch.optim.Optimizer] = {}
        self.schedulers: Dict[str, Any] = {}

    def setup(self, objective: nn.Module) -> None:
        """Build the optimizers (and schedulers) over `objective`'s parameters."""
        raise NotImplementedError(f"{type(self).__name__}.setup(objective) must build self.optimizers")

    def step(self, ctx: StepContext) -> Dict[str, float]:
        """Update the parameters from one batch (`ctx.inputs`); return the step's statistics."""
        raise NotImplementedError(f"{type(self).__name__}.step(ctx) must update the parameters")

    def extra_state(self) -> Dict[str, Any]:
        """Plain data beyond the optimizers and schedulers that a resumed run needs (default: none)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `extra_state` returned (called only after every check passed)."""

    def describe(self) -> str:
        """A short description for the trainer's repr."""
        names = ", ".join(f"{k}={type(v).__name__}" for k, v in self.optimizers.items())
        return f"{type(self).__name__}({names})"

    # ---------------------------------------------------------------- checkpoints

    def state_dict(self) -> Dict[str, Any]:
        """Every optimizer and scheduler by name, their classes, and `extra_state()`."""
        return {
            "rule": type(self).__name__,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "optimizer_classes": {k: type(o).__name__ for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "extra": self.extra_state(),
        }

    def check_state_dict(self, state: Any) -> None:
        """Raise `CheckpointError` unless `state` (from `state_dict`) loads into this rule; changes nothing."""
        if not isinstance(state, Mapping):
            raise CheckpointError("the checkpoint's update-rule entry is not a dict")
        if state.get("rule") != type(self).__name__:
            raise CheckpointError(f"the checkpoint was written by the update rule {state.get('rule')!r}, this "
                                  f"trainer's is {type(self).__name__!r}: pass update=... as it was")
        for key in ("optimizers", "optimizer_classes", "schedulers", "extra"):
            if not isinstance(state.get(key), Mapping):
                raise CheckpointError(f"the checkpoint's update rule has no {key!r} dict")
        _same_names("optimizers", state["optimizers"], self.optimizers)
        _same_names("schedulers", state["schedulers"], self.schedulers)
        for name, optimizer in self.optimizers.items():
            if state["optimizer_classes"].get(name) != type(optimizer).__name__:
                raise CheckpointError(f"the checkpoint's optimizer {name!r} is {state['optimizer_classes'].get(name)!r}, "
                                      f"this trainer's is {type(optimizer).__name__}")
            check_optimizer_state(optimizer, state["optimizers"][name], name)
        for name, scheduler in self.schedulers.items():
            check_plain_like(scheduler.state_dict(), state["schedulers"][name], f"scheduler {name!r}")

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned; call `check_state_dict` first."""
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        self.load_extra_state(state["extra"])


class SingleObjective(UpdateRule):
    """Ascend (or descend) the whole formula with one optimizer: the trainer's default rule.

    `optimizer` is a name from `OPTIMIZERS`, an optimizer class, a factory `params -> Optimizer` or an instance;
    `scheduler` a factory `optimizer -> LR scheduler`, stepped after every update; `clip_grad_norm` clips the
    gradients' global norm. The sense comes from the trainer's `maximize=`.
    """

    def __init__(self, optimizer: Any = "adam", lr: float = 1e-3, clip_grad_norm: Optional[float] = None,
                 scheduler: Optional[Callable[[torch.optim.Optimizer], Any]] = None):
        super().__init__()
        self.optimizer_spec = optimizer
        self.lr = float(lr)
        self.clip_grad_norm = None if clip_grad_norm is None else float(clip_grad_norm)
        self.scheduler_factory = scheduler

    def setup(self, objective: nn.Module) -> None:
        """One optimizer, `main`, over every trainable parameter; its scheduler, when one is given."""
        self.optimizers = {"main": build_optimizer(self.optimizer_spec, objective.parameters(), self.lr)}
        if self.scheduler_factory is not None:
            self.schedulers = {"main": self.scheduler_factory(self.optimizers["main"])}

    def step(self, ctx: StepContext) -> Dict[str, float]:
        """Evaluate, check, update, then step the scheduler."""
        values, terms = ctx.evaluate(**ctx.inputs)
        stats = guarded_step(ctx, self.optimizers["main"], values, terms, clip_grad_norm=self.clip_grad_norm)
        for scheduler in self.schedulers.values():
            scheduler.step()
        return stats


# ---------------------------------------------------------------------- the safe update


def step_statistics(values: torch.Tensor, terms: Mapping[str, torch.Tensor], maximize: bool
                    ) -> Tuple[torch.Tensor, List[str], torch.Tensor]:
    """The loss to differentiate, the history keys, and the detached row of their batch means (no sync)."""
    value = values.mean()
    loss = -value if maximize else value
    names = [LOSS, OBJECTIVE, *(TERM + name for name in terms)]
    row = torch.stack([loss.detach().float(), value.detach().float(),
                       *(t.detach().float().mean() for t in terms.values())])
    return loss, names, row


def guarded_step(ctx: StepContext, optimizer: torch.optim.Optimizer, values: torch.Tensor,
                 terms: Mapping[str, torch.Tensor], *, maximize: Optional[bool] = None,
                 clip_grad_norm: Optional[float] = None) -> Dict[str, float]:
    """Backward through the mean of `values`, then `optimizer.step()` only if every value and gradient is finite.

    The batch means of the loss, the objective and every term and the gradients' global norm are gathered in one
    reduction (and one host sync, averaged over ranks under torchrun, so every rank stops on the same step). A
    NaN/inf raises `TrainingDivergedError` with the parameters and the optimizer state as they were before.
    """
    maximize = ctx.maximize if maximize is None else maximize
    loss, names, row = step_statistics(values, terms, maximize)
    scaler = ctx.scaler
    optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)  # the norm, the check and the clipping see the true gradients
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    grads = [p.grad for p in params]
    norm = torch.nn.utils.get_total_norm(grads) if grads else row.new_zeros(())
    row = torch.cat([row, norm.detach().float().reshape(1).to(row.device)])
    host_values = (ddp.all_reduce_sum(row) / ddp.world_size()).tolist()
    host = dict(zip(names, host_values[:-1]))
    if not all(v == v and abs(v) != float("inf") for v in host_values):
        if scaler is not None and all(v == v and abs(v) != float("inf") for v in host_values[:-1]):
            return _skip_overflow(scaler, optimizer, host)
        raise ctx.diverged({**host, GRADIENT: host_values[-1]})
    if clip_grad_norm is not None and grads:
        torch.nn.utils.clip_grads_with_norm_(params, clip_grad_norm, norm)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return host


def _skip_overflow(scaler, optimizer: torch.optim.Optimizer, host: Dict[str, float]) -> Dict[str, float]:
    """float16 gradients overflowed at this loss scale (the values are finite): no update, the scale backs off on
    every rank alike (the overflow was seen in the all-reduced norm), as GradScaler does on one."""
    optimizer.zero_grad(set_to_none=True)
    scaler.update(scaler.get_scale() * scaler.get_backoff_factor())
    return {**host, SKIPPED: 1.0}


def build_optimizer(spec: Any, parameters: Any, lr: float) -> torch.optim.Optimizer:
    """An optimizer over `parameters` (those that require grad) from a name, a class, a factory or an instance."""
    params = [p for p in parameters if p.requires_grad]
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    if not params:
        raise FormulaInputError("the objective has no trainable parameters: its distributions and functions "
                                "have no networks or nn.Parameters to fit")
    if isinstance(spec, str):
        if spec.lower() not in OPTIMIZERS:
            raise FormulaInputError(f"unknown optimizer {spec!r}; known: {', '.join(OPTIMIZERS)}")
        return OPTIMIZERS[spec.lower()](params, lr=lr)
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        return spec(params, lr=lr)
    if callable(spec):
        return spec(params)
    raise FormulaInputError(f"optimizer must be a name, an Optimizer class, a factory or an instance, got {spec!r}")


# ---------------------------------------------------------------------- checking saved state


def _same_names(what: str, saved: Mapping[str, Any], mine: Mapping[str, Any]) -> None:
    if set(saved) != set(mine):
        raise CheckpointError(f"the checkpoint's {what} are {sorted(saved)}, this trainer's are {sorted(mine)}")


def check_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any, name: str) -> None:
    """Raise `CheckpointError` unless `saved` is a state dict for `optimizer`'s parameters, shapes included.

    Each saved per-parameter tensor must match this optimizer's own state for that parameter where it has one,
    and otherwise be a scalar or have the parameter's shape (true of every optimizer in `torch.optim` that the
    trainer can drive); `load_state_dict` alone checks only the number of parameters.
    """
    where = f"the checkpoint's optimizer {name!r}"
    if not isinstance(saved, Mapping) or not isinstance(saved.get("state"), Mapping) \
            or not isinstance(saved.get("param_groups"), Sequence):
        raise CheckpointError(f"{where} is not an optimizer state dict (needs 'state' and 'param_groups')")
    mine = optimizer.state_dict()
    groups = saved["param_groups"]
    if len(groups) != len(mine["param_groups"]) or any(
            not isinstance(g, Mapping) or not isinstance(g.get("params"), Sequence) or len(g["params"]) != len(h["params"])
            for g, h in zip(groups, mine["param_groups"])):
        raise CheckpointError(f"{where} is for other parameters (its groups or their sizes differ)")
    for g, h in zip(groups, mine["param_groups"]):  # settings both know (torch fills in ones a version lacks)
        if "lr" not in g:
            raise CheckpointError(f"{where} has a parameter group without a learning rate")
        common = [k for k in h if k in g and k != "params"]
        check_plain_like({k: h[k] for k in common}, {k: g[k] for k in common}, f"optimizer {name!r} group settings")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for g in groups for i in g["params"]]
    position = {i: n for n, i in enumerate(ids)}
    own_ids = [i for g in mine["param_groups"] for i in g["params"]]
    probe = _probe_state(optimizer)
    for key, entry in saved["state"].items():
        if key not in position or not isinstance(entry, Mapping):
            raise CheckpointError(f"{where} holds state for a parameter it does not list ({key!r})")
        n = position[key]
        own = mine["state"].get(own_ids[n])
        _check_parameter_state(entry, own if own is not None else probe, params[n], f"{where}, parameter {n}")


def _probe_state(optimizer: torch.optim.Optimizer) -> Optional[Dict[str, Any]]:
    """The per-parameter state one step of this optimizer's class and settings makes, on a 2-element dummy
    parameter (param-shaped tensors stand for the parameter's shape); None when the probe cannot run."""
    dummy = torch.zeros(2, requires_grad=True)
    try:
        probe = type(optimizer)([dummy], **optimizer.defaults)
        dummy.grad = torch.zeros_like(dummy)
        probe.step()
    except Exception:  # noqa: BLE001  a custom or device-bound optimizer: shapes are checked without the probe
        return None
    return {k: _PARAM_SHAPED if isinstance(v, torch.Tensor) and v.shape == dummy.shape else v
            for k, v in probe.state[dummy].items()}


class _ParamShaped:
    """Marks a probed state entry that has its parameter's shape."""


_PARAM_SHAPED = _ParamShaped()


def _check_parameter_state(entry: Mapping[str, Any], own: Optional[Mapping[str, Any]], param: torch.Tensor,
                           where: str) -> None:
    """One parameter's saved optimizer state against this optimizer's own (or a probe's) and the parameter."""
    if own is not None and set(entry) != set(own):
        raise CheckpointError(f"{where}: state keys {sorted(entry)}, expected {sorted(own)}")
    for k, v in entry.items():
        ref = own.get(k) if own is not None else None
        if ref is _PARAM_SHAPED:
            ref = param
        if not isinstance(v, torch.Tensor):
            if isinstance(ref, torch.Tensor):
                raise CheckpointError(f"{where}: {k!r} is {type(v).__name__}, expected a tensor")
            if ref is not None:
                check_plain_like(ref, v, f"{where}: {k!r}")
            continue
        allowed = [tuple(ref.shape)] if isinstance(ref, torch.Tensor) else [(), tuple(param.shape)]
        if tuple(v.shape) not in allowed:
            raise CheckpointError(f"{where}: {k!r} has shape {tuple(v.shape)}, expected {allowed[-1]}")
        if isinstance(ref, torch.Tensor) and v.is_floating_point() != ref.is_floating_point():
            raise CheckpointError(f"{where}: {k!r} has dtype {v.dtype}, expected {ref.dtype}")


_NUMBER = (int, float)


def check_plain_like(reference: Any, value: Any, what: str) -> None:
    """Raise `CheckpointError` unless `value` has `reference`'s structure: the same keys, list lengths and kinds
    of leaves (numbers with numbers, strings with strings, tensors of the same shape)."""
    if isinstance(reference, Mapping):
        if not isinstance(value, Mapping) or set(value) != set(reference):
            raise CheckpointError(f"the checkpoint's {what} has other entries than this trainer's "
                                  f"({sorted(map(str, value)) if isinstance(value, Mapping) else type(value).__name__}, "
                                  f"expected {sorted(map(str, reference))})")
        for k in reference:
            check_plain_like(reference[k], value[k], what)
    elif isinstance(reference, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(reference):
            raise CheckpointError(f"the checkpoint's {what} has a list of another length or kind")
        for a, b in zip(reference, value):
            check_plain_like(a, b, what)
    elif isinstance(reference, torch.Tensor):
        if not isinstance(value, torch.Tensor) or value.shape != reference.shape:
            raise CheckpointError(f"the checkpoint's {what} holds a tensor of another shape")
    elif isinstance(reference, bool) or reference is None or isinstance(reference, str):
        if type(value) is not type(reference) and not (reference is None or value is None):
            raise CheckpointError(f"the checkpoint's {what} holds {value!r} where {reference!r} belongs")
    elif isinstance(reference, _NUMBER):
        if isinstance(value, bool) or not isinstance(value, _NUMBER):
            raise CheckpointError(f"the checkpoint's {what} holds {value!r} where a number belongs")
