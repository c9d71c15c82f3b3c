"""The run log as TensorBoard scalars: `Trainer(log=..., tensorboard=...)` when TensorBoard is installed.

Every row the CSV/JSON-lines log gets becomes one scalar per value, tagged `<kind>/<name>` (`step/term/...`,
`epoch/eval/loss`, `step/input/beta`, `step/lr/main`) at the trainer's step; the metadata (the formula, the terms'
full and short names) goes in as text. Install with `pip install "formula[tensorboard]"`.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Mapping, Optional

from .runlog import LogSink
from ..errors import FormulaInputError

__all__ = ["TensorBoardLog", "tensorboard_available", "tensorboard_dir"]


def tensorboard_available() -> bool:
    """Whether the `tensorboard` package (which `torch.utils.tensorboard` needs) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_dir(option: Any, log: Any) -> Optional[Path]:
    """Where TensorBoard's files go for `Trainer(tensorboard=option, log=log)`, or None for none.

    None (the default): beside the log when there is one and TensorBoard is installed. True: the same, and an
    error when TensorBoard is missing. False: never. A path: that folder.
    """
    if option is False or (option is None and (log is None or not tensorboard_available())):
        return None
    if not tensorboard_available():
        raise FormulaInputError("Trainer(tensorboard=...) needs TensorBoard: pip install 'formula[tensorboard]' "
                                "(or leave tensorboard= unset to log to the CSV/JSON-lines file only)")
    if option is None or option is True:
        if log is None:
            raise FormulaInputError("Trainer(tensorboard=True) writes beside the log: give log=path too, or "
                                    "tensorboard=folder")
        return Path(log).parent
    return Path(option)


class TensorBoardLog(LogSink):
    """Writes the trainer's rows as scalars with a `SummaryWriter` (created on the first row)."""

    def __init__(self, folder: Any, meta: Optional[Mapping[str, Any]] = None):
        self.folder = Path(folder)
        self.meta = dict(meta or {})
        self._handle: Any = None

    def _open(self) -> Any:
        if self._handle is None:
            from torch.utils.tensorboard import SummaryWriter

            self._handle = SummaryWriter(log_dir=str(self.folder))
            self._handle.add_text("run", "```\n" + json.dumps(self.meta, indent=1, ensure_ascii=False) + "\n```")
        return self._handle

    def write(self, kind: str, epoch: int, step: int, values: Mapping[str, float]) -> None:
        """One scalar per value, tagged `<kind>/<name>`, at `step` (an epoch's rows at the step it ended)."""
        writer = self._open()
        for name, value in values.items():
            writer.add_scalar(f"{kind}/{name}", float(value), step)
