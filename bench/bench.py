"""Speed benchmark: `formula` against hand-written PyTorch, Pixyz and Pyro, one command, one table.

    python bench/bench.py                 # everything, defaults (a few minutes on one thread)
    python bench/bench.py --quick         # every row, fewer repetitions (about a minute)
    python bench/bench.py --smoke         # seconds: the test suite runs this so the script never rots
    python bench/bench.py --rows vae,compile --threads 2 --reps 30 --markdown

Each training row times full steps (forward, backward, Adam) of identical networks (one initial state_dict
copied into every contestant) on identical data. Contestants run interleaved, A B C D A B C D ..., with the order
rotated each repetition, so that the machine's drift hits all alike; warm-up steps are excluded. A row reports the
median seconds per step and the median over repetitions of the per-repetition ratio to hand-written PyTorch.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

_HERE = os.path.dirname(os.path.abspath(__file__))
# The bench's sibling modules, and the checkout's `formula` ahead of any installed copy: the bench measures the
# code next to it, from any working directory.
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]

import torch  # noqa: E402

import contestants as C  # noqa: E402
import nets as N  # noqa: E402

TASKS = ("vae", "iwae-k5", "iwae-k50", "dmm", "gan", "flow")
ROWS = TASKS + ("compile",)
ALIASES = {"iwae": ("iwae-k5", "iwae-k50")}  # --rows iwae means both K


@dataclass(frozen=True)
class Settings:
    """How hard to measure: repetitions, warm-up steps, and the wall time one contestant spends per repetition."""

    reps: int = 30
    warmup: int = 10
    target_s: float = 0.1
    row_budget_s: float = 30.0  # fewer repetitions (never under min_reps) where a row would take longer
    min_reps: int = 10
    compile_reps: int = 200
    cold_runs: int = 3


PRESETS = {
    "full": Settings(),
    "quick": Settings(reps=5, warmup=3, target_s=0.05, row_budget_s=20.0, min_reps=5, compile_reps=50,
                      cold_runs=1),
    "smoke": Settings(reps=2, warmup=1, target_s=0.0, min_reps=2, compile_reps=3, cold_runs=1),
}


@dataclass(frozen=True)
class Result:
    """One line of the table. `seconds` is None when the contestant could not run; `note` then says why."""

    row: str
    size: str
    contestant: str
    seconds: Optional[float] = None
    ratio: Optional[float] = None
    ratio_iqr: Optional[Tuple[float, float]] = None
    reps: int = 0  # timed repetitions ...
    steps: int = 0  # ... of this many steps each
    target: str = ""
    met: Optional[bool] = None
    note: str = ""
    peak_bytes: Optional[int] = None  # memory one step adds at its peak (see `peak_step_memory`)


# --- training rows ------------------------------------------------------------------------------------------

def _reason(exc: BaseException) -> str:
    """A one-line 'not available' reason naming the exception."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"not available: {type(exc).__name__}: {first}"[:160]


def _make_step(contestant: C.Contestant, data: Sequence[torch.Tensor]) -> Callable[[], None]:
    """One training step (zero grads, forward, backward, Adam) over the row's batches in a fixed cycle."""
    optimizer = torch.optim.Adam(contestant.parameters, lr=1e-3)
    batches = itertools.cycle(data)

    def step() -> None:
        x = next(batches).clone()  # a new tensor every step, as from a DataLoader (Pixyz caches on identity)
        optimizer.zero_grad(set_to_none=True)
        contestant.loss(x).backward()
        for p in contestant.ascend:  # the maximising player climbs the same value
            if p.grad is not None:
                p.grad.neg_()
        optimizer.step()

    return step


