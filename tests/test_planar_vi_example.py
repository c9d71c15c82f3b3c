"""examples/planar_vi.py --smoke: the free energy's spellings are equivalent, every K trains, the figure is written and
the metric is the last line; the grid's log Z is checked on a target with a closed form, and the compiled free
energy against the paper's, written by hand."""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
METRIC = re.compile(r"^bound -F on log Z \(nats\), K = 0/2/8/32: U1 (-?\d+\.\d{3}/){3}-?\d+\.\d{3} "
                    r"\(log Z -?\d+\.\d{3}\)$")


def _example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("planar_vi")


def test_smoke_run_writes_the_figure_and_ends_with_the_metric(tmp_path, capsys, monkeypatch):
    example = _example(monkeypatch)
    threads = str(torch.get_num_threads())  # the example sets torch's thread count: keep this process's
    metrics = example.main(["--smoke", "--epochs", "3", "--draws", "32", "--threads", threads, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "log |det ∂f(z_0)/∂z_0|" in out  # the plan names the transform's log-determinant
    assert METRIC.match(out.strip().splitlines()[-1]), out.strip().splitlines()[-1]
    assert set(metrics["U1"]) == {"log Z", "K=0", "K=2", "K=8", "K=32"}
    assert (tmp_path / "planar_vi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_z_on_the_grid_matches_a_closed_form(monkeypatch):
    example = _example(monkeypatch)
    # exp(-U2): a Gaussian of std 0.4 in z_2 about sin(pi z_1 / 2) for each z_1 of the grid's [-5, 5]
    column = 0.4 * math.sqrt(2 * math.pi)
    assert abs(example.log_z(example.u2) - math.log(10 * column)) < 1e-3
    walled = example.log_z(example.ENERGIES["U2"])  # the box's [-4, 4], and a little mass in the wall beyond
    assert 0 < walled - math.log(8 * column) < 0.05


def test_the_free_energy_is_the_papers(monkeypatch):
    example = _example(monkeypatch)
    torch.manual_seed(0)
    free_energy, (q0, f, _) = example.build(example.ENERGIES["U3"], 4)
    with torch.no_grad():
        f.net.u.normal_()  # leave the near-identity start
        torch.manual_seed(3)
        value = free_energy(batch_size=7)
        torch.manual_seed(3)
        qz = q0.module()
        z0 = qz.rsample((7,))
        zk, ladj = f.net.call_and_ladj(z0)
        torch.testing.assert_close(value, qz.log_prob(z0) + example.ENERGIES["U3"](zk) - ladj)
