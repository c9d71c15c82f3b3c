"""`Trainer`: fit a compiled objective to data, with a progress bar, a divergence guard and exact resumption.

The trainer works with any `nn.Module` that keeps the objective protocol: `objective(**inputs)` gives per-example
values, `objective.evaluate(**inputs)` gives them with every top-level term from one pass, `objective.inputs` names
what a call needs. It minimises `-mean` (or `mean` with `maximize=False`), logs every term by its printed name,
stops with `TrainingDivergedError` the step a term turns NaN/inf, and under `torchrun` trains with
DistributedDataParallel without any change to the user's code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed as ddp
from .checkpoint import CheckpointError, check_state_dict, load_checkpoint, save_checkpoint
from ..errors import FormulaError, FormulaInputError

__all__ = ["Trainer", "TrainingDivergedError", "OPTIMIZERS", "TensorBatches"]

#: Optimizers a trainer builds from a name; any `torch.optim.Optimizer` class or factory works as well.
OPTIMIZERS: Dict[str, type] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}

Scalar = Union[float, int, torch.Tensor, Callable[[int], float]]
LOSS, OBJECTIVE = "loss", "objective"  # history keys besides the formula's own terms
GRADIENT = "the gradient norm"  # what a divergence names when only the gradients are non-finite
EVAL = "eval/"  # prefix of held-out entries in the history


class TrainingDivergedError(FormulaError):
    """The loss or a term became NaN or infinite; `.term`, `.step` and `.statistics` say where and on what."""

    def __init__(self, message: str, term: str, step: int, statistics: Mapping[str, str]):
        self.term = term
        self.step = step
        self.statistics = dict(statistics)
        super().__init__(message)


class _Evaluate(nn.Module):
    """Calls `objective.evaluate` from `forward`, the one method DistributedDataParallel and torch.compile wrap."""

    def __init__(self, objective: nn.Module):
        super().__init__()
        self.objective = objective

    def forward(self, **inputs: Any) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        return self.objective.evaluate(**inputs)


@dataclass(frozen=True)
class TensorBatches:
    """Shuffled mini-batches of a dict of equal-length tensors, dealt to this rank as `DistributedSampler` would.

    The order of epoch `e` depends only on `(seed, e)`, so a resumed run sees the same batches as a straight one,
    and the k-th batches of all ranks together are the k-th batch of single-process training with
    `batch_size * world_size`.
    """

    data: Mapping[str, torch.Tensor]
    batch_size: int
    shuffle: bool = True
    seed: int = 0
    drop_last: bool = False

    @property
    def size(self) -> int:
        """Number of examples."""
        return next(iter(self.data.values())).shape[0]

    def order(self, epoch: int) -> torch.Tensor:
        """Every example's index, in the order epoch `epoch` visits them (before sharding)."""
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=generator)

    def epoch(self, epoch: int, rank: int = 0, world_size: int = 1, pad: bool = True) -> Iterator[Dict[str, torch.Tensor]]:
        """This rank's batches for `epoch`; `pad=False` deals without repeating examples (for evaluation)."""
        order = self.order(epoch)
        mine = ddp.shard(order, rank, world_size) if pad else order[rank::world_size]
        stop = len(mine) - len(mine) % self.batch_size if self.drop_last else len(mine)
        for start in range(0, stop, self.batch_size):
            index = mine[start : start + self.batch_size]
            yield {name: tensor[index.to(tensor.device)] for name, tensor in self.data.items()}

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """How many batches each rank takes per epoch."""
        per_rank = -(-self.size // world_size)
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)