def _row_inputs(task: str, size: N.Size, device: torch.device):
    """The row's reference networks and data batches, on `device`."""
    if task == "dmm":
        nets, data = N.dmm_nets(size), N.binary_batches(size, steps=C.DMM_T)
    elif task == "gan":
        nets, data = N.gan_nets(size), N.binary_batches(size)
    elif task == "flow":
        nets, data = N.flow_nets(size), N.continuous_batches(size)
    else:
        nets, data = N.vae_nets(size), N.binary_batches(size)
    for module in vars(nets).values():
        module.to(device)
    return nets, tuple(x.to(device) for x in data)


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_step_memory(step: Callable[[], None], device: torch.device, steps: int = 2) -> Optional[int]:
    """Bytes a few steps add at their peak: torch.cuda.max_memory_allocated above the allocated baseline on a GPU;
    on the CPU the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) above its RSS before."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    try:
        _LIBC.malloc_trim(0)  # hand freed heap back, so the step's own pages count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: reset the peak RSS to the current RSS
        base = _rss_kib("VmRSS")
        for _ in range(steps):
            step()
        return max(0, _rss_kib("VmHWM") - base) * 1024
    except (OSError, StopIteration, ValueError, AttributeError):  # not Linux/glibc: no column
        return None


CLOCKS: Dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def time_row(task: str, size: N.Size, names: Sequence[str], settings: Settings,
             clock: Callable[[], float] = time.perf_counter,
             device: torch.device = torch.device("cpu")) -> List[Result]:
    """Time every named contestant of `task` at `size`, interleaved; the reference is always included."""
    try:
        reference_nets, data = _row_inputs(task, size, device)
    except Exception as exc:  # zuko missing: the flow row says so
        return [Result(task, size.label, C.REFERENCE, note=_reason(exc))]
    steps: Dict[str, Callable[[], None]] = {}
    notes: Dict[str, str] = {}
    failed: Dict[str, str] = {}
    for name, build in C.CONTESTANTS[task].items():
        if name not in names and name != C.REFERENCE:
            continue
        try:
            torch.manual_seed(0)
            contestant = build(N.fresh_copy(reference_nets), size)
            notes[name] = contestant.note
            step = _make_step(contestant, data)
            for _ in range(max(1, settings.warmup)):
                step()
            steps[name] = step
        except Exception as exc:  # a framework that cannot run keeps its row, with the reason
            failed[name] = _reason(exc)
    if C.REFERENCE not in steps:
        return [Result(task, size.label, name, note=failed.get(name, "reference failed")) for name in failed]

    # Steps per repetition: enough for the slowest contestant's chunk to last about target_s.
    once = [_once(step, clock) for step in steps.values()]
    per_rep = max(1, round(settings.target_s / max(once))) if settings.target_s > 0 else 1
    affordable = int(settings.row_budget_s / (per_rep * sum(once)))
    reps = max(min(settings.reps, settings.min_reps), min(settings.reps, affordable))
    times: Dict[str, List[float]] = {name: [] for name in steps}
    order = list(steps)
    gc.collect()
    for rep in range(reps):
        shift = rep % len(order)
        for name in order[shift:] + order[:shift]:
            if name in failed:
                continue
            try:
                start = clock()
                for _ in range(per_rep):
                    steps[name]()
                times[name].append((clock() - start) / per_rep)
            except Exception as exc:
                failed[name] = _reason(exc)

    return _row_results(task, size, steps, times, failed, notes, per_rep, device)


def _row_results(task: str, size: N.Size, steps: Dict[str, Callable[[], None]], times: Dict[str, List[float]],
                 failed: Dict[str, str], notes: Dict[str, str], per_rep: int, device: torch.device) -> List[Result]:
    """The row's lines: per-repetition ratios to the reference, peak memory, and the issue's targets."""
    if C.REFERENCE in failed:  # no ratios without the reference's times for every repetition
        return [Result(task, size.label, name, note=failed.get(name, f"{C.REFERENCE} failed: no ratios"))
                for name in C.CONTESTANTS[task] if name in steps or name in failed]
    peaks = {name: peak_step_memory(step, device) for name, step in steps.items() if name not in failed}
    results = []
    ref = times[C.REFERENCE]
    for name in C.CONTESTANTS[task]:
        if name in failed:
            results.append(Result(task, size.label, name, note=failed[name]))
        elif name in times:
            ratios = sorted(t / r for t, r in zip(times[name], ref))
            results.append(Result(task, size.label, name, seconds=statistics.median(times[name]),
                                  ratio=statistics.median(ratios), ratio_iqr=_iqr(ratios),
                                  reps=len(times[name]), steps=per_rep, note=notes.get(name, ""),
                                  peak_bytes=peaks.get(name)))
    return _judge(results, size)


def _once(step: Callable[[], None], clock: Callable[[], float]) -> float:
    """Seconds of one step, the best of three (a stray pause must not set the steps per repetition)."""
    best = float("inf")
    for _ in range(3):
        start = clock()
        step()
        best = min(best, clock() - start)
    return best


def _iqr(values: Sequence[float]) -> Tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0])
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[0], q[2])


# --- targets (reported, never asserted) -------------------------------------------------------------------------

def _judge(results: List[Result], size: N.Size) -> List[Result]:
    """Attach the issue's targets: formula/torch <= 1.25 at (2,16), <= 1.05 above; faster than Pixyz and Pyro;
    formula+compile at or below eager torch at (64,512)."""
    by_name = {r.contestant: r for r in results}
    formula = by_name.get("formula")
    judged = []
    for r in results:
        target, met = "", None
        if r.row == "vae" and r.contestant == "formula":
            bound = 1.25 if (size.z, size.h) == (2, 16) else 1.05
            target, met = f"ratio <= {bound}", (r.ratio <= bound if r.ratio is not None else None)
        elif r.row == "vae" and r.contestant == "formula+compile" and (size.z, size.h) == (64, 512):
            target, met = "ratio <= 1.00", (r.ratio <= 1.0 if r.ratio is not None else None)
        elif r.contestant in ("pixyz", "pyro") and formula is not None:
            target = "slower than formula"
            if r.seconds is not None and formula.seconds is not None:
                met = r.seconds > formula.seconds
        judged.append(replace(r, target=target, met=met))
    return judged


# --- compile rows -------------------------------------------------------------------------------------------

def fifty_term_text() -> str:
    """A 50-term objective over the VAE's distributions (25 weighted reconstructions, 25 weighted KLs)."""
    terms = []
    for i in range(25):
        terms.append(f"{(i + 1) / 100:g} * E_q(z|x)[log p(x|z)]")
        terms.append(f"{(i + 1) / 100:g} * KL(q(z|x)||p(z))")
    return " - ".join(terms)


