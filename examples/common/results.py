"""What an example reports to the model zoo (examples/zoo.py): one `metrics.json` in its --out folder.

    write_results(args.out, model="VAE", paper="Kingma & Welling 2014", formula=ELBO,
                  metric="held-out ELBO (nats/image)", value=final["objective"])

`formula` is the text the example compiles (the zoo prints it with `fm.pretty`); `value` is a number. An example
that writes no metrics.json still gets a row: its name, its docstring's first line, and the metric parsed from
its last printed line (`<metric>: <value> ...`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILE = "metrics.json"
FIELDS = ("model", "paper", "formula", "metric", "value")


def write_results(out: Path, *, model: str, paper: str, formula: str, metric: str, value: float,
                  **extra: Any) -> Path:
    """Write `out/metrics.json` with the zoo's fields (and any `extra` plain values); returns its path."""
    path = Path(out) / FILE
    record = {"model": model, "paper": paper, "formula": formula, "metric": metric, "value": float(value), **extra}
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_results(out: Path) -> dict:
    """The record `write_results` wrote into `out` ({} when there is none)."""
    path = Path(out) / FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
