"""The model zoo: run every example and write the README's table of models from their own output.

    python examples/zoo.py --table                # run each example (default settings), rewrite README's table
    python examples/zoo.py --table --jobs 4       # four at a time (each on one thread)
    python examples/zoo.py --table --only vae gan # rerun these, keep the other rows' stored results
    python examples/zoo.py --table --no-run       # rewrite the table from the stored results
    python examples/zoo.py --list                 # the examples it finds

Every `examples/NAME.py` is an example (examples/common/ is not): the zoo runs `python examples/NAME.py --out
runs/zoo/NAME`, times the whole process (the CPU wall time), and reads `runs/zoo/NAME/metrics.json`, which the
example writes with `common.results.write_results` (model, paper, formula, metric, value). An example that
writes none still gets a row, from its docstring's first line and its last printed line (`metric: value`). The
table goes between the `<!-- zoo:start -->` and `<!-- zoo:end -->` marks of README.md; each row's timing and
output are kept in `runs/zoo/NAME/zoo.json`, so `--only` reruns some and keeps the rest; an example with no
stored run in this checkout keeps the row README has now (with the footer's load range), never "not run yet".
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common.results import read_results  # noqa: E402

START, END = "<!-- zoo:start -->", "<!-- zoo:end -->"
COLUMNS = ("model", "paper", "formula", "metric", "value", "CPU wall time", "command")
RUN_LOG = "zoo.json"


def examples(folder: Path = HERE) -> List[str]:
    """The examples' names: every `NAME.py` in `folder` but this script (and private `_NAME.py` files)."""
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "zoo" and not p.stem.startswith("_"))


def command(name: str, smoke: bool = False) -> str:
    """How a reader runs the example."""
    return f"python examples/{name}.py" + (" --smoke" if smoke else "")


def run(name: str, out: Path, smoke: bool = False, threads: int = 1) -> Dict[str, object]:
    """Run one example into `out`; its wall time, exit status and last printed line, kept in `out/zoo.json`."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(HERE / f"{name}.py"), "--out", str(out)] + (["--smoke"] if smoke else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    record = {"name": name, "seconds": round(seconds, 1), "returncode": done.returncode, "smoke": smoke,
              "last_line": lines[-1] if lines else "", "error": done.stderr.strip().splitlines()[-1:], "load": load}
    (out / RUN_LOG).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{name}: exit {done.returncode} after {seconds:.1f} s: {record['last_line']}", flush=True)
    return record


def _docstring_line(name: str, folder: Path = HERE) -> str:
    """The first line of the example's docstring (what it trains, and on what)."""
    doc = ast.get_docstring(ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))) or name
    return doc.strip().splitlines()[0].rstrip(".")


def _citation(line: str) -> str:
    """The paper a docstring's first line cites in parentheses (`(Ho, Jain and Abbeel 2020)`), else the line."""
    found = re.search(r"\(([^()]*?[A-Za-z][^()]*?\b(?:19|20)\d{2}\b[^()]*)\)", line)
    return found.group(1) if found else line


def _short(text: str, width: int = 70) -> str:
    """`text` cut to `width` characters (a fallback row's free text)."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _printed(formula: str) -> str:
    """The formula as formula prints it (Unicode); the text itself when it does not parse."""
    try:
        import formula as fm

        return fm.pretty(formula)
    except Exception:  # noqa: BLE001  the table still lists the example
        return formula


def row(name: str, out: Path, folder: Path = HERE) -> Dict[str, str]:
    """The table's row for one example, from `out/metrics.json` (or its last printed line) and `out/zoo.json`."""
    results = read_results(out)
    log = json.loads((out / RUN_LOG).read_text(encoding="utf-8")) if (out / RUN_LOG).exists() else {}
    metric, _, value = str(log.get("last_line", "")).partition(": ")
    if "value" in results:
        value = f"{results['value']:.4g}" if isinstance(results["value"], (int, float)) else str(results["value"])
    if log.get("returncode"):
        value = f"did not run (exit {log['returncode']})"
    return {
        "model": str(results.get("model", name)),
        "paper": str(results.get("paper", _short(_citation(_docstring_line(name, folder))))),
        "formula": _printed(results["formula"]) if "formula" in results else "",
        "metric": str(results.get("metric", metric)),
        "value": _short(value) or "not run yet",
        "CPU wall time": f"{log['seconds']:.0f} s" + (" (smoke)" if log.get("smoke") else "") if log else "",
        "command": command(name),
    }


