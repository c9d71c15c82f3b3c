"""Prints the paper corpus's rate: how many of tests/paper_corpus.py's formulas parse, print to ASCII, LaTeX and
Unicode, and parse back to the same tree (issue 13). Run: `python tests/paper_corpus_rate.py`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from formula.errors import FormulaError  # noqa: E402
from formula.lang.parser import parse  # noqa: E402
from formula.text.printing import to_ascii, to_latex  # noqa: E402
from formula.text.symbolic import pretty  # noqa: E402

from paper_corpus import CORPUS  # noqa: E402


def round_trips(text: str) -> bool:
    try:
        tree = parse(text)
        return all(parse(printer(tree)) == tree for printer in (to_ascii, to_latex, pretty))
    except FormulaError:
        return False


if __name__ == "__main__":
    failing = [(paper, equation) for paper, equation, text in CORPUS if not round_trips(text)]
    for paper, equation in failing:
        print(f"  not yet: {paper}, {equation}")
    print(f"{len(CORPUS) - len(failing)} of {len(CORPUS)} paper formulas parse and print back")