_COLD = """
import sys, time
sys.path[:0] = [{bench!r}, {root!r}]
import torch, formula as fm, contestants as C, nets as N
size = N.SIZES[1]
nets = N.vae_nets(size)
dists = C._vae_dists(fm, nets, size)
compile = fm.compile  # formula imports its modules lazily: the import is not the compile
start = time.perf_counter()
compile({text!r}, dists)
print(time.perf_counter() - start)
"""


def _cold_compile(text: str, runs: int) -> float:
    """Median seconds of the first `fm.compile` call in a fresh process (its modules already imported)."""
    code = _COLD.format(bench=_HERE, root=os.path.dirname(_HERE), text=text)
    samples = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:  # report the exception line, not the caret lines printed under it
            errors = [line for line in done.stderr.splitlines() if re.match(r"[\w.]+(Error|Exception)\b", line)]
            raise RuntimeError((errors or done.stderr.strip().splitlines() or ["no output"])[-1])
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def _timed(fn: Callable[[int], object], reps: int) -> float:
    samples = []
    for i in range(reps):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_compile(settings: Settings) -> List[Result]:
    """Parse + check + compile of the VAE formula and of a 50-term formula: cold, uncached and cached."""
    size = N.SIZES[1]
    try:
        fm = C._fm()
        dists = C._vae_dists(fm, N.vae_nets(size), size)
    except Exception as exc:
        return [Result("compile", "VAE", "fm.compile", note=_reason(exc))]
    uncached_reps = max(3, settings.compile_reps // 10)
    results = []
    for name, text in (("VAE", C.VAE_TEXT), ("50 terms", fifty_term_text())):
        fresh = itertools.count(1)  # trailing spaces make a text new to any cache keyed on the text
        cases = (
            ("first call in a fresh process", settings.cold_runs, lambda: _cold_compile(text, settings.cold_runs),
             0.020 if name == "VAE" else None),
            ("new text (uncached), warm process", uncached_reps,
             lambda: _timed(lambda i: fm.compile(text + " " * next(fresh), dists), uncached_reps), None),
            ("same text again (cached)", settings.compile_reps,
             lambda: (fm.compile(text, dists), _timed(lambda i: fm.compile(text, dists), settings.compile_reps))[1],
             50e-6 if name == "VAE" else None),
        )
        for what, reps, measure, bound in cases:
            target = "" if bound is None else f"< {_fmt_seconds(bound).replace('.0 ', ' ')}"
            try:
                seconds = measure()
                results.append(Result("compile", name, what, seconds=seconds, reps=reps, steps=1, target=target,
                                      met=None if bound is None else seconds < bound))
            except Exception as exc:
                results.append(Result("compile", name, what, target=target, note=_reason(exc)))
    return results


# --- printing ---------------------------------------------------------------------------------------------

def _fmt_seconds(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def _fmt_bytes(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 2 ** 20:.1f} MiB"


def _fmt_ratio(r: Result) -> str:
    if r.ratio is None:
        return "-"
    if r.contestant == C.REFERENCE:
        return "1 (ref)"
    lo, hi = r.ratio_iqr or (r.ratio, r.ratio)
    return f"{r.ratio:.3f} [{lo:.2f}-{hi:.2f}]"


def _fmt_met(r: Result) -> str:
    if r.met is None:
        return "n/a" if r.target else ""
    return "yes" if r.met else "NO"


HEADER = ("row", "size", "contestant", "median/step", "ratio to torch [IQR]", "peak memory", "reps x steps",
          "target", "met", "note")


def table_rows(results: Sequence[Result]) -> List[Tuple[str, ...]]:
    return [(r.row, r.size, r.contestant, _fmt_seconds(r.seconds), _fmt_ratio(r),
             _fmt_bytes(r.peak_bytes) if r.row != "compile" else "",
             f"{r.reps} x {r.steps}" if r.reps else "", r.target, _fmt_met(r), r.note) for r in results]


def render(results: Sequence[Result], markdown: bool) -> str:
    """The results as an aligned text table, or as a Markdown table ready for a README."""
    rows = table_rows(results)
    if markdown:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(HEADER)]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(HEADER), fmt(tuple("-" * w for w in widths))] + [fmt(row) for row in rows])


