"""The smoke run that the tests of the 2-D mixture examples (ddpm, score_matching, ebm) share: run the example
with --smoke and a few more options, and check that it wrote its figure and ended with the metric line."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Sequence, Tuple

import torch

from example_loader import EXAMPLES, load_example

NUMBER = r"-?\d+\.\d+"


def metric_pattern(name: str) -> re.Pattern:
    """The last line of every mixture example (examples/common/mixture2d.py, `metric_line`) for the run `name`."""
    return re.compile(rf"^{re.escape(name)}: MMD\^2 to held-out data {NUMBER} \(data {NUMBER}, one Gaussian "
                      rf"{NUMBER}\); NLL of samples under the true mixture {NUMBER} nats \(data {NUMBER}, one "
                      rf"Gaussian {NUMBER}\)$")


def smoke(example: str, run: str, argv: Sequence[str], out_dir: Path, capsys) -> Tuple[Any, str]:
    """(what main returned, what it printed): examples/`example`.py run with --smoke, `argv`, this process's
    thread count and the CPU, writing into `out_dir`; asserts the metric line of `run` last and `example`.png."""
    module = load_example(example)
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    result = module.main(["--smoke", *argv, "--threads", threads, "--device", "cpu", "--out", str(out_dir)])
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert metric_pattern(run).match(last), last
    png = out_dir / f"{example}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    return result, out


def mixture2d():
    """examples/common/mixture2d.py, imported."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    from common import mixture2d as module

    return module


__all__ = ["metric_pattern", "smoke", "mixture2d"]
