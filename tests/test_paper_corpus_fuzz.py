"""The paper corpus mutated (issue 13): seeded insertions of the notation issue 13 added (`\\int`, `^*`, `\\arg\\min`,
`\\cdot`, prose labels, `\\text{s.t.}`, `;` parameters ...), deletions and copies, through the parse fuzz campaign's
check (tests/test_fuzz_parse.py): nothing but a FormulaError escapes, and what parses prints back to the same tree."""

import random

from paper_corpus import CORPUS
from test_fuzz_parse import _check_one

TOKENS = [r"\int", "^*", r"\arg\min_G", r"\cdot", r"\text{a b}", " d", "dx", ",", "(", ")", "{", "}", "_", "^",
          r"\infty", r"\text{s.t.}", ";", r"\ldots", r"\partial_i", "^{(i)}", r"\mathbb{E}_{-j}", "[", "]", "|",
          r"\sim", "^A", r"\hat x", r"\operatorname*{\mathbb{E}}", r"\sum_{i, j}", "x", "p(x)",
          r"\underbrace{a}_{\text{b c}}", "=", "+", "-", r"\|"]


def mutated(rng: random.Random) -> str:
    text = rng.choice(CORPUS)[2]
    for _ in range(rng.randint(1, 3)):
        i, op = rng.randrange(len(text) + 1), rng.random()
        if op < 0.4:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op < 0.8:
            text = text[:i] + text[i + rng.randint(1, 4):]
        else:
            j = rng.randrange(len(text) + 1)
            text = text[:i] + text[j:j + 6] + text[i:]
    return text


def test_mutated_paper_corpus_never_misbehaves():
    rng = random.Random(13)
    failures = []
    for k in range(3000):
        text = mutated(rng)
        problem = _check_one(text, with_sympy=k % 25 == 0)
        if problem is not None:
            failures.append(f"{text!r}\n    {problem}")
    assert not failures, f"{len(failures)} misbehaved:\n" + "\n".join(failures[:5])
