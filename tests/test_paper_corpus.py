"""The paper corpus (tests/paper_corpus.py: objectives as printed, each with its paper and equation): every
supported formula parses, prints to ASCII, LaTeX and Unicode, and each print parses back to the same tree; the
formulas not supported yet are syntax errors with a caret (issue 13). The rate is asserted so that it only rises:
since issue 13 it is every one (`python tests/paper_corpus_rate.py` prints it)."""

import pytest

from formula.errors import FormulaSyntaxError
from formula.lang.parser import parse
from formula.text.printing import to_ascii, to_latex
from formula.text.symbolic import pretty

from paper_corpus import CORPUS, NOT_SUPPORTED

SUPPORTED = [c for c in CORPUS if (c[0], c[1]) not in NOT_SUPPORTED]
MISSING = [c for c in CORPUS if (c[0], c[1]) in NOT_SUPPORTED]


def test_corpus_size_and_rate():
    assert len(SUPPORTED) >= 115 and len(CORPUS) >= 115
    assert len(MISSING) == len(NOT_SUPPORTED)  # every listed miss is in the corpus
    assert len(SUPPORTED) == len(CORPUS)  # all of them (issue 13)


@pytest.mark.parametrize("paper, equation, text", SUPPORTED, ids=[f"{p} {e}" for p, e, _ in SUPPORTED])
def test_paper_formula_parses_and_prints_back(paper, equation, text):
    tree = parse(text)
    for printer in (to_ascii, to_latex, pretty):
        assert parse(printer(tree)) == tree, printer.__name__


@pytest.mark.parametrize("paper, equation, text", MISSING, ids=[f"{p} {e}" for p, e, _ in MISSING])
def test_unsupported_paper_formula_is_a_syntax_error_with_a_caret(paper, equation, text):
    with pytest.raises(FormulaSyntaxError) as err:
        parse(text)
    assert err.value.span is not None and "^" in str(err.value)
