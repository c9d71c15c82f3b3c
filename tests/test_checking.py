"""Check errors: each says what is wrong, in the user's terms, with a caret under the offending span."""

import pytest
import torch

import formula as fm
from formula.check.checker import check_text
from models import vae

VAE_SIGS = (("q(z|x)", "dist"), ("p(x|z)", "dist"), ("p(z)", "dist"))


def check(text, *sigs):
    return check_text(text, tuple((s, "dist") for s in sigs) or VAE_SIGS)


def caret_at(err, text, fragment, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(fragment, start + 1)
    assert err.span == (start, start + len(fragment)), (err.span, text[err.span[0]:err.span[1]])
    line = str(err).splitlines()
    assert line[-2].strip() == text.strip()
    assert line[-1].index("^") - line[-2].index(text[0]) == start


def test_undeclared_distribution_lists_the_declared_ones():
    text = "E_q(z|y)[log p(x|z)] - KL(q(z|x)||p(z))"
    with pytest.raises(fm.FormulaCheckError, match=r"no distribution q\(z\|y\) is declared; declared: q\(z\|x\), "
                                                   r"p\(x\|z\), p\(z\)") as e:
        check(text)
    caret_at(e.value, text, "q(z|y)")


def test_latent_outside_its_expectation():
    text = "E_q(z|x)[log p(x|z)] + log p(z)"
    with pytest.raises(fm.FormulaCheckError, match="z is a sampled variable, but no enclosing expectation draws it"):
        check(text)
    err = pytest.raises(fm.FormulaCheckError, check, text).value
    assert text[err.span[0]:err.span[1]] == "z" and err.span[0] == text.rindex("z")


def test_kl_between_different_variables():
    text = "KL(q(z|x) || p(x|z))"
    with pytest.raises(fm.FormulaCheckError, match="KL between distributions over different variables: z and x"):
        check(text)
    caret_at(pytest.raises(fm.FormulaCheckError, check, text).value, text, text)


def test_entropy_of_undeclared():
    text = "H[q(y|x)]"
    with pytest.raises(fm.FormulaCheckError, match=r"no distribution q\(y\|x\) is declared") as e:
        check(text)
    caret_at(e.value, text, "q(y|x)")


def test_factorisation_that_does_not_cover_its_joint():
    text = "q(z_1,z_2|b) = q(z_1|b)\nE_{q(z_1,z_2|b)}[log p(z_1)]"
    with pytest.raises(fm.FormulaCheckError, match=r"the factors cover z_1 but q\(z_1, ?z_2\|b\) is over z_1, z_2"):
        check(text, "q(z_1|b)", "p(z)")
    err = pytest.raises(fm.FormulaCheckError, check, text, "q(z_1|b)", "p(z)").value
    assert err.span[0] == 0 and text[err.span[0]:err.span[1]].startswith("q(z_1,z_2|b) = ")


def test_circular_factorisation():
    text = "p(x,z) = p(x|z) p(z|x)\nE_{q(z|x)}[log p(x,z)]"
    with pytest.raises(fm.FormulaCheckError, match=r"the factorisation of p\(x, ?z\) is circular") as e:
        check(text, "p(x|z)", "p(z|x)", "q(z|x)")
    assert e.value.span == (0, len("p(x,z)"))  # the joint on the factorisation's left


def test_chain_rule_needs_a_cover():
    text = "E_{q(z|x)}[log p(x,z)]"
    with pytest.raises(fm.FormulaCheckError, match=r"no declaration covers z in p\(x, ?z\)") as e:
        check(text, "q(z|x)", "p(x|z)")
    caret_at(e.value, text, "p(x,z)")


def test_expectation_needing_a_variable_not_yet_drawn():
    text = "E_{q(z_2|x)}[log p(x|z_2)] + E_{q(z_1|z_2)}[log p(z_1)]"
    with pytest.raises(fm.FormulaCheckError, match="z_2 is a sampled variable, but no enclosing expectation draws") as e:
        check(text, "q(z_2|x)", "q(z_1|z_2)", "p(x|z)", "p(z)")
    caret_at(e.value, text, "z_2", nth=2)  # the condition of q(z_1|z_2), the sampler that needs it


def test_ambiguous_bare_expectation_lists_candidates():
    text = r"\mathbb{E}[\log p(x|z)]"
    with pytest.raises(fm.FormulaCheckError, match=r"is ambiguous: z could be drawn from q\(z\|x\), p\(z\)") as e:
        check(text)
    caret_at(e.value, text, text)


def test_named_bare_expectation_resolves():
    checked = check(r"\mathbb{E}_q[\log p(x|z)] - KL(q(z|x)||p(z))")
    assert checked.inputs == ("x",)


def test_two_declarations_matching_by_position():
    text = "E_{q(z_t|x)}[log p(x|z_t)]"
    with pytest.raises(fm.FormulaCheckError, match=r"matches more than one declaration"):
        check(text, "q(z|x)", "q(z'|x)", "p(x|z)")


def test_two_player_prefix_is_kept():
    sigs = (("p_{data}(x)", "data"), ("D(x)", "function"), ("G(z)", "function"))
    checked = check_text(r"\min_G \max_D \mathbb{E}_{x \sim p_{data}(x)}[\log D(x)]", sigs)
    assert checked.players == (("min", ("G",)), ("max", ("D",)))


def test_compile_errors_are_formula_errors_not_tracebacks():
    q, p, prior = vae()
    with pytest.raises(fm.FormulaSyntaxError):
        fm.compile("E_q(z|x)[log p(x|z)", [q, p, prior])
    with pytest.raises(fm.FormulaCheckError):
        fm.compile("E_q(z|x)[log r(x|z)]", [q, p, prior])
    with pytest.raises(fm.FormulaError, match="not a declared distribution"):
        fm.compile("E_q(z|x)[log p(x|z)]", [q, p, torch.nn.Linear(2, 2)])


def test_missing_and_misshaped_inputs():
    q, p, prior = vae()
    elbo = fm.compile("E_q(z|x)[log p(x|z)] - beta KL(q(z|x)||p(z))", [q, p, prior])
    with pytest.raises(fm.FormulaInputError, match=r"missing input x \(\[batch, \*event\]\)"):
        elbo(beta=1.0)
    with pytest.raises(fm.FormulaInputError, match=r"missing input beta"):
        elbo(x=torch.zeros(3, 6))
    with pytest.raises(fm.FormulaInputError, match=r"unexpected input bta; this objective takes beta, x"):
        elbo(x=torch.zeros(3, 6), bta=1.0)
    with pytest.raises(fm.FormulaInputError, match=r"input x must be a tensor \[batch, \*event\], got float"):
        elbo(x=1.0, beta=1.0)
    with pytest.raises(fm.FormulaInputError, match=r"failed (with inputs|on) x \[3, 5\]"):
        elbo(x=torch.zeros(3, 5), beta=1.0)


def test_cached_plan_is_shared():
    q, p, prior = vae()
    a = fm.compile("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))", [q, p, prior])
    b = fm.compile("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))", [q, p, prior])
    assert a._plan is b._plan
