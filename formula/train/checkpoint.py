"""Checkpoints written atomically and read safely.

A checkpoint is a plain dict of tensors, numbers and strings saved with `torch.save`. Writing goes to a temporary
file in the same folder, which is then renamed over the target, so a crash never leaves half a checkpoint under
the real name. Reading uses `torch.load(..., weights_only=True)`, so a file from elsewhere cannot run code; a file
that is truncated, foreign or made for other networks raises `CheckpointError` before anything is loaded.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from ..errors import FormulaError

__all__ = ["CheckpointError", "FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "check_state_dict"]

FORMAT = "formula.checkpoint"
VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(FormulaError):
    """A checkpoint that cannot be used: missing, truncated, not a `formula` checkpoint, or for other networks."""


def save_checkpoint(state: Mapping[str, Any], path: PathLike) -> Path:
    """Write `state` (tagged with the format and version) to `path` atomically; return the path.

    The bytes go to a temporary file beside the target, are flushed to disk, and the file is renamed over the
    target in one step (`os.replace`), so readers see either the old checkpoint or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a checkpoint gets the usual mode
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`, refusing anything but tensors and plain Python data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one loses its directory
        raise CheckpointError(f"{str(path)!r} is truncated or is not a torch checkpoint (not a complete zip archive)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "unsupported" in line.lower() or "WeightsUnpickler" in line),
                      lines[0] if lines else type(exc).__name__)
        raise CheckpointError(
            f"{str(path)!r} holds objects other than tensors and plain data, and is refused "
            f"(weights_only loading): {reason}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{str(path)!r} is truncated or is not a torch checkpoint: {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a torch file but not a formula checkpoint (no {FORMAT!r} tag); "
            "it was written by something other than formula.Trainer.save"
        )
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"{str(path)!r} is a formula checkpoint of version {state.get('version')!r}; "
            f"this version of formula reads version {VERSION}"
        )
    return state


def check_state_dict(module: torch.nn.Module, state: Mapping[str, Any], what: str) -> None:
    """Raise `CheckpointError` unless `state` has exactly `module`'s entries with the same shapes.

    Checked before `load_state_dict`, which could otherwise copy some tensors and then fail on the rest.
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"the checkpoint's {what} entry is not a state dict")
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and isinstance(v, torch.Tensor)
        and (not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape)
    ]
    if missing or unexpected or mismatched:
        lines = [f"the checkpoint's {what} does not fit the networks given (nothing was loaded):"]
        if missing:
            lines.append(f"  missing from the checkpoint: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            lines.append(f"  not in the model: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
        if mismatched:
            lines.append("  shapes differ: " + "; ".join(mismatched[:8]))
        raise CheckpointError("\n".join(lines))


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