def machine() -> Dict[str, str]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "nproc": str(os.cpu_count()), "torch": torch.__version__,
            "torch threads": str(torch.get_num_threads()), "python": platform.python_version()}
    for package in ("formula", "pixyz", "pyro"):
        try:
            module = __import__(package)
            info[package] = getattr(module, "__version__", "installed")
        except Exception as exc:  # shown, not fatal: the rows say the same
            info[package] = f"not available ({type(exc).__name__})"
    return info


# --- command line -------------------------------------------------------------------------------------------

def _sizes(spec: Optional[str], smoke: bool) -> List[N.Size]:
    if spec is None:
        return [N.SIZES[0]] if smoke else list(N.SIZES)
    wanted = {tuple(int(v) for v in part.split("x")) for part in spec.split(",")}
    return [s for s in N.SIZES if (s.z, s.h) in wanted]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="every row, few repetitions (about a minute)")
    mode.add_argument("--smoke", action="store_true", help="seconds: smallest size, 2 repetitions (used by tests)")
    parser.add_argument("--reps", type=int, help="timed repetitions per row (default 30; quick 5; smoke 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--sizes", help="comma-separated ZxH, e.g. 2x16,64x512 (default all; smoke 2x16)")
    parser.add_argument("--contestants", help="comma-separated, e.g. formula,pixyz (torch always runs); default: "
                        "all, without formula+compile under --quick/--smoke")
    parser.add_argument("--clock", choices=("auto", *CLOCKS), default="auto",
                        help="what a step's seconds are: wall time, or this process's CPU time, which a busy shared "
                        "machine disturbs less (auto: cpu with one thread, wall with more)")
    parser.add_argument("--device", default="cpu", help="torch device of the training rows, e.g. cuda (wall clock, "
                        "synchronised; peak memory from torch.cuda.max_memory_allocated)")
    parser.add_argument("--markdown", action="store_true", help="print a README-ready Markdown table")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.rows = ",".join(r for part in args.rows.split(",") for r in ALIASES.get(part, (part,)))
    unknown = set(args.rows.split(",")) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {list(ROWS)}")
    return args


def _synchronised(clock: Callable[[], float], device: torch.device) -> Callable[[], float]:
    """`clock`, read after the device's queued kernels finish (GPU steps are asynchronous)."""

    def read() -> float:
        torch.cuda.synchronize(device)
        return clock()

    return read


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    preset = "smoke" if args.smoke else "quick" if args.quick else "full"
    settings = PRESETS[preset]
    if args.reps is not None:
        settings = replace(settings, reps=args.reps)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    if args.contestants:
        names = args.contestants.split(",")
    else:
        names = [n for task in TASKS for n in C.names(task) if preset == "full" or n != "formula+compile"]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"bench: --device {args.device}, but this machine has no CUDA device", file=sys.stderr)
        return 2
    clock = args.clock if args.clock != "auto" else ("cpu" if args.threads == 1 and device.type == "cpu" else "wall")
    timer = CLOCKS[clock] if device.type == "cpu" else _synchronised(CLOCKS[clock], device)
    rows = args.rows.split(",")
    sizes = _sizes(args.sizes, args.smoke)

    info = machine()
    print(f"# formula speed benchmark ({preset}: {settings.reps} reps, {settings.warmup} warm-up steps)")
    print("# " + "; ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"# device: {device}; clock: {clock} ({'process CPU time' if clock == 'cpu' else 'wall time'}); peak "
          f"memory: {'max_memory_allocated' if device.type == 'cuda' else 'peak RSS'} above the step's baseline")
    print("# per step: zero_grad, forward, backward, Adam(lr=1e-3); IWAE K=5 and K=50, DMM T=%d, GAN one "
          "simultaneous step (D ascends); data 784-d binary, the flow's %d-d Gaussian" % (C.DMM_T, N.FLOW_DIM))
    sys.stdout.flush()
    results: List[Result] = []
    for task in TASKS:
        if task not in rows:
            continue
        for size in sizes:
            start = time.perf_counter()
            results += time_row(task, size, names, settings, timer, device)
            print(f"# timed {task} {size.label} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if "compile" in rows:
        results += time_compile(settings)
    print(render(results, args.markdown))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "preset": preset, "clock": clock, "settings": asdict(settings),
                       "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
