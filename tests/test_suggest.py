"""did_you_mean: one edit away from a keyword or a declared name (issue 9, typos that change meaning)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formula.lang.suggest import did_you_mean, one_edit_apart, vocabulary


@pytest.mark.parametrize("typo, meant", [("lg", "log"), ("Log", "log"), ("exp_", "exp"), ("KL_", "KL"),
                                         ("lgo", "log"), ("ecp", "exp"), ("sqr", "sqrt"), ("LOG", "log"),
                                         ("softpuls", "softplus"), ("sftpuls", None), ("tahn", "tanh"), ("kl", "KL")])
def test_typos_of_keywords(typo, meant):
    assert did_you_mean(typo) == meant


@pytest.mark.parametrize("name", ["log", "beta", "x", "z", "alpha", "K", "T", "mu", "sigma2"])
def test_no_suggestion_for_keywords_and_ordinary_names(name):
    assert did_you_mean(name) is None


def test_declared_names_as_vocabulary():
    assert did_you_mean("encoder", ["encodr", "decoder"]) == "encodr"
    assert did_you_mean("betta", ["beta"]) == "beta"
    assert did_you_mean("beta", ["Beta"]) is None  # a Greek scalar, not a typo of the family
    assert did_you_mean("q", ["p", "q"]) is None
    assert did_you_mean("x", []) is None


def test_vocabulary_comes_from_the_spelling_tables():
    words = vocabulary()
    assert {"log", "exp", "KL", "E", "H", "sum", "tanh"} <= set(words)


@given(st.text("abcdefgh", min_size=1, max_size=6), st.integers(0, 6), st.sampled_from("abcxyz"))
def test_one_insertion_is_one_edit(word, at, ch):
    longer = word[:at] + ch + word[at:]
    assert one_edit_apart(word, longer) and one_edit_apart(longer, word)
    assert not one_edit_apart(word, word)
