"""scikit-learn's 8x8 handwritten digits (shipped with the package, no download), scaled to [0, 1] and split."""

from __future__ import annotations

from typing import Tuple

import torch

SIDE = 8  # images are SIDE x SIDE
LEVELS = 16.0  # pixel values are 0..16


def load(held_out: float = 0.15, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out): flattened images `[n, 64]` with intensities in [0, 1], split at random by `seed`."""
    from sklearn.datasets import load_digits

    images = torch.as_tensor(load_digits().data, dtype=dtype) / LEVELS
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    n_held = int(round(held_out * images.shape[0]))
    return images[order[n_held:]], images[order[:n_held]]
