"""The speed benchmark runs end to end (`bench/bench.py --smoke`), so that it never rots. Numbers are never
asserted: only that every row ran and produced a finite time, or, for optional frameworks, was skipped here."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"
TRAINING_ROWS = ("vae", "iwae-k5", "iwae-k50", "dmm", "gan", "flow")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run of the whole benchmark (Markdown table on stdout, results as JSON)."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run([sys.executable, str(BENCH), "--smoke", "--markdown", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(r["row"], r["contestant"]): r for r in report["results"]}
    return done.stdout, report, rows


def _assert_timed(row):
    assert row["note"] == "", row["note"]
    assert row["seconds"] is not None and math.isfinite(row["seconds"]) and row["seconds"] > 0
    assert row["ratio"] is not None and math.isfinite(row["ratio"]) and row["ratio"] > 0


def test_reference_and_formula_rows_run(smoke):
    _, report, rows = smoke
    assert report["machine"]["torch threads"] == "1"
    for task in TRAINING_ROWS:
        if task == "flow" and importlib.util.find_spec("zuko") is None:
            continue
        _assert_timed(rows[(task, "torch")])
        assert rows[(task, "torch")]["ratio"] == 1.0
        _assert_timed(rows[(task, "formula")])


def test_training_rows_report_peak_memory(smoke):
    """Every timed training row has a peak-memory figure (peak RSS above the step's baseline on Linux)."""
    _, report, _ = smoke
    timed = [r for r in report["results"] if r["row"] != "compile" and r["seconds"] is not None]
    assert timed
    for r in timed:
        assert r["peak_bytes"] is not None and r["peak_bytes"] >= 0, r


def test_device_cuda_without_a_gpu_says_so():
    """`--device cuda` on a machine without CUDA exits 2 with a message, never a traceback."""
    if torch_cuda_available():
        pytest.skip("this machine has a GPU: `bench.py --device cuda` is the real run")
    done = subprocess.run([sys.executable, str(BENCH), "--smoke", "--device", "cuda", "--rows", "gan"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "no CUDA device" in done.stderr, done.stderr[-2000:]


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_compile_rows_run(smoke):
    _, report, _ = smoke
    compile_rows = [r for r in report["results"] if r["row"] == "compile"]
    assert {r["size"] for r in compile_rows} == {"VAE", "50 terms"}
    for r in compile_rows:
        assert r["note"] == "", r["note"]
        assert r["seconds"] is not None and r["seconds"] > 0


def test_markdown_table_lists_every_row(smoke):
    stdout, report, _ = smoke
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| row | size | contestant |")
    assert len(table) == 2 + len(report["results"])


def test_pixyz_row_runs(smoke):
    pytest.importorskip("pixyz")
    _assert_timed(smoke[2][("vae", "pixyz")])


def test_pyro_row_runs(smoke):
    pytest.importorskip("pyro")
    _assert_timed(smoke[2][("vae", "pyro")])


@pytest.mark.parametrize("task,name", [("vae", "formula"), ("vae", "pixyz"), ("vae", "pyro"),
                                       ("iwae-k5", "formula"), ("iwae-k50", "formula"), ("dmm", "formula"),
                                       ("gan", "formula"), ("flow", "formula")])
def test_contestants_compute_the_same_loss(task, name, monkeypatch):
    """Identical networks, data and noise give a contestant the hand-written loss and gradients: the rows
    time the same computation."""
    if name in ("pixyz", "pyro"):
        pytest.importorskip(name)
    monkeypatch.syspath_prepend(str(BENCH.parent))
    import contestants
    import nets
    import torch

    size = nets.SIZES[0]
    if task == "flow":
        pytest.importorskip("zuko")
    if task == "dmm":
        reference, x = nets.dmm_nets(size), nets.binary_batches(size, steps=5)[0]
    elif task == "gan":
        reference, x = nets.gan_nets(size), nets.binary_batches(size)[0]
    elif task == "flow":
        reference, x = nets.flow_nets(size), nets.continuous_batches(size)[0]
    else:
        reference, x = nets.vae_nets(size), nets.binary_batches(size)[0]
    losses, grads = {}, {}
    for who in ("torch", name):
        copy = nets.fresh_copy(reference)
        contestant = contestants.CONTESTANTS[task][who](copy, size)
        torch.manual_seed(0)
        loss = contestant.loss(x)
        loss.backward()
        losses[who], grads[who] = loss.detach(), [p.grad for p in contestant.parameters]
    torch.testing.assert_close(losses[name], losses["torch"], rtol=1e-5, atol=1e-4)
    for got, want in zip(grads[name], grads["torch"]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
