"""The batches of an epoch: dicts of tensors dealt to this rank, DataLoaders, and resuming at any batch.

An epoch of a dict of tensors depends only on `(seed, epoch)`; a DataLoader's order depends on torch's global
RNG when its iteration starts. Either way an epoch can be re-entered at batch k exactly: a dict is sliced, a
loader is started again from the RNG state the epoch began with and its first k batches are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple

import torch

from . import distributed as ddp
from ..errors import FormulaInputError

__all__ = ["TensorBatches", "as_tensor_data", "resumed_iterable", "is_array", "from_numpy"]


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

    def epoch(self, epoch: int, rank: int = 0, world_size: int = 1, pad: bool = True,
              start: int = 0) -> Iterator[Dict[str, torch.Tensor]]:
        """This rank's batches for `epoch` from batch `start` on; `pad=False` deals without repeating examples."""
        order = self.order(epoch)
        mine = ddp.shard(order, rank, world_size) if pad else order[rank::world_size]
        stop = len(mine) - len(mine) % self.batch_size if self.drop_last else len(mine)
        for first in range(start * self.batch_size, stop, self.batch_size):
            index = mine[first : first + self.batch_size]
            yield {name: tensor[index.to(tensor.device)] for name, tensor in self.data.items()}

    def batches_per_epoch(self, world_size: int = 1) -> int:
        """How many batches each rank takes per epoch."""
        per_rank = -(-self.size // world_size)
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)


def as_tensor_data(data: Any, data_inputs: Tuple[str, ...], float_dtype: Optional[torch.dtype] = None) -> Any:
    """`fit`'s data with numpy arrays made tensors (once; floating ones in `float_dtype`, the networks' dtype, as
    numpy's float64 default would not fit float32 networks) and a bare tensor named after the one data input;
    a DataLoader or other iterable is returned as it is."""
    if is_array(data):
        data = from_numpy(data, float_dtype)
    if isinstance(data, torch.Tensor):
        if len(data_inputs) != 1:
            raise FormulaInputError(
                f"a bare tensor cannot be matched to the data inputs ({', '.join(data_inputs) or 'none'}); "
                "pass a dict keyed by input name"
            )
        return {data_inputs[0]: data}
    if isinstance(data, Mapping):
        data = {k: from_numpy(v, float_dtype) if is_array(v) else v for k, v in data.items()}
        sizes = {k: v.shape[0] for k, v in data.items() if isinstance(v, torch.Tensor) and v.dim() > 0}
        if len(sizes) != len(data) or len(set(sizes.values())) != 1:
            raise FormulaInputError(
                "a dict of data must hold tensors (or numpy arrays) with the same first (batch) dimension; got "
                + ", ".join(f"{k}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                            for k, v in data.items())
            )
    return data


def is_array(value: Any) -> bool:
    """A numpy array (checked without importing numpy)."""
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def from_numpy(array: Any, float_dtype: Optional[torch.dtype]) -> torch.Tensor:
    """A numpy array as a tensor; a floating one in `float_dtype` when given."""
    tensor = torch.from_numpy(array)
    if float_dtype is not None and tensor.is_floating_point() and tensor.dtype != float_dtype:
        tensor = tensor.to(float_dtype)
    return tensor


_END = object()  # what `next` gives for an exhausted loader


def resumed_iterable(loader: Iterable[Any], skip: int, epoch_rng: Optional[torch.Tensor]) -> Iterator[Any]:
    """`loader`'s batches after its first `skip`, drawn as when the epoch began from `epoch_rng`.

    A DataLoader draws its shuffle (and its workers' seeds) from torch's global RNG when iteration starts, so
    it is started again from the state the epoch began with, the first `skip` batches are read and dropped, and
    the RNG state of the moment is put back. Exact for loaders that draw from the global RNG only when they
    start (DataLoader's samplers do).
    """
    if skip == 0:
        return iter(loader)
    now = torch.get_rng_state()
    if epoch_rng is not None:
        torch.set_rng_state(epoch_rng)
    try:
        iterator = iter(loader)
        for done in range(skip):
            if next(iterator, _END) is _END:
                raise FormulaInputError(f"the run stopped after batch {skip} of an epoch, but this data ends after "
                                        f"{done} batches: resume it with the same data")
    finally:
        torch.set_rng_state(now)
    return iterator
