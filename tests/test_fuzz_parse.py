"""The parse fuzz campaign (issue 9): generated and mutated strings through `parse`, and the printers on what
parses; nothing but a `FormulaError` may escape, and what prints must read back to the same tree.

Everything is seeded: string i of chunk c is `text_for(c, i)`, so a failure reproduces with one call. Chunk 0
runs by default; the others are `slow` (CI runs them all, in parallel under -n). The whole campaign is
`CHUNKS * PER_CHUNK` = 100,000 strings.
"""

from __future__ import annotations

import random
import traceback
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import pytest

from formula.errors import FormulaError
from formula.lang import spellings
from formula.lang.parser import parse
from formula.text.printing import to_ascii, to_latex
from formula.text.symbolic import equivalent, pretty
from strategies import VALID_FORMULAS

CHUNKS = 10
PER_CHUNK = 10_000
SYMPY_EVERY = 50  # the Unicode printer and `equivalent` (sympy, ~ms each) run on every 50th string that parses

DOCS = Path(__file__).resolve().parents[1] / "docs" / "language.md"

SEEDS = VALID_FORMULAS + [
    r"\log p(x) \geq \mathbb{E}_{q(z|x)}[\log p(x,z) - \log q(z|x)] =: \mathcal{L}",
    r"\mathcal{N}(x \mid \mu, \sigma^2 I) + \mathrm{Bern}(x|\lambda) + \tilde{x}' + \hat{z}^{(l)} + u^\top v",
    r"\frac{1}{L}\sum_{l=1}^{L} \log p(x, z^{(l)}) - \log q(z^{(l)}|x); \sum_{y} q(y|x)\, f(y)",
    r"\mathcal{E}_\theta(x) + \psi_k(z) + \sigma(a) + \tanh b + softplus(c) \cdot 2 \times 3 / 4",
]

ALPHABET = list("()[]{}|\\_^~;,.=+-*/<>:'! \nqpzxyKLEHDIW0123e") + [
    r"\left", r"\right", r"\|", r"\mathbb{E}", r"\sum", r"\prod", r"\log", r"\frac", "||", r"\mid", r"\sim",
    r"\ldots", r"\langle", r"\rangle", r"\underbrace", r"\nabla", r"\partial", r"\mathcal{N}", r"\beta",
    r"\tilde", "^{(", r"\text{sg}", "\\", "&", r"\\", "log ", "sum_", "E_", r"\min_", r"\max_", r"\top", "1e309",
    r"\mathcal{E}", r"\psi", "^q", "_q", "D_{KL}", r"\geq", ":=", r"\,", "exp ", r"\operatorname{", "\u2265",
    "\U0001D53C", "é", "\t", "0.5", ".5", "1e-3",
] + [w for w in spellings.keywords()]


def _docs_formulas() -> List[str]:
    """The §5 acceptance formulas, read from docs/language.md itself."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("## 5.")[1].split("```text")[1].split("```")[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


CORPUS = SEEDS + _docs_formulas()


def _soup(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))


def _mutate(rng: random.Random, text: str, edits: int) -> str:
    for _ in range(edits):
        i = rng.randint(0, len(text))
        kind = rng.randrange(5)
        if kind == 0:
            text = text[:i] + text[i + 1:]
        elif kind == 1:
            text = text[:i] + text[i:i + rng.randint(1, 4)] * 2 + text[i + 1:]
        elif kind == 2 and len(text) > 1:
            j = rng.randrange(len(text))
            chars = list(text)
            i = min(i, len(text) - 1)
            chars[i], chars[j] = chars[j], chars[i]
            text = "".join(chars)
        elif kind == 3:
            text = text[:i] + rng.choice(ALPHABET) + text[i:]
        else:  # splice a piece of another formula in
            other = rng.choice(CORPUS)
            a = rng.randrange(len(other))
            text = text[:i] + other[a:a + rng.randint(1, 20)] + text[i:]
    return text


def text_for(chunk: int, i: int) -> str:
    """String i of chunk `chunk`: token soup, a mutated corpus formula, or a splice of two (seeded)."""
    rng = random.Random(chunk * 1_000_003 + i)
    kind = rng.random()
    if kind < 0.2:
        return _soup(rng)
    if kind < 0.9:
        return _mutate(rng, rng.choice(CORPUS), rng.randint(1, 4))
    a, b = rng.choice(CORPUS), rng.choice(CORPUS)
    return a[: rng.randrange(len(a) + 1)] + rng.choice(" + - * ; \n") + b[rng.randrange(len(b) + 1):]


def _check_one(text: str, with_sympy: bool) -> Optional[str]:
    """None when `text` behaves (FormulaError, or parses and prints back to the same tree), else what went wrong."""
    try:
        tree = parse(text)
    except FormulaError:
        return None
    except Exception:  # noqa: BLE001 - the campaign reports every other exception
        return traceback.format_exc(limit=-3)
    steps: List[Tuple[str, Callable[[], object]]] = [
        ("ascii round trip", lambda: parse(to_ascii(tree)) == tree),
        ("latex round trip", lambda: parse(to_latex(tree)) == tree),
    ]
    if with_sympy:
        steps += [("pretty", lambda: bool(pretty(tree)) or True), ("equivalent", lambda: equivalent(tree, tree))]
    for what, step in steps:
        try:
            if step() is not True:
                return f"{what} differs"
        except FormulaError as err:
            return f"{what}: FormulaError on a tree that parsed: {err.message}"
        except Exception:  # noqa: BLE001
            return f"{what}: " + traceback.format_exc(limit=-3)
    return None


def run_chunk(chunk: int, count: int = PER_CHUNK) -> Tuple[int, List[Tuple[int, str, str]]]:
    """Run `count` strings of `chunk`; returns how many parsed, and (i, text, problem) for each failure."""
    parsed, failures = 0, []
    for i in range(count):
        text = text_for(chunk, i)
        problem = _check_one(text, with_sympy=(i % SYMPY_EVERY == 0))
        if problem is None:
            parsed += _parses(text)
        else:
            failures.append((i, text, problem))
    return parsed, failures


def _parses(text: str) -> int:
    try:
        parse(text)
        return 1
    except FormulaError:
        return 0


@pytest.mark.parametrize("chunk", [pytest.param(c, marks=[pytest.mark.slow] if c else []) for c in range(CHUNKS)])
def test_campaign(chunk):
    parsed, failures = run_chunk(chunk)
    report = "\n".join(f"  text_for({chunk}, {i}) = {text!r}\n    {problem}" for i, text, problem in failures[:10])
    assert not failures, f"{len(failures)} of {PER_CHUNK} strings misbehaved:\n{report}"
    assert parsed >= PER_CHUNK // 20, "the generator has degenerated: almost nothing parses"


def test_corpus_parses():
    for text in CORPUS:
        parse(text)
