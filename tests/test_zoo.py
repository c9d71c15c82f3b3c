"""The README's model table (examples/zoo.py --table): one row per examples/NAME.py, written from the examples'
own output (metrics.json, else the last printed line)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _zoo():
    spec = importlib.util.spec_from_file_location("zoo", ROOT / "examples" / "zoo.py")
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    return zoo


def _rows(text: str):
    zoo = _zoo()
    table = text.split(zoo.START, 1)[1].split(zoo.END, 1)[0]
    return [line for line in table.splitlines() if line.startswith("| ") and "`python examples/" in line]


def test_readme_table_lists_every_example():
    zoo = _zoo()
    listed = {m.group(1) for line in _rows(README.read_text(encoding="utf-8"))
              for m in [re.search(r"`python examples/(\w+)\.py`", line)] if m}
    assert zoo.examples(), "no examples found"
    missing = sorted(set(zoo.examples()) - listed)
    assert not missing, f"README's zoo table lacks {missing}: run python examples/zoo.py --table --only {' '.join(missing)}"


def test_table_from_a_smoke_run(tmp_path):
    zoo = _zoo()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{zoo.START}\nold\n{zoo.END}\n\nafter\n", encoding="utf-8")
    assert zoo.main(["--table", "--smoke", "--only", "vae", "--runs", str(tmp_path / "runs"),
                     "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "old" not in text and text.endswith("after\n")
    rows = _rows(text)
    assert len(rows) == len(zoo.examples())
    vae = next(r for r in rows if "`python examples/vae.py`" in r)
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", vae)[1:-1]]
    assert cells[0] == "VAE" and "𝔼" in cells[2] and "\\|" in cells[2]  # printed formula, its bars escaped
    assert cells[3].startswith("held-out ELBO") and float(cells[4]) < 0 and cells[5].endswith("s (smoke)")
    assert json.loads((tmp_path / "runs" / "vae" / "metrics.json").read_text())["model"] == "VAE"


def test_an_example_without_metrics_json_gets_a_row_from_its_last_line(tmp_path):
    zoo = _zoo()
    (tmp_path / "toy.py").write_text('"""A toy model (Doe and Roe, 2021) on toy data.\n\nMore."""\n', encoding="utf-8")
    out = tmp_path / "runs" / "toy"
    out.mkdir(parents=True)
    (out / zoo.RUN_LOG).write_text(json.dumps({"seconds": 12.3, "returncode": 0, "smoke": False,
                                               "last_line": "held-out NLL: 1.234 nats"}))
    row = zoo.row("toy", out, folder=tmp_path)
    assert row["paper"] == "Doe and Roe, 2021" and row["metric"] == "held-out NLL"
    assert row["value"] == "1.234 nats" and row["CPU wall time"] == "12 s" and row["command"] == "python examples/toy.py"
    assert zoo.examples(tmp_path) == ["toy"]


def test_only_keeps_the_rows_of_examples_with_no_stored_run(tmp_path):
    zoo = _zoo()
    readme = tmp_path / "README.md"
    kept = "| GAN | Goodfellow | `x` | modes | 8 | 99 s | `python examples/gan.py` |"
    readme.write_text(f"# x\n\n{zoo.START}\n| model |\n|---|\n{kept}\n\nWritten by ... load average 2.0-9.5 as "
                      f"the runs started.\n{zoo.END}\n", encoding="utf-8")
    assert zoo.main(["--table", "--no-run", "--runs", str(tmp_path / "runs"), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert kept in text.splitlines()  # no run stored here: the row stays as it was, not "not run yet"
    assert "load average 2.0-9.5" in text
    vae = next(r for r in _rows(text) if "`python examples/vae.py`" in r)
    assert "not run yet" in vae  # no row before and no run: a row that says so
