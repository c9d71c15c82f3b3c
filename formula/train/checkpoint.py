"""Checkpoints written atomically, sealed with a digest, and read safely.

A checkpoint is a plain dict of tensors, numbers and strings saved with `torch.save` (a zip archive that
`torch.load` reads as usual). Its archive comment holds the SHA-256 of every byte before it, so one flipped bit
or a cut-off file is refused (torch itself checks no CRC). Writing goes to a temporary file in the same folder,
which is then renamed over the target, so a crash never leaves half a checkpoint under the real name; the
temporary files of an earlier, killed save are removed by the next one. Reading uses
`torch.load(..., weights_only=True)` on the verified bytes, so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from ..errors import FormulaError

__all__ = ["CheckpointError", "FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "check_state_dict",
           "seal", "unseal", "remove_stale_temporaries"]

FORMAT = "formula.checkpoint"
VERSION = 2
SEAL = b"formula-sha256:"  # the archive comment: this tag, then the hex SHA-256 of every byte before the comment
_SEAL_LENGTH = len(SEAL) + 64
_END = b"PK\x05\x06"  # a zip archive's end-of-central-directory record: 22 bytes, the comment's length last

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
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = seal(buffer.getvalue())
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a checkpoint gets the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
    data = unseal(path.read_bytes(), str(path))
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
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


def seal(data: bytes) -> bytes:
    """A torch zip archive with the SHA-256 of its bytes (comment length included) as its archive comment."""
    end = len(data) - 22
    if end < 0 or data[end:end + 4] != _END or data[-2:] != b"\x00\x00":
        raise CheckpointError("torch.save wrote an archive without a plain end record; cannot seal it")
    head = data[:-2] + struct.pack("<H", _SEAL_LENGTH)
    return head + SEAL + hashlib.sha256(head).hexdigest().encode("ascii")


def unseal(data: bytes, name: str) -> bytes:
    """The bytes of a sealed archive, after checking its digest; `CheckpointError` for anything else."""
    end = len(data) - _SEAL_LENGTH - 22
    head, comment = data[:-_SEAL_LENGTH], data[-_SEAL_LENGTH:]
    sealed = end >= 0 and comment.startswith(SEAL) and data[end:end + 4] == _END \
        and head[-2:] == struct.pack("<H", _SEAL_LENGTH)
    if not sealed:
        if zipfile.is_zipfile(io.BytesIO(data)):
            raise CheckpointError(
                f"{name!r} is a torch file but not a formula checkpoint (no {SEAL.decode()} seal at its end): it "
                "was written by something other than formula.Trainer.save (or by a formula older than format "
                f"version {VERSION}), or it is damaged")
        raise CheckpointError(f"{name!r} is truncated or is not a torch checkpoint (not a complete zip archive "
                              "with a formula seal at its end)")
    if hashlib.sha256(head).hexdigest().encode("ascii") != comment[len(SEAL):]:
        raise CheckpointError(f"{name!r} is corrupt: its SHA-256 does not match the one stored when it was "
                              "written (a changed or damaged file); nothing was loaded")
    return data


def remove_stale_temporaries(path: Path) -> None:
    """Delete `.NAME.*.tmp` files beside `path`, left by a save that was killed before its rename."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            stale.unlink()
        except OSError:  # gone already, or not ours to remove: the save goes on
            pass


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
