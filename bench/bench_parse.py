"""Parse timings: the VAE formula (first call with the parser built, a new text, cached) and a 50-term formula.

Run: `python bench/bench_parse.py`. Prints a table of medians over repeats (milliseconds).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
FIRST_CALL = (
    "import time; t = time.perf_counter(); import formula.lang.parser as P; "
    f"P.parse({VAE!r}); print(time.perf_counter() - t)"
)


def _fifty_terms(salt: int) -> str:
    terms = [f"{salt + k} * E_{{q(z_{k}|x)}}[log p(x|z_{k})]" if k % 2 else f"KL(q(z_{k}|x)||p(z_{k}))"
             for k in range(50)]
    return " - ".join(terms)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(repeats: int = 20) -> None:
    import formula.lang.parser as parsing

    # A fresh interpreter each time: import + grammar load + LALR table construction + first parse.
    first = [float(subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(5)]
    parsing.parse(VAE)  # the parser is now built in this process

    def new_vae(i: int) -> None:
        parsing.parse(VAE + " " * (i + 1))  # a text not seen before (the cache is keyed on the text)

    rows = [
        ("VAE, first call (parser built, import included)", 1000 * statistics.median(first)),
        ("VAE, new text, parser already built", _median_ms(new_vae, repeats)),
        ("VAE, cached", _median_ms(lambda i: parsing.parse(VAE), repeats * 50)),
        ("50-term formula, uncached", _median_ms(lambda i: parsing.parse(_fifty_terms(1000 * i)), repeats)),
        ("50-term formula, cached", _median_ms(lambda i: parsing.parse(_fifty_terms(0)), repeats * 50)),
    ]
    print(f"{'case':<52}{'median ms':>12}")
    print("-" * 64)
    for name, ms in rows:
        print(f"{name:<52}{ms:>12.3f}")
    print(f"\n50-term formula: {len(_fifty_terms(0))} characters")


if __name__ == "__main__":
    main()