class Trainer:
    """Fits an objective: `Trainer(elbo, maximize=True, optimizer="adam", lr=1e-3).fit(data, epochs=10)`.

    Args:
        objective: a compiled formula (or any module keeping its protocol).
        maximize: ascend the formula (an ELBO) or descend it (a loss).
        optimizer: a name from `OPTIMIZERS`, an optimizer class, a factory `params -> Optimizer`, or an instance.
        lr: learning rate for a named optimizer or an optimizer class.
        device: "auto" (CUDA when present, this process's GPU under torchrun), or any torch device.
        inputs: the formula's scalar inputs: numbers, 0-d tensors, or schedules `step -> float` (KL warm-up).
        batch_size: examples per step and process when `fit` is given a dict of tensors.
        clip_grad_norm: clip the gradients' global norm to this value each step (None: no clipping).
        scheduler: a factory `optimizer -> torch LR scheduler`, stepped after every optimizer step.
        compile: run the objective through `torch.compile` (True, or a dict of `torch.compile` options).
        seed: seed of the data order for dicts of tensors (the sampling RNG is torch's, left to the user).
        progress: show a tqdm bar (on rank 0 only).
        distributed_options: keyword arguments for DistributedDataParallel under torchrun (for instance
            `find_unused_parameters=True` for a formula that leaves some network out of a step).
    """

    def __init__(
        self,
        objective: nn.Module,
        *,
        maximize: bool = True,
        optimizer: Any = "adam",
        lr: float = 1e-3,
        device: Union[str, torch.device] = "auto",
        inputs: Optional[Mapping[str, Scalar]] = None,
        batch_size: int = 128,
        clip_grad_norm: Optional[float] = None,
        scheduler: Optional[Callable[[torch.optim.Optimizer], Any]] = None,
        compile: Union[bool, Mapping[str, Any]] = False,
        seed: int = 0,
        progress: bool = True,
        distributed_options: Optional[Mapping[str, Any]] = None,
    ):
        if not isinstance(objective, nn.Module) or not hasattr(objective, "evaluate"):
            raise TypeError("Trainer needs a compiled objective (an nn.Module with .evaluate and .inputs), "
                            f"got {type(objective).__name__}")
        self.objective = objective
        self.maximize = bool(maximize)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.clip_grad_norm = None if clip_grad_norm is None else float(clip_grad_norm)
        self.seed = int(seed)
        self.progress = bool(progress)
        self.inputs: Dict[str, Scalar] = dict(inputs or {})
        unknown = [name for name in self.inputs if name not in tuple(objective.inputs)]
        if unknown:
            raise FormulaInputError(
                f"Trainer(inputs=...) names {', '.join(map(repr, unknown))}, which the formula does not use; "
                f"its inputs are: {', '.join(objective.inputs) or '(none)'}"
            )
        self.step = 0
        self.epoch = 0
        self.history: Dict[str, List[float]] = {}

        self.device = ddp.pick_device(device)
        ddp.init_from_env(self.device)
        objective.to(self.device)
        self._optimizer_spec = optimizer
        self.optimizer = _build_optimizer(optimizer, objective, self.lr)
        self.scheduler = scheduler(self.optimizer) if scheduler is not None else None

        self._module: nn.Module = _Evaluate(objective)
        model: nn.Module = self._module
        if ddp.is_distributed():
            from torch.nn.parallel import DistributedDataParallel

            options = dict(distributed_options or {})
            if self.device.type == "cuda":
                options.setdefault("device_ids", [self.device.index])
            model = DistributedDataParallel(self._module, **options)
        self._compile_options = dict(compile) if isinstance(compile, Mapping) else ({} if compile else None)
        if self._compile_options is not None:
            model = torch.compile(model, **self._compile_options)
        self._model = model

    # ------------------------------------------------------------------ inputs and batches

    @property
    def data_inputs(self) -> Tuple[str, ...]:
        """The formula's inputs that come from the data (every input not given in `inputs=`)."""
        return tuple(name for name in self.objective.inputs if name not in self.inputs)

    def scalar_values(self, step: Optional[int] = None) -> Dict[str, float]:
        """The scalar inputs' values at `step` (default: now), schedules evaluated."""
        step = self.step if step is None else step
        return {name: _scalar_value(value, step) for name, value in self.inputs.items()}

    def _as_inputs(self, batch: Any) -> Dict[str, torch.Tensor]:
        """A batch from the data, as the objective's named data inputs."""
        if isinstance(batch, torch.Tensor):
            batch = (batch,)
        if isinstance(batch, (tuple, list)):
            if len(batch) != 1 or len(self.data_inputs) != 1:
                raise FormulaInputError(
                    f"a batch of {len(batch)} unnamed tensor(s) cannot be matched to the data inputs "
                    f"({', '.join(self.data_inputs) or 'none'}); yield dicts keyed by input name instead"
                )
            batch = {self.data_inputs[0]: batch[0]}
        if not isinstance(batch, Mapping):
            raise FormulaInputError(f"a batch must be a dict of tensors or a tensor, got {type(batch).__name__}")
        unknown = [k for k in batch if k not in self.data_inputs]
        missing = [k for k in self.data_inputs if k not in batch]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"the data lacks {', '.join(map(repr, missing))}")
            twice = [k for k in unknown if k in self.inputs]
            if twice:
                parts.append(f"{', '.join(map(repr, twice))} is given both in the data and in Trainer(inputs=...)")
            unknown = [k for k in unknown if k not in self.inputs]
            if unknown:
                parts.append(f"{', '.join(map(repr, unknown))} in the data is not an input of the formula")
            raise FormulaInputError(
                "; ".join(parts) + f" (formula inputs: {', '.join(self.objective.inputs)}; "
                f"given as scalars: {', '.join(self.inputs) or 'none'})"
            )
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _call_inputs(self, batch: Any) -> Dict[str, Any]:
        """Data inputs of one batch plus every scalar input at the current step, on the trainer's device."""
        inputs = self._as_inputs(batch)
        floats = [v for v in inputs.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
        dtype = floats[0].dtype if floats else torch.get_default_dtype()
        for name, value in self.inputs.items():
            if isinstance(value, torch.Tensor):
                inputs[name] = value.to(self.device)
            else:
                inputs[name] = torch.tensor(_scalar_value(value, self.step), dtype=dtype, device=self.device)
        return inputs

    def _batches(self, data: Any, epoch: int, train: bool) -> Tuple[Iterable[Any], Optional[int], bool]:
        """The batches this process takes from `data` in `epoch`, how many (None when unknown), and whether they
        are this rank's share only (so that sums over them must be gathered from every rank)."""
        if isinstance(data, torch.Tensor):
            if len(self.data_inputs) != 1:
                raise FormulaInputError(
                    f"a bare tensor cannot be matched to the data inputs ({', '.join(self.data_inputs) or 'none'}); "
                    "pass a dict keyed by input name"
                )
            data = {self.data_inputs[0]: data}
        if isinstance(data, Mapping):
            sizes = {k: v.shape[0] for k, v in data.items() if isinstance(v, torch.Tensor)}
            if len(sizes) != len(data) or len(set(sizes.values())) != 1:
                raise FormulaInputError(
                    "a dict of data must hold tensors with the same first (batch) dimension; got "
                    + ", ".join(f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                                for k, v in data.items())
                )
            self._as_inputs({k: v[:0] for k, v in data.items()})  # names checked before any step
            batches = TensorBatches(data, self.batch_size, shuffle=train, seed=self.seed)
            rank, world = ddp.rank(), ddp.world_size()
            if train:
                return batches.epoch(epoch, rank, world), batches.batches_per_epoch(world), world > 1
            if batches.size < world:  # too few to split without a rank left empty: every rank takes all
                rank, world = 0, 1
            return batches.epoch(epoch, rank, world, pad=False), None, world > 1
        loader = ddp.distributed_loader(data, epoch, self.seed) if train else data
        try:
            total = len(loader)
        except TypeError:
            total = None
        return loader, total, train and loader is not data

    # ------------------------------------------------------------------ training

    def train_step(self, batch: Any) -> Dict[str, float]:
        """One optimizer step on `batch`; returns the loss, the objective and every term (means over the batch)."""
        inputs = self._call_inputs(batch)
        self.objective.train()
        values, terms = self._model(**inputs)
        value = values.mean()
        loss = -value if self.maximize else value
        names = [LOSS, OBJECTIVE, *terms]
        stats = torch.stack([loss.detach(), value.detach(), *(t.detach().float().mean() for t in terms.values())])
        stats = ddp.all_reduce_sum(stats.float()) / ddp.world_size()  # every rank sees (and stops on) the same
        host = dict(zip(names, stats.tolist()))
        if not all(math.isfinite(v) for v in host.values()):
            raise self._diverged(host, inputs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad_norm is not None:
            norm = float(nn.utils.clip_grad_norm_(self.objective.parameters(), self.clip_grad_norm))
            if not math.isfinite(norm):  # finite values, non-finite gradients: stop before the update
                raise self._diverged({**host, GRADIENT: norm}, inputs)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return host

    def fit(self, data: Any, epochs: int = 1, *, eval_data: Any = None) -> Dict[str, List[float]]:
        """Train for `epochs` more epochs over `data`; return the history of per-epoch means.

        `data` is a dict of equal-length tensors (batched by `batch_size`, reshuffled each epoch), a tensor (for a
        formula with one data input), or a DataLoader / iterable yielding dicts, tensors or 1-tuples. Under torchrun
        each process takes its own share. With `eval_data`, the held-out means are logged under `eval/<name>`.
        """
        show = self.progress and ddp.is_main_process()
        last = self.epoch + epochs
        # One bar for the whole fit, updated by hand (a bar wrapping an iterable closes itself at its end).
        bar = None
        try:
            for _ in range(epochs):
                batches, total, _ = self._batches(data, self.epoch, train=True)
                if bar is None:
                    bar = tqdm(total=None if total is None else total * epochs, disable=not show,
                               dynamic_ncols=True, unit="step")
                bar.set_description(f"epoch {self.epoch + 1}/{last}", refresh=False)
                sums: Dict[str, float] = {}
                count = 0
                for batch in batches:
                    stats = self.train_step(batch)
                    n = _batch_len(batch)
                    for name, v in stats.items():
                        sums[name] = sums.get(name, 0.0) + v * n
                    count += n
                    bar.set_postfix(_postfix(stats), refresh=False)
                    bar.update(1)
                means = {name: s / max(count, 1) for name, s in sums.items()}
                if eval_data is not None:
                    means.update({EVAL + k: v for k, v in self.evaluate(eval_data).items()})
                bar.set_postfix(_postfix(means), refresh=True)  # the epoch's means stay on screen
                for name, v in means.items():
                    self.history.setdefault(name, []).append(v)
                self.epoch += 1
        finally:
            if bar is not None:
                bar.close()
        return self.history

    @torch.no_grad()
    def evaluate(self, data: Any) -> Dict[str, float]:
        """Means of the loss, the objective and every term over `data`, without training (eval mode, no grad).

        Scalar inputs take their value at the current step. Under torchrun a dict of tensors is split across the
        processes and the means gathered; a DataLoader is evaluated whole on every process.
        """
        was_training = self.objective.training
        self.objective.eval()
        try:
            batches, _, shared = self._batches(data, 0, train=False)
            sums: Optional[torch.Tensor] = None
            names: List[str] = []
            for batch in batches:
                inputs = self._call_inputs(batch)
                values, terms = self._module(**inputs)
                value = values.float().mean()
                n = float(_batch_len(batch))
                names = [LOSS, OBJECTIVE, *terms]
                row = torch.stack([-value if self.maximize else value, value,
                                   *(t.float().mean() for t in terms.values())]) * n
                row = torch.cat([row, row.new_tensor([n])])
                sums = row if sums is None else sums + row
        finally:
            self.objective.train(was_training)
        if sums is None:
            raise FormulaInputError("evaluate() was given no data")
        if shared:
            sums = ddp.all_reduce_sum(sums)
        totals = sums.tolist()
        return {name: s / totals[-1] for name, s in zip(names, totals[:-1])}

    def _diverged(self, stats: Mapping[str, float], inputs: Mapping[str, Any]) -> TrainingDivergedError:
        """The error for a non-finite step: the first bad term by its printed name, the step, the inputs' stats."""
        terms = [k for k in stats if k not in (LOSS, OBJECTIVE, GRADIENT)]
        bad = next((k for k in terms if not math.isfinite(stats[k])), None)
        if bad is not None:
            term, what = bad, f"the term {bad} is {stats[bad]}"
        elif not math.isfinite(stats[LOSS]):
            term, what = LOSS, f"the loss is {stats[LOSS]}"
        else:
            term, what = GRADIENT, f"{GRADIENT} is {stats[GRADIENT]}"
        statistics = {name: _describe(value) for name, value in inputs.items()}
        where = f"on rank {ddp.rank()} " if ddp.is_distributed() else ""
        lines = [
            f"training diverged at step {self.step} (epoch {self.epoch + 1}): {what} (loss {stats[LOSS]})",
            f"  formula: {_one_line(self.objective)}",
            "  terms: " + ", ".join(f"{k} = {stats[k]:.6g}" for k in terms),
            f"  inputs {where}at this step:",
            *(f"    {name}: {desc}" for name, desc in statistics.items()),
            "  try a smaller lr, clip_grad_norm=..., a KL warm-up, or check the data for NaN/inf",
        ]
        return TrainingDivergedError("\n".join(lines), term=term, step=self.step, statistics=statistics)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> Dict[str, Any]:
        """Everything a run needs to continue exactly: networks, optimizer, scheduler, step, history, RNG state."""
        rng: Dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "formula": _one_line(self.objective),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": type(self.optimizer).__name__,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "step": self.step,
            "epoch": self.epoch,
            "history": {k: list(v) for k, v in self.history.items()},
            "rng": rng,
            "inputs": {name: _input_record(value) for name, value in self.inputs.items()},
            "config": {
                "maximize": self.maximize,
                "optimizer": self._optimizer_spec if isinstance(self._optimizer_spec, str) else None,
                "lr": self.lr,
                "batch_size": self.batch_size,
                "clip_grad_norm": self.clip_grad_norm,
                "seed": self.seed,
                "compile": self._compile_options is not None,
            },
        }

    def save(self, path: Any) -> None:
        """Write a checkpoint atomically (rank 0 only under torchrun; the others wait until it is written).

        Saved between `fit` calls, a run continues exactly after `Trainer.load`: the next epoch's batches, draws
        and updates are the ones an uninterrupted run would have made (`fit` always starts a fresh epoch).
        """
        if ddp.is_main_process():
            save_checkpoint(self.state_dict(), path)
        ddp.barrier()

    @classmethod
    def load(cls, path: Any, objective: nn.Module, **options: Any) -> "Trainer":
        """A trainer that continues the run saved at `path`, training `objective` (built as before the save).

        Settings come from the checkpoint; `options` override them (`device=`, `progress=`, ...) and must supply
        what a file cannot hold: schedules given as functions, a custom optimizer, an LR scheduler. Nothing is
        loaded unless all of it fits: a foreign or truncated file, or one for other networks, raises
        `CheckpointError` and leaves `objective` as it was.
        """
        state = load_checkpoint(path)
        check_state_dict(objective, state["objective"], "networks")
        config = dict(state["config"])
        config.pop("compile", None)
        if config.get("optimizer") is None and "optimizer" not in options:
            raise CheckpointError(
                f"the run in {str(path)!r} used a custom optimizer ({state['optimizer_class']}); "
                "pass optimizer=... to Trainer.load"
            )
        inputs = dict(options.pop("inputs", {}) or {})
        for name, record in state["inputs"].items():
            if name in inputs:
                continue
            if "value" not in record:
                raise CheckpointError(
                    f"the run in {str(path)!r} set the input {name!r} by a schedule, which a checkpoint cannot "
                    f"hold; pass inputs={{{name!r}: ...}} to Trainer.load to continue it"
                )
            inputs[name] = record["value"]
        if state["scheduler"] is not None and options.get("scheduler") is None:
            raise CheckpointError(
                f"the run in {str(path)!r} used a learning-rate scheduler; pass scheduler=... to Trainer.load"
            )
        config.update(options)
        trainer = cls(objective, inputs=inputs, **config)
        trainer._restore(state, str(path))
        return trainer

    def _restore(self, state: Mapping[str, Any], path: str) -> None:
        """Load a checked checkpoint into this trainer: optimizer state first (it validates), then everything."""
        same_optimizer = state["optimizer_class"] == type(self.optimizer).__name__
        if same_optimizer:
            saved = state["optimizer"]["param_groups"]
            mine = self.optimizer.state_dict()["param_groups"]
            if len(saved) != len(mine) or any(len(a["params"]) != len(b["params"]) for a, b in zip(saved, mine)):
                raise CheckpointError(f"the optimizer state in {path!r} is for other parameters (nothing was loaded)")
        else:
            warnings.warn(
                f"the checkpoint's optimizer is {state['optimizer_class']}, this trainer's is "
                f"{type(self.optimizer).__name__}: its state starts afresh", stacklevel=3,
            )
        self.objective.load_state_dict(state["objective"])
        if same_optimizer:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available() \
                and len(state["rng"]["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def __repr__(self) -> str:
        return (f"Trainer({_one_line(self.objective)!r}, maximize={self.maximize}, "
                f"optimizer={type(self.optimizer).__name__}, lr={self.lr}, device={str(self.device)!r}, "
                f"step={self.step}, epoch={self.epoch})")


# ---------------------------------------------------------------------- helpers


def _build_optimizer(spec: Any, objective: nn.Module, lr: float) -> torch.optim.Optimizer:
    """An optimizer over the objective's parameters from a name, a class, a factory or an instance."""
    params = [p for p in objective.parameters() if p.requires_grad]
    if not params:
        raise FormulaInputError("the objective has no trainable parameters: its distributions and functions "
                                "have no networks or nn.Parameters to fit")
    if isinstance(spec, torch.optim.Optimizer):
        return spec
    if isinstance(spec, str):
        if spec.lower() not in OPTIMIZERS:
            raise FormulaInputError(f"unknown optimizer {spec!r}; known: {', '.join(OPTIMIZERS)}")
        return OPTIMIZERS[spec.lower()](params, lr=lr)
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        return spec(params, lr=lr)
    if callable(spec):
        return spec(params)
    raise TypeError(f"optimizer must be a name, an Optimizer class, a factory or an instance, got {spec!r}")


def _scalar_value(value: Scalar, step: int) -> float:
    """A scalar input's value at `step`: a schedule is called, a number or 0-d tensor is read."""
    if callable(value) and not isinstance(value, torch.Tensor):
        value = value(step)
    return float(value)


def _input_record(value: Scalar) -> Dict[str, Any]:
    """How a checkpoint keeps a scalar input: its value when constant, only a mark when it is a schedule."""
    if callable(value) and not isinstance(value, torch.Tensor):
        return {"schedule": True}
    if isinstance(value, torch.Tensor):
        return {"value": value.detach().cpu()}
    return {"value": float(value)}


def _batch_len(batch: Any) -> int:
    """Number of examples in a batch (the first dimension of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, Mapping) else batch
    for v in values:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return v.shape[0]
    return 1


def _postfix(stats: Mapping[str, float]) -> Dict[str, str]:
    """The progress bar's postfix: the loss and every term (held-out ones too) to four significant digits."""
    return {name: f"{v:.4g}" for name, v in stats.items() if name not in (OBJECTIVE, EVAL + OBJECTIVE)}


def _describe(value: Any) -> str:
    """Shape, dtype and the statistics that reveal bad data: min, max, mean, non-finite count."""
    if not isinstance(value, torch.Tensor):
        return repr(value)
    t = value.detach()
    if t.numel() == 0:
        return f"shape {tuple(t.shape)}, {t.dtype}, empty"
    if t.dim() == 0:
        return f"{t.item():.6g} ({t.dtype})"
    f = t.float()
    finite = torch.isfinite(f)
    bad = int((~finite).sum())
    ok = f[finite]
    if ok.numel() == 0:
        return f"shape {tuple(t.shape)}, {t.dtype}, all {t.numel()} values NaN/inf"
    return (f"shape {tuple(t.shape)}, {t.dtype}, min {ok.min().item():.4g}, max {ok.max().item():.4g}, "
            f"mean {ok.mean().item():.4g}, {bad} NaN/inf")


def _one_line(objective: nn.Module) -> str:
    """The formula as one line, for messages (sympy's pretty printing may span several lines)."""
    text = getattr(objective, "text", None)
    if isinstance(text, str):
        return text
    return " ".join(str(objective).split())
