"""dSprites in miniature: 16x16 binary images of a square, a disc or a triangle, generated from four known
independent factors (shape, size, position x, position y), and the FactorVAE disentanglement metric on them.

Every combination of the factors appears once (3 shapes x 3 sizes x 8 x 8 positions = 576 images), so the factors
are independent and uniform, as in dSprites.
"""

from __future__ import annotations

import itertools
from typing import Callable, Tuple

import torch

SIDE = 16
FACTORS = ("shape", "size", "x", "y")
SIZES = (2.0, 3.0, 4.0)  # half-widths in pixels
POSITIONS = torch.linspace(4.5, 10.5, 8).tolist()  # centres that keep the largest shape inside the image
LEVELS = (3, len(SIZES), len(POSITIONS), len(POSITIONS))  # values of each factor


def draw(shape: int, size: float, cx: float, cy: float) -> torch.Tensor:
    """One `[SIDE*SIDE]` image: 0 a square, 1 a disc, 2 a triangle (apex up), of half-width `size` at (cx, cy)."""
    grid = torch.arange(SIDE, dtype=torch.float32) + 0.5
    dy, dx = (grid[:, None] - cy), (grid[None, :] - cx)
    if shape == 0:
        inside = (dx.abs() <= size) & (dy.abs() <= size)
    elif shape == 1:
        inside = dx ** 2 + dy ** 2 <= size ** 2 + 0.5
    else:
        inside = (dy.abs() <= size) & (dx.abs() <= (dy + size) / 2 + 0.25)
    return inside.float().reshape(-1)


def factor_values() -> torch.Tensor:
    """Every combination of factor levels, `[576, 4]` (integers: shape, size, x, y)."""
    return torch.tensor(list(itertools.product(*(range(n) for n in LEVELS))))


def images(factors: torch.Tensor) -> torch.Tensor:
    """The images of factor levels `[n, 4]`, `[n, SIDE*SIDE]`."""
    return torch.stack([draw(int(s), SIZES[int(z)], POSITIONS[int(x)], POSITIONS[int(y)]) for s, z, x, y in factors])


def dataset() -> Tuple[torch.Tensor, torch.Tensor]:
    """(images [576, 256], factors [576, 4])."""
    factors = factor_values()
    return images(factors), factors


def factor_vae_metric(encode: Callable[[torch.Tensor], torch.Tensor], votes: int = 800, batch: int = 64,
                      seed: int = 0, collapsed: float = 0.05) -> float:
    """Kim & Mnih (2018)'s disentanglement metric: fix one factor, draw `batch` images with the others random,
    normalise the codes by each dimension's std over the data, and vote (dimension of least variance -> fixed
    factor); a majority-vote classifier fitted on half the votes is scored on the other half. Dimensions whose std
    over the data is below `collapsed` (unused ones) take no part. 1/4 is chance for 4 factors."""
    g = torch.Generator().manual_seed(seed)
    data, _ = dataset()
    with torch.no_grad():
        std = encode(data).std(0)
    active = std > collapsed
    if not bool(active.any()):
        return 0.0
    pairs = []
    for _ in range(votes):
        k = int(torch.randint(len(FACTORS), (1,), generator=g))
        factors = torch.stack([torch.randint(n, (batch,), generator=g) for n in LEVELS], 1)
        factors[:, k] = int(torch.randint(LEVELS[k], (1,), generator=g))
        with torch.no_grad():
            codes = encode(images(factors)) / std
        variance = codes.var(0).masked_fill(~active, float("inf"))
        pairs.append((int(variance.argmin()), k))
    return _majority_vote_accuracy(pairs, std.shape[0])


def _majority_vote_accuracy(pairs, dims: int) -> float:
    """Fit dimension -> most frequent factor on the first half of the votes; accuracy on the second half."""
    half = len(pairs) // 2
    counts = torch.zeros(dims, len(FACTORS))
    for d, k in pairs[:half]:
        counts[d, k] += 1
    guess = counts.argmax(1)
    return sum(int(guess[d]) == k for d, k in pairs[half:]) / (len(pairs) - half)


__all__ = ["SIDE", "FACTORS", "LEVELS", "draw", "dataset", "images", "factor_values", "factor_vae_metric"]
