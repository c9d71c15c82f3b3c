"""One progress bar for every sampler: a tqdm bar over the sampler's steps, or a plain range when it is off."""

from __future__ import annotations

from typing import Iterable

from tqdm.auto import tqdm


def steps(n: int, desc: str, enabled: bool) -> Iterable[int]:
    """`range(n)`, shown as a tqdm bar named `desc` when `enabled` (the bar closes when the loop ends)."""
    if not enabled:
        return range(n)
    return tqdm(range(n), desc=desc, leave=False, dynamic_ncols=True)


__all__ = ["steps"]