def _cell(column: str, text: str) -> str:
    """A table cell: `|` escaped; the formula and the command in code spans."""
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`{text}`" if column in ("formula", "command") and text else text


def table(rows: Sequence[Dict[str, str]], loads: Sequence[float] = ()) -> str:
    """The markdown table, one row per example, and a line saying how it was made (the machine's load average
    when each run started, whose range says how far other work inflated the wall times)."""
    import torch

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [r if isinstance(r, str) else "| " + " | ".join(_cell(c, r[c]) for c in COLUMNS) + " |" for r in rows]
    load = f", load average {min(loads):.1f}-{max(loads):.1f} as the runs started" if loads else ""
    lines += ["", f"Written by `python examples/zoo.py --table` (each example at its defaults, one thread; "
                  f"{platform.machine()}, {os.cpu_count()} cores{load}, torch {torch.__version__})."]
    return "\n".join(lines)


def _loads(names: Sequence[str], runs: Path) -> List[float]:
    """The load averages the stored runs recorded."""
    logs = [runs / n / RUN_LOG for n in names]
    loads = [json.loads(p.read_text(encoding="utf-8")).get("load") for p in logs if p.exists()]
    return [x for x in loads if isinstance(x, (int, float))]


def stored_rows(readme: Path) -> Dict[str, str]:
    """The rows of the table now in `readme`, as written, by example name (read from each row's command cell):
    an example with no stored run here keeps its row instead of becoming "not run yet"."""
    content = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if START not in content or END not in content:
        return {}
    found = {}
    for line in content.split(START, 1)[1].split(END, 1)[0].splitlines():
        match = re.search(r"`python examples/(\w+)\.py`", line)
        if line.startswith("| ") and match:
            found[match.group(1)] = line
    return found


def stored_loads(readme: Path) -> List[float]:
    """The load-average range the table's footer now states (kept rows were measured under it)."""
    match = re.search(r"load average (\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", readme.read_text(encoding="utf-8"))
    return [float(match.group(1)), float(match.group(2))] if match else []


def has_run(out: Path) -> bool:
    """Whether an example's results are stored in `out` (its metrics.json or the zoo's own log)."""
    return (out / RUN_LOG).exists() or (out / "metrics.json").exists()


def write_table(readme: Path, text: str) -> None:
    """Replace what lies between the zoo's marks in `readme` (the marks must be there)."""
    content = readme.read_text(encoding="utf-8")
    if START not in content or END not in content:
        raise SystemExit(f"{readme} has no {START} ... {END} marks for the zoo table")
    head, rest = content.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")


def arguments(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="run the examples and rewrite README's table")
    parser.add_argument("--list", action="store_true", help="list the examples found")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these (the others keep their results)")
    parser.add_argument("--smoke", action="store_true", help="run each with --smoke (a quick check of the zoo)")
    parser.add_argument("--no-run", action="store_true", help="write the table from the stored results only")
    parser.add_argument("--jobs", type=int, default=1, help="examples run at once")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "zoo", help="where the examples write")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = arguments(argv)
    names = examples()
    if args.list or not args.table:
        print("\n".join(names))
        return 0
    todo = [] if args.no_run else [n for n in names if args.only is None or n in args.only]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda n: run(n, args.runs / n, args.smoke), todo))
    kept = stored_rows(args.readme)
    rows = [row(n, args.runs / n) if has_run(args.runs / n) or n not in kept else kept[n] for n in names]
    loads = _loads(names, args.runs) + (stored_loads(args.readme) if any(isinstance(r, str) for r in rows) else [])
    write_table(args.readme, table(rows, loads))
    print(f"wrote the table of {len(names)} examples into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
