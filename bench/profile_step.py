"""Profile one training step of a bench row with cProfile: Python calls per step and the top functions.

    python bench/profile_step.py --row vae --size 2x16 --steps 200 [--top 25] [--out FILE]

Python function calls per step do not depend on the machine's load (unlike wall clock), so they are the measure of
plumbing to watch; the listing is cProfile's, sorted by tottime, for formula's step and the hand-written one.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import bench  # noqa: E402
import contestants as C  # noqa: E402
import nets as N  # noqa: E402

BUILDERS = {
    "vae": (C.formula_vae, C.torch_vae),
    "iwae-k5": (lambda n, s: C.formula_iwae(n, s, 5), lambda n, s: C.torch_iwae(n, s, 5)),
    "iwae-k50": (lambda n, s: C.formula_iwae(n, s, 50), lambda n, s: C.torch_iwae(n, s, 50)),
    "dmm": (C.formula_dmm, C.torch_dmm),
    "gan": (C.formula_gan, C.torch_gan),
}


def profile(step, steps: int, top: int):
    for _ in range(5):  # warm-up: the validating first calls are not the steady state
        step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    stats = pstats.Stats(prof)
    total_calls = stats.total_calls
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(top)
    return total_calls / steps, stats.total_tt / steps, out.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--row", default="vae", choices=sorted(BUILDERS))
    p.add_argument("--size", default="2x16")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    z, h = (int(v) for v in args.size.split("x"))
    size = next(s for s in N.SIZES if (s.z, s.h) == (z, h))
    lines = []
    for name, build in zip(("formula", "torch"), BUILDERS[args.row]):
        nets, data = bench._row_inputs(args.row, size, torch.device("cpu"))  # iwae-k*: the VAE's nets and data
        step = bench._make_step(build(N.fresh_copy(nets), size), data)
        calls, seconds, listing = profile(step, args.steps, args.top)
        lines.append(f"== {args.row} {size.label}, {name}: {calls:.0f} Python calls per step, "
                     f"{seconds * 1e3:.3f} ms per step under cProfile ==\n{listing}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
