"""bench/profile_step.py runs a bench row's step under cProfile and reports Python calls per step for formula and
the hand-written step (the load-independent measure of per-call overhead)."""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "profile_step.py"


def test_profile_step_reports_calls_per_step(tmp_path):
    out = tmp_path / "profile.txt"
    done = subprocess.run([sys.executable, str(SCRIPT), "--row", "vae", "--size", "2x16", "--steps", "3", "--top",
                           "5", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    counts = dict(re.findall(r"== vae z=2,h=16,B=16, (\w+): (\d+) Python calls per step", out.read_text()))
    assert set(counts) == {"formula", "torch"}
    # formula's step is the hand-written one plus its plumbing: more calls, but not several times more
    assert int(counts["torch"]) < int(counts["formula"]) < 2 * int(counts["torch"])
