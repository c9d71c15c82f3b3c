"""Multi-process training helpers: who am I under `torchrun`, and which examples are mine.

Everything here reads torch.distributed's own state or the environment that `torchrun` sets; nothing is kept
in module globals, so two trainers in one process (or a user's own process group) never interfere.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Iterator, Optional

import torch
import torch.distributed as dist

from ..errors import FormulaError, FormulaInputError

__all__ = [
    "is_distributed",
    "launched_distributed",
    "rank",
    "world_size",
    "local_rank",
    "is_main_process",
    "init_from_env",
    "barrier",
    "all_reduce_sum",
    "all_gather",
    "shard",
    "pick_device",
    "distributed_loader",
    "collective",
    "StalledRankError",
    "DEFAULT_TIMEOUT",
]

#: Seconds a collective operation (a step's all-reduce, a checkpoint's barrier) may wait for the other ranks
#: before `StalledRankError`; gloo's and NCCL's own default is 30 minutes.
DEFAULT_TIMEOUT = 600.0


class StalledRankError(FormulaError):
    """Under torchrun, another rank did not reach a collective operation within the trainer's `timeout=`."""


def is_distributed() -> bool:
    """Whether a torch.distributed process group is up with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def launched_distributed() -> bool:
    """Whether this process was started by `torchrun` (or an equivalent launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank in the group (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes train together (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its machine, as `torchrun` sets it (0 when not launched by it)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Rank 0: the process that prints, and the only one that writes checkpoints."""
    return rank() == 0


def init_from_env(device: torch.device, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Start the process group `torchrun` asked for, once; True when this call started it.

    The backend is NCCL for CUDA devices and gloo otherwise; `timeout` (seconds) bounds every collective
    operation. A group the user started already is left alone (with the timeout it was started with).
    """
    if not launched_distributed() or not dist.is_available() or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=float(timeout)))
    return True


_STALLED = ("timed out", "timeout", "connection closed", "connection reset", "broken pipe", "peer")


@contextlib.contextmanager
def collective(what: str, timeout: float) -> Iterator[None]:
    """Turn a collective operation that failed because another rank stalled or died into `StalledRankError`."""
    try:
        yield
    except RuntimeError as err:
        text = str(err).lower()
        if not is_distributed() or not any(word in text for word in _STALLED):
            raise
        first = str(err).strip().splitlines()[0][:300]
        raise StalledRankError(
            f"rank {rank()} of {world_size()}: {what} did not complete: another rank stalled, crashed or left "
            f"(the limit is timeout={timeout:g} s, set by Trainer(timeout=...)); torch.distributed said: {first}"
        ) from None


def barrier() -> None:
    """Wait for every process (a no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over all processes (the tensor itself when not distributed); the input is not changed."""
    if not is_distributed():
        return tensor
    total = tensor.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def all_gather(tensor: torch.Tensor, device: torch.device) -> list:
    """Every rank's `tensor` (same shape and dtype on all), in rank order, on the CPU; `[tensor]` alone."""
    if not is_distributed():
        return [tensor]
    mine = tensor.to(device)
    parts = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(parts, mine)
    return [part.cpu() for part in parts]


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share of an epoch's example order, as `DistributedSampler` deals it.

    The order is padded by wrapping around to a multiple of `world_size`, then dealt round-robin, so that every
    rank takes the same number of steps and the k-th batches of all ranks together are the k-th global batch.
    """
    if world_size == 1:
        return indices
    n = indices.numel()
    total = -(-n // world_size) * world_size
    if total > n:
        repeats = -(-total // n)
        indices = indices.repeat(repeats)[:total]
    return indices[rank:total:world_size]


def available_devices() -> str:
    """The device names this torch can use here, for messages."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return ", ".join(["auto", *names])


def pick_device(requested: Optional[str | torch.device]) -> torch.device:
    """The device a trainer runs on: "auto" takes CUDA when present (this process's GPU under torchrun)."""
    if requested is None or str(requested) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        hint = " (a GPU is device='cuda')" if str(requested).lower().startswith("gpu") else ""
        raise FormulaInputError(f"device={requested!r} is not a torch device{hint}; available here: "
                                f"{available_devices()}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FormulaInputError(f"device={requested!r}, but this torch ({torch.__version__}) sees no CUDA GPU; "
                                    f"available here: {available_devices()} (device='auto' takes a GPU when "
                                    "there is one)")
        if device.index is None and launched_distributed():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise FormulaInputError(f"device={requested!r}, but there are {torch.cuda.device_count()} GPUs; "
                                    f"available here: {available_devices()}")
    elif device.type == "mps" and "mps" not in available_devices():
        raise FormulaInputError(f"device={requested!r} is not available here; available: {available_devices()}")
    return device


def distributed_loader(loader, epoch: int, seed: int):
    """The `DataLoader` a rank iterates in `epoch`: the same one re-dealt through a `DistributedSampler`.

    When not distributed, or for an iterable-style dataset or a custom batch sampler (which the user must shard
    themselves), the loader is returned as it is. A loader that already has a `DistributedSampler` only gets
    `set_epoch`. Shuffling is kept on exactly when the original loader shuffled.
    """
    from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler

    if not isinstance(loader, DataLoader):
        return loader
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
        return loader
    if not is_distributed() or isinstance(loader.dataset, IterableDataset) or loader.batch_size is None:
        return loader
    sampler = DistributedSampler(
        loader.dataset,
        num_replicas=world_size(),
        rank=rank(),
        shuffle=isinstance(loader.sampler, RandomSampler),
        seed=seed,
        drop_last=loader.drop_last,
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        persistent_workers=loader.persistent_workers if loader.num_workers > 0 else False,
    )
