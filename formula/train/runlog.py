"""The run log: every step's and every epoch's values (terms, scheduled inputs, learning rates) in a file.

`Trainer(log="run.csv")` writes CSV in long form, one value a row (`kind,epoch,step,name,value`), which never
needs a new header when new names appear (held-out values at an epoch's end); any other suffix writes JSON lines,
one object a row. A resumed run appends to the same file. Only rank 0 writes. Beside it, `run.meta.json` holds
what the rows do not repeat: the formula, each term's full name and the short name the progress bar shows, the
scalar inputs and the optimizers. `TensorBoardLog` (formula.train.tensorboard_log) writes the same rows as
TensorBoard scalars when TensorBoard is installed.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, TextIO

__all__ = ["LogSink", "RunLog", "CSV_HEADER", "meta_path"]

CSV_HEADER = ("kind", "epoch", "step", "name", "value")


def meta_path(path: Any) -> Path:
    """Where the metadata of the log at `path` goes: `run.csv` -> `run.meta.json`."""
    path = Path(path)
    return path.with_name(path.stem + ".meta.json")


class LogSink:
    """Where a run's rows go: `write` opens `_handle` (anything with `flush` and `close`) on the first row."""

    _handle: Any = None

    def write(self, kind: str, epoch: int, step: int, values: Mapping[str, float]) -> None:
        """One row: `kind` is "step" or "epoch"; `epoch` counts from 1, `step` is the steps taken so far."""
        raise NotImplementedError

    def flush(self) -> None:
        """Push what was written (at each epoch's end and when a fit ends)."""
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        """Flush and close; the next row opens it again."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class RunLog(LogSink):
    """Appends step and epoch rows to a CSV (long form) or JSON-lines file; opened on the first row, when the
    metadata (`meta`, plain data) is written beside it."""

    def __init__(self, path: Any, meta: Optional[Mapping[str, Any]] = None):
        self.path = Path(path)
        self.csv = self.path.suffix.lower() == ".csv"
        self.meta = dict(meta or {})
        self._handle: Optional[TextIO] = None

    def _open(self) -> TextIO:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists() or os.path.getsize(self.path) == 0
            self._handle = open(self.path, "a", newline="", encoding="utf-8")
            if self.csv and fresh:
                csv.writer(self._handle).writerow(CSV_HEADER)
            meta_path(self.path).write_text(json.dumps(self.meta, indent=1, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
        return self._handle

    def write(self, kind: str, epoch: int, step: int, values: Mapping[str, float]) -> None:
        """One row: `kind` is "step" or "epoch"; `epoch` counts from 1, `step` is the steps taken so far."""
        handle = self._open()
        if self.csv:
            writer = csv.writer(handle)
            writer.writerows((kind, epoch, step, name, repr(float(value))) for name, value in values.items())
        else:
            handle.write(json.dumps({"kind": kind, "epoch": epoch, "step": step, **values}) + "\n")
