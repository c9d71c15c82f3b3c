"""`Trainer`: fit a compiled objective to data, with a progress bar, a divergence guard and exact resumption.

The trainer works with any `nn.Module` that keeps the objective protocol: `objective.evaluate(**inputs)` gives
per-example values and every top-level term from one pass, `objective.inputs` names what a call needs. What one
step does is an update rule's job (`formula.train.updates`; by default `SingleObjective`: minimise `-mean`, or
`mean` with `maximize=False`, with one optimizer). The trainer feeds the batches and the scheduled inputs, logs
`loss`, `objective` and `term/<name>` per epoch, stops with `TrainingDivergedError` the step a value or a gradient
turns NaN/inf, saves checkpoints that resume bit-exactly at any step, and under `torchrun` trains with
DistributedDataParallel without any change to the user's code.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm.auto import tqdm

from . import distributed as ddp
from .batches import TensorBatches, as_tensor_data, from_numpy, is_array, resumed_iterable
from .checkpoint import CheckpointError, check_state_dict, load_checkpoint, save_checkpoint
from .interrupt import InterruptGuard
from .precision import amp_dtype, autocast, float32_outputs, grad_scaler, with_autocast
from .progress import BAR_FORMAT, legend, postfix, short_names
from .tensorboard_log import TensorBoardLog, tensorboard_dir
from .state import check_fields, check_identity, declarations, one_line, restore_rng, rng_state
from .runlog import RunLog
from .settings import (check_fit_options, check_names, check_objective, check_rule, checked_inputs, load_options,
                       positive, refuse_rule_options)
from .updates import (EVAL, GRADIENT, INPUT, LOSS, LR, OPTIMIZERS, TERM, SingleObjective, StepContext,
                      UpdateRule, step_statistics)
from .without_data import DrawBatch, Draws, draws_for
from ..errors import FormulaError, FormulaInputError

__all__ = ["Trainer", "TrainingDivergedError", "OPTIMIZERS", "TensorBatches", "UpdateRule", "SingleObjective"]

Scalar = Union[float, int, torch.Tensor, Callable[[int], float]]


class TrainingDivergedError(FormulaError):
    """The loss, a term or the gradient became NaN or infinite; `.term`, `.step` and `.statistics` say where."""

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


class Trainer:
    """Fits an objective: `Trainer(elbo, maximize=True, optimizer="adam", lr=1e-3).fit(data, epochs=10)`.

    Args:
        objective: a compiled formula (or any module keeping its protocol).
        maximize: ascend the formula (an ELBO) or descend it (a loss).
        optimizer: a name from `OPTIMIZERS`, an optimizer class, a factory `params -> Optimizer`, or an instance.
        lr: learning rate for a named optimizer or an optimizer class.
        device: "auto" (CUDA when present, this process's GPU under torchrun), "cpu", "cuda", "cuda:1", ...
        inputs: the formula's scalar inputs: numbers, 0-d tensors, or schedules `step -> float` (KL warm-up).
        batch_size: examples per step and process when `fit` is given a dict of tensors.
        clip_grad_norm: clip the gradients' global norm to this value each step (None: no clipping).
        scheduler: a factory `optimizer -> torch LR scheduler`, stepped after every optimizer step.
        update: an `UpdateRule` that decides what a step does (it owns its optimizers; `optimizer`, `lr`,
            `clip_grad_norm` and `scheduler` then belong to it and may not be given here).
        compile: run the objective through `torch.compile` (True, or a dict of `torch.compile` options).
        seed: seed of the data order for dicts of tensors (the sampling RNG is torch's, left to the user).
        progress: show a tqdm bar (on rank 0 only).
        timeout: seconds a rank waits for the others under torchrun before `StalledRankError` (default 600).
        log: a path: every step's and epoch's values (terms, scalar inputs, learning rates) are appended there,
            as CSV in long form (`kind,epoch,step,name,value`) for a `.csv` path, else as JSON lines; the
            formula, the terms' full and progress-bar names and the optimizers go to `<log stem>.meta.json`.
        tensorboard: also write the rows as TensorBoard scalars: None (default) beside the log when TensorBoard
            is installed, True (the same, required), False (never), or a folder.
        amp: mixed precision: True (bfloat16 autocast on CPU and CUDA), False, or "bfloat16"; the declared
            networks run in low precision, their outputs, the log-densities and KLs in float32
            (formula.train.precision).
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
        update: Optional[UpdateRule] = None,
        compile: Union[bool, Mapping[str, Any]] = False,
        seed: int = 0,
        progress: bool = True,
        timeout: float = ddp.DEFAULT_TIMEOUT,
        log: Any = None,
        tensorboard: Any = None,
        amp: Any = False,
        distributed_options: Optional[Mapping[str, Any]] = None,
    ):
        check_objective(objective, update)
        options = dict(optimizer=optimizer, lr=lr, clip_grad_norm=clip_grad_norm, scheduler=scheduler)
        if update is not None:
            refuse_rule_options(options, update)
        self.objective = objective
        self.maximize = bool(maximize)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.progress = bool(progress)
        self.timeout = positive(timeout, "timeout")
        self.inputs: Dict[str, Scalar] = checked_inputs(inputs, objective)
        self.step = 0  # update-rule steps taken
        self.epoch = 0  # epochs completed
        self.position = 0  # batches of the current epoch done
        self.history: Dict[str, List[float]] = {}
        self.interrupted: Optional[str] = None  # the signal that stopped the last fit, if one did
        self._epoch_sums: Dict[str, float] = {}
        self._epoch_counts: Dict[str, float] = {}
        self._epoch_rng: Optional[torch.Tensor] = None  # torch's RNG when the current epoch began

        self._bar_names = short_names(tuple(getattr(objective, "term_names", ()) or ()))
        self.device = ddp.pick_device(device)
        ddp.init_from_env(self.device, self.timeout)
        self.amp = amp_dtype(amp, self.device)
        self._amp_hooks = float32_outputs(objective) if self.amp is not None else []
        self._scaler = grad_scaler(self.device, self.amp)  # float16 only
        objective.to(self.device)
        self.update = update if update is not None else SingleObjective(optimizer, lr, clip_grad_norm, scheduler)
        self.update.setup(objective)
        check_rule(self.update)
        self._logs = self._open_logs(log, tensorboard) if ddp.is_main_process() else []
        self._compile_options = dict(compile) if isinstance(compile, Mapping) else ({} if compile else None)
        self._module, self._model = _wrap(objective, self.device, distributed_options, self._compile_options)

    # ------------------------------------------------------------------ what it holds

    @property
    def optimizers(self) -> Dict[str, torch.optim.Optimizer]:
        """The update rule's optimizers by name (`main` for the default rule)."""
        return self.update.optimizers

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer, when the update rule has exactly one (else use `optimizers`)."""
        if len(self.optimizers) != 1:
            raise FormulaInputError(f"this trainer's update rule has {len(self.optimizers)} optimizers "
                                    f"({', '.join(self.optimizers)}); use trainer.optimizers[name]")
        return next(iter(self.optimizers.values()))

    @property
    def scheduler(self) -> Any:
        """The LR scheduler, when the update rule has one (None when it has none)."""
        schedulers = self.update.schedulers
        if len(schedulers) > 1:
            raise FormulaInputError(f"this trainer's update rule has {len(schedulers)} schedulers "
                                    f"({', '.join(schedulers)}); use trainer.update.schedulers[name]")
        return next(iter(schedulers.values()), None)

    @property
    def data_inputs(self) -> Tuple[str, ...]:
        """The formula's inputs that come from the data (every input not given in `inputs=`)."""
        return tuple(name for name in self.objective.inputs if name not in self.inputs)

    def _open_logs(self, log: Any, tensorboard: Any) -> List[Any]:
        """The run's logs: the CSV/JSON-lines file and TensorBoard's folder, each given the run's metadata."""
        meta = self.log_metadata()
        logs: List[Any] = [RunLog(log, meta)] if log is not None else []
        folder = tensorboard_dir(tensorboard, log)
        if folder is not None:
            logs.append(TensorBoardLog(folder, meta))
        return logs

    def log_metadata(self) -> Dict[str, Any]:
        """What the log's rows do not repeat: the formula, each term's full name with its progress-bar name, the
        scalar inputs (a schedule or a value), the optimizers and the precision."""
        return {
            "formula": one_line(self.objective),
            "terms": [{"name": name, "bar": short} for name, short in self._bar_names.items()],
            "inputs": {name: "schedule" if callable(v) and not isinstance(v, torch.Tensor) else _scalar_value(v, 0)
                       for name, v in self.inputs.items() if not isinstance(v, torch.Tensor) or v.numel() == 1},
            "optimizers": {name: {"class": type(o).__name__, "lr": [float(g["lr"]) for g in o.param_groups]}
                           for name, o in self.optimizers.items()},
            "maximize": self.maximize,
            "amp": None if self.amp is None else str(self.amp).replace("torch.", ""),
        }

    @property
    def bar_names(self) -> Dict[str, str]:
        """Each term's full name -> its short name on the progress bar (formula.train.progress)."""
        return self._bar_names

    def scalar_values(self, step: Optional[int] = None) -> Dict[str, float]:
        """The scalar inputs' values at `step` (default: now), schedules evaluated."""
        step = self.step if step is None else step
        return {name: _scalar_value(value, step) for name, value in self.inputs.items()}

    # ------------------------------------------------------------------ inputs and batches

    def _as_inputs(self, batch: Any) -> Dict[str, torch.Tensor]:
        """A batch from the data, as the objective's named data inputs."""
        if isinstance(batch, DrawBatch):
            return batch.inputs()
        if isinstance(batch, torch.Tensor) or is_array(batch):
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
        check_names(batch, self.data_inputs, self.inputs, self.objective.inputs,
                    getattr(self.objective, "optional_inputs", ()))
        float_dtype = self._float_dtype() if any(is_array(v) for v in batch.values()) else None
        return {k: _to_device(v, self.device, float_dtype) for k, v in batch.items()}

    def _call_inputs(self, batch: Any) -> Tuple[Dict[str, Any], Dict[str, float]]:
        """Data inputs of one batch plus every scalar input at the current step, on the trainer's device; and the
        scalar inputs' values (each schedule is called once a step)."""
        inputs = self._as_inputs(batch)
        floats = [v for v in inputs.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
        dtype = floats[0].dtype if floats else torch.get_default_dtype()
        scalars: Dict[str, float] = {}
        for name, value in self.inputs.items():
            if isinstance(value, torch.Tensor):
                inputs[name] = value.to(self.device)
                if value.numel() == 1:
                    scalars[name] = float(value)
            else:
                scalars[name] = _scalar_value(value, self.step)
                inputs[name] = torch.tensor(scalars[name], dtype=dtype, device=self.device)
        return inputs, scalars

    def _learning_rates(self) -> Dict[str, float]:
        """Each optimizer's learning rate now, as `lr/<optimizer>` (`lr/<optimizer>/<group>` for several groups)."""
        rates = {}
        for name, optimizer in self.optimizers.items():
            groups = optimizer.param_groups
            for i, group in enumerate(groups):
                rates[LR + name + (f"/{i}" if len(groups) > 1 else "")] = float(group["lr"])
        return rates

    def _prepare(self, data: Any, shuffle: bool = False, steps_per_epoch: Any = None, call: str = "fit()") -> Any:
        """`fit`'s or `evaluate`'s data with numpy arrays converted and names checked, once, before any step; a
        map-style `Dataset` (of dicts, tensors or 1-tuples) is batched by a DataLoader of `batch_size`; None (an
        objective without data) is `steps_per_epoch` calls of `batch_size` draws."""
        if data is None:
            return draws_for(self.data_inputs, self.batch_size, steps_per_epoch, call)
        if isinstance(data, Dataset) and not isinstance(data, IterableDataset) and hasattr(data, "__len__"):
            data = DataLoader(data, batch_size=self.batch_size, shuffle=shuffle)
        data = as_tensor_data(data, self.data_inputs, self._float_dtype())
        if isinstance(data, Mapping):
            self._as_inputs({k: v[:0] for k, v in data.items()})
        return data

    def _float_dtype(self) -> Optional[torch.dtype]:
        """The dtype of the objective's floating parameters (numpy data are converted to it)."""
        return next((p.dtype for p in self.objective.parameters() if p.is_floating_point()), None)

    def _train_batches(self, data: Any) -> Tuple[Iterable[Any], Optional[int]]:
        """This rank's remaining batches of the current epoch (from `position` on) and the epoch's batch count."""
        if self.position == 0:
            self._epoch_rng = torch.get_rng_state()
        if isinstance(data, Draws):
            return data.epoch(start=self.position), data.steps
        rank, world = ddp.rank(), ddp.world_size()
        if isinstance(data, Mapping):
            batches = TensorBatches(data, self.batch_size, shuffle=True, seed=self.seed)
            total = batches.batches_per_epoch(world)
            if self.position > total:
                raise FormulaInputError(f"the run stopped after batch {self.position} of epoch {self.epoch + 1}, but "
                                        f"this data has {total} batches an epoch: resume it with the same data")
            return batches.epoch(self.epoch, rank, world, start=self.position), total
        loader = ddp.distributed_loader(data, self.epoch, self.seed)
        try:
            total = len(loader)
        except TypeError:
            total = None
        return resumed_iterable(loader, self.position, self._epoch_rng), total

    def _eval_batches(self, data: Any) -> Tuple[Iterable[Any], bool]:
        """The batches this process evaluates, and whether they are this rank's share only (sums gathered)."""
        if isinstance(data, Draws):
            return data.epoch(), False
        if not isinstance(data, Mapping):
            return data, False  # a DataLoader is evaluated whole on every process
        batches = TensorBatches(data, self.batch_size, shuffle=False)
        rank, world = ddp.rank(), ddp.world_size()
        if batches.size < world:  # too few to split without a rank left empty: every rank takes all
            rank, world = 0, 1
        return batches.epoch(0, rank, world, pad=False), world > 1

    # ------------------------------------------------------------------ training

    def train_step(self, batch: Any) -> Dict[str, float]:
        """One step of the update rule on `batch`; returns its statistics (`loss`, `objective`, `term/<name>`),
        the scalar inputs (`input/<name>`) and the learning rates (`lr/<optimizer>`) it used."""
        inputs, scalars = self._call_inputs(batch)
        rates = self._learning_rates()
        self.objective.train()
        ctx = StepContext(inputs=inputs, step=self.step, maximize=self.maximize,
                          evaluate=with_autocast(self._model, self.device, self.amp),
                          diverged=lambda stats: self._diverged(stats, inputs), scaler=self._scaler)
        with ddp.collective(f"step {self.step}", self.timeout):
            stats = self.update.step(ctx)
        self.step += 1
        return {**stats, **{INPUT + k: v for k, v in scalars.items()}, **rates}

    def fit(self, data: Any, epochs: int = 1, *, eval_data: Any = None, checkpoint: Any = None,
            checkpoint_every: Optional[int] = None, checkpoint_on_interrupt: Any = None,
            steps_per_epoch: Optional[int] = None) -> Dict[str, List[float]]:
        """Train for `epochs` more epochs over `data` (an epoch left unfinished by a resumed checkpoint counts as
        one); return the history of per-epoch means.

        `data` is a dict of equal-length tensors or numpy arrays (batched by `batch_size`, reshuffled each epoch),
        a tensor (for a formula with one data input), a map-style `torch.utils.data.Dataset` of dicts (batched by
        `batch_size`, shuffled from torch's RNG), or any DataLoader / iterable yielding dicts, tensors or
        1-tuples; or None for a formula without data inputs, each epoch then `steps_per_epoch` calls of
        `batch_size` draws (formula.train.without_data). Under torchrun each process takes its own share. With `eval_data`, the held-out means are logged
        under `eval/<key>`. `checkpoint=path` is written after every epoch and every `checkpoint_every` steps;
        with `checkpoint_on_interrupt=path`, SIGINT/SIGTERM stops the fit after the current step, writes that
        checkpoint and returns (`trainer.interrupted` names the signal).
        """
        check_fit_options(epochs, checkpoint, checkpoint_every)
        if data is not None and steps_per_epoch is not None:
            raise FormulaInputError("fit(steps_per_epoch=...) is for a formula without data (data=None); with data "
                                    "an epoch is one pass over it")
        data = self._prepare(data, shuffle=True, steps_per_epoch=steps_per_epoch)
        eval_data = None if eval_data is None else self._prepare(eval_data)
        show = self.progress and ddp.is_main_process()
        self.interrupted = None
        bar = None
        last = self.epoch + epochs  # the bar counts toward the epoch this fit ends at
        with InterruptGuard(checkpoint_on_interrupt is not None) as guard:
            try:
                for _ in range(epochs):
                    batches, total = self._train_batches(data)
                    if bar is None:
                        for line in legend(self.bar_names) if show else ():
                            tqdm.write(line, file=sys.stderr)
                        bar = tqdm(total=None if total is None else total * epochs - self.position,
                                   disable=not show, dynamic_ncols=True, unit="step", bar_format=BAR_FORMAT,
                                   desc=f"epoch {self.epoch + 1}/{last}")
                    bar.set_description_str(f"epoch {self.epoch + 1}/{last}", refresh=False)
                    if not self._train_epoch(batches, bar, guard, checkpoint, checkpoint_every):
                        self._stop(guard.received, checkpoint_on_interrupt, bar)
                        break
                    self._close_epoch(eval_data, bar)
                    if checkpoint is not None:
                        self.save(checkpoint)
            finally:
                if bar is not None:
                    bar.close()
                for log in self._logs:
                    log.flush()
        return self.history

    def _train_epoch(self, batches: Iterable[Any], bar: Any, guard: InterruptGuard, checkpoint: Any,
                     every: Optional[int]) -> bool:
        """Run the epoch's remaining batches; False when a signal stopped it (after a finished step)."""
        for batch in batches:
            stats = self.train_step(batch)
            n = _batch_len(batch)
            for name, v in stats.items():
                self._epoch_sums[name] = self._epoch_sums.get(name, 0.0) + v * n
                self._epoch_counts[name] = self._epoch_counts.get(name, 0) + n
            self.position += 1
            for log in self._logs:
                log.write("step", self.epoch + 1, self.step, stats)
            bar.set_postfix_str(postfix(stats, self.bar_names), refresh=False)
            bar.update(1)
            if checkpoint is not None and every and self.step % every == 0:
                self.save(checkpoint)
            if guard.requested(self.device):
                return False
        return True

    def _close_epoch(self, eval_data: Any, bar: Any) -> None:
        """The epoch's means (and held-out means) into the history; the next epoch starts at its first batch."""
        means = {name: s / max(self._epoch_counts[name], 1) for name, s in self._epoch_sums.items()}
        if eval_data is not None:
            means.update({EVAL + k: v for k, v in self.evaluate(eval_data).items()})
        bar.set_postfix_str(postfix(means, self.bar_names), refresh=True)  # the epoch's means stay on screen
        for name, v in means.items():
            self.history.setdefault(name, []).append(v)
        for log in self._logs:
            log.write("epoch", self.epoch + 1, self.step, means)
            log.flush()
        self.epoch += 1
        self.position = 0
        self._epoch_sums, self._epoch_counts, self._epoch_rng = {}, {}, None

    def _stop(self, signal_name: Optional[str], path: Any, bar: Any) -> None:
        """After SIGINT/SIGTERM: write the checkpoint and say how to continue."""
        self.interrupted = signal_name
        self.save(path)
        if ddp.is_main_process():
            bar.write(f"stopped by {signal_name} after step {self.step} (epoch {self.epoch + 1}, batch "
                      f"{self.position}); checkpoint written to {str(path)!r}: Trainer.load(path, objective) "
                      "continues from here", file=sys.stderr)

    @torch.no_grad()
    def evaluate(self, data: Any, *, steps: int = 1) -> Dict[str, float]:
        """Means of the loss, the objective and every term (`term/<name>`) over `data`, without training.

        Eval mode and no gradients; scalar inputs take their value at the current step. Under torchrun a dict of
        tensors is split across the processes and the means gathered; a DataLoader is evaluated whole by each.
        For a formula without data inputs, `data=None` averages `steps` calls of `batch_size` draws.
        """
        data = self._prepare(data, steps_per_epoch=steps, call="evaluate()")
        was_training = self.objective.training
        self.objective.eval()
        try:
            batches, shared = self._eval_batches(data)
            sums: Optional[torch.Tensor] = None
            names: List[str] = []
            for batch in batches:
                with autocast(self.device, self.amp):
                    values, terms = self._module(**self._call_inputs(batch)[0])
                n = float(_batch_len(batch))
                _, names, row = step_statistics(values, terms, self.maximize)
                row = torch.cat([row * n, row.new_tensor([n])])
                sums = row if sums is None else sums + row
        finally:
            self.objective.train(was_training)
        if sums is None:
            raise FormulaInputError("evaluate() was given no data")
        if shared:
            with ddp.collective("evaluate()", self.timeout):
                sums = ddp.all_reduce_sum(sums)
        totals = sums.tolist()
        return {name: s / totals[-1] for name, s in zip(names, totals[:-1])}

    def _diverged(self, stats: Mapping[str, float], inputs: Mapping[str, Any]) -> TrainingDivergedError:
        """The error for a non-finite step: the first bad term by its printed name (else the loss, another
        statistic of the rule, or the gradient), the step, and the statistics of the inputs."""
        terms = [k for k in stats if k.startswith(TERM)]
        others = [k for k in stats if k not in terms and k != GRADIENT]
        bad = next((k for k in terms + others if not math.isfinite(stats[k])), GRADIENT)
        term = bad[len(TERM):] if bad in terms else bad
        label = f"the term {term}" if bad in terms else (bad if bad.startswith("the ") else f"the {bad}")
        what = f"{label} is {stats[bad]}"
        statistics = {name: _describe(value) for name, value in inputs.items()}
        where = f"on rank {ddp.rank()} " if ddp.is_distributed() else ""
        lines = [
            f"training diverged at step {self.step} (epoch {self.epoch + 1}): {what} (loss {stats.get(LOSS)}); "
            "the parameters and the optimizer state are as they were before this step",
            f"  formula: {one_line(self.objective)}",
            "  terms: " + ", ".join(f"{k[len(TERM):]} = {stats[k]:.6g}" for k in terms),
            f"  inputs {where}at this step:",
            *(f"    {name}: {desc}" for name, desc in statistics.items()),
            "  try a smaller lr, clip_grad_norm=..., a KL warm-up, or check the data for NaN/inf",
        ]
        return TrainingDivergedError("\n".join(lines), term=term, step=self.step, statistics=statistics)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> Dict[str, Any]:
        """Everything a run needs to continue exactly: networks, update rule (optimizers, schedulers), counters,
        the position in the epoch and its running sums, history, RNG states, constant inputs and settings."""
        rule = self.update
        default = type(rule) is SingleObjective  # a subclass may take other arguments: it is passed again
        return {
            "formula": one_line(self.objective),
            "declarations": declarations(self.objective),
            "objective": self.objective.state_dict(),
            "update": rule.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "epoch_sums": dict(self._epoch_sums),
            "epoch_counts": dict(self._epoch_counts),
            "history": {k: list(v) for k, v in self.history.items()},
            "scaler": self._scaler.state_dict() if self._scaler is not None else None,
            "rng": {**rng_state(), "epoch": self._epoch_rng if self.position else None},
            "inputs": {name: _input_record(value) for name, value in self.inputs.items()},
            "config": {
                "maximize": self.maximize,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "compile": self._compile_options is not None,
                "rule": type(rule).__name__,
                "optimizer": rule.optimizer_spec if default and isinstance(rule.optimizer_spec, str) else None,
                "lr": rule.lr if default else 0.0,
                "clip_grad_norm": rule.clip_grad_norm if default else None,
                "scheduler": bool(rule.schedulers),
            },
        }

    def save(self, path: Any) -> None:
        """Write a checkpoint atomically (rank 0 only under torchrun; the others wait until it is written).

        Saved at any step (between `fit` calls, by `fit(checkpoint=...)` or on an interrupt), a run continues
        exactly after `Trainer.load`: the remaining batches, draws and updates are the ones an uninterrupted
        run would have made.
        """
        with ddp.collective(f"saving {str(path)!r}", self.timeout):
            ranks = self._rank_rng_states()
            if ddp.is_main_process():
                state = self.state_dict()
                if ranks is not None:
                    state["rng"]["ranks"] = ranks
                save_checkpoint(state, path)
            ddp.barrier()

    def _rank_rng_states(self) -> Optional[List[torch.Tensor]]:
        """Under torchrun, every rank's RNG state and its epoch's first one (`[2, n]` bytes each, in rank order),
        so that each rank resumes its own draws; None in a single process."""
        if not ddp.is_distributed():
            return None
        now = torch.get_rng_state()
        first = self._epoch_rng if self.position and self._epoch_rng is not None else now
        return ddp.all_gather(torch.stack([now, first]), self.device)

    def restore(self, path: Any, *, strict: bool = True) -> None:
        """Continue the run saved at `path` in this trainer; on any `CheckpointError` nothing has changed.

        Every part is checked first (digest, fields, formula and declarations unless `strict=False`, networks,
        every optimizer and scheduler, RNG states), and only then is everything restored.
        """
        self._restore(load_checkpoint(path), str(path), strict)

    @classmethod
    def load(cls, path: Any, objective: nn.Module, *, strict: bool = True, **options: Any) -> "Trainer":
        """A trainer that continues the run saved at `path`, training `objective` (built as before the save).

        Settings come from the checkpoint; `options` override them (`device=`, `progress=`, ...) and must supply
        what a file cannot hold: schedules given as functions, a custom optimizer, an LR scheduler, a custom
        update rule. Nothing is loaded unless all of it fits: a corrupt, truncated or foreign file, one for other
        networks or (unless `strict=False`) another formula raises `CheckpointError` and leaves `objective` as
        it was.
        """
        state = load_checkpoint(path)
        where = str(path)
        check_fields(state, where)
        if strict:
            check_identity(state, objective, where)
        check_state_dict(objective, state["objective"], "networks")
        trainer = cls(objective, **load_options(state, dict(options), where))
        trainer._restore(state, where, strict)
        return trainer

    def _restore(self, state: Mapping[str, Any], path: str, strict: bool) -> None:
        """Check every part of a loaded checkpoint against this trainer, then restore all of it."""
        check_fields(state, path)
        if strict:
            check_identity(state, self.objective, path)
        check_state_dict(self.objective, state["objective"], "networks")
        self.update.check_state_dict(state["update"])
        config = state["config"]
        if state["position"] and (config["batch_size"], config["seed"]) != (self.batch_size, self.seed):
            raise CheckpointError(f"the checkpoint {path!r} stopped inside an epoch with batch_size="
                                  f"{config['batch_size']} and seed={config['seed']}; resume it with the same ones")
        self.objective.load_state_dict(state["objective"])
        self.update.load_state_dict(state["update"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self._epoch_sums, self._epoch_counts = dict(state["epoch_sums"]), dict(state["epoch_counts"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        if self._scaler is not None and isinstance(state.get("scaler"), dict):
            self._scaler.load_state_dict(state["scaler"])  # float16's loss scale and its growth count
        restore_rng(state["rng"])
        self._epoch_rng = state["rng"].get("epoch")
        ranks = state["rng"].get("ranks")
        if ranks is not None and ddp.is_distributed() and len(ranks) == ddp.world_size():
            torch.set_rng_state(ranks[ddp.rank()][0])  # this rank's own draws
            self._epoch_rng = ranks[ddp.rank()][1] if self.position else None

    def __repr__(self) -> str:
        return (f"Trainer({one_line(self.objective)!r}, maximize={self.maximize}, update={self.update.describe()}, "
                f"device={str(self.device)!r}, step={self.step}, epoch={self.epoch})")


# ---------------------------------------------------------------------- helpers


def _to_device(value: Any, device: torch.device, float_dtype: Optional[torch.dtype]) -> Any:
    """A batch entry on the trainer's device (a numpy array becomes a tensor first, floating in `float_dtype`)."""
    if is_array(value):
        value = from_numpy(value, float_dtype)
    return value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value


def _wrap(objective: nn.Module, device: torch.device, distributed_options: Optional[Mapping[str, Any]],
          compile_options: Optional[Dict[str, Any]]) -> Tuple[nn.Module, nn.Module]:
    """The module that evaluates the objective, and the one a training step calls (DDP, torch.compile)."""
    module: nn.Module = _Evaluate(objective)
    model: nn.Module = module
    if ddp.is_distributed():
        from torch.nn.parallel import DistributedDataParallel

        options = dict(distributed_options or {})
        if device.type == "cuda":
            options.setdefault("device_ids", [device.index])
        model = DistributedDataParallel(module, **options)
    if compile_options is not None:
        model = torch.compile(model, **compile_options)
    return module, model


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
    if isinstance(batch, DrawBatch):
        return batch.size
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, Mapping) else batch
    for v in values:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return v.shape[0]
    return 1


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
