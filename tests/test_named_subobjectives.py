"""Named sub-objectives (issue 12 item 7): `\\mathcal{L}(x, y) = ...` on its own line, used in the objective with its
arguments substituted, is the same objective as the bodies written out, with the same draws; terms are named by
the use. Circular and repeated definitions are check errors; a declared name is never a sub-objective."""

import pytest
import torch

import formula as fm
from models import C, Gaussian, Logits, X, Z, vae

ELBO_LINE = r"\mathcal{L}(x) = \mathbb{E}_{q(z|x)}[\log p(x|z)] - D_{KL}(q(z|x) \| p(z))" + "\n"


def _same(text_a, text_b, decls, **inputs):
    a, b = fm.compile(text_a, decls), fm.compile(text_b, decls)
    torch.manual_seed(0)
    va, ta = a.evaluate(**inputs)
    torch.manual_seed(0)
    vb, _ = b.evaluate(**inputs)
    torch.testing.assert_close(va, vb)
    return a, ta


def test_a_sub_objective_used_twice_equals_its_bodies_written_out():
    x = torch.rand(4, X).round()
    obj, terms = _same(ELBO_LINE + r"\mathcal{L}(x) + \beta \mathcal{L}(x')",
                       r"E_{q(z|x)}[\log p(x|z)] - KL(q(z|x) || p(z)) + \beta (E_{q(z|x')}[\log p(x'|z)] "
                       r"- KL(q(z|x') || p(z)))", vae(), x=x, beta=0.5, **{"x'": x.flip(0)})
    assert obj.term_names == ("L(x)", "beta * L(x')") and set(terms) == set(obj.term_names)


def test_arguments_are_substituted_simultaneously():
    q = fm.Normal("q(z|x,y)", net=Gaussian(X + C))
    text = r"\mathcal{L}(x, y) = \mathbb{E}_{q(z|x,y)}[\log p(x|z,y)]" + "\n" + r"\mathcal{L}(x, y)"
    p = fm.Bernoulli("p(x|z,y)", net=Logits(Z + C))
    torch.manual_seed(1)
    x, y = torch.rand(3, X).round(), torch.randint(0, C, (3,))
    _same(text, r"E_{q(z|x,y)}[\log p(x|z,y)]", [q, p], x=x, y=y)
    with pytest.raises(fm.FormulaCheckError):  # L(y, x) swaps them: q(z|y, x) is not declared
        fm.compile(text[:-len(r"\mathcal{L}(x, y)")] + r"\mathcal{L}(y, x)", [q, p])


def test_circular_and_repeated_sub_objectives_are_check_errors():
    with pytest.raises(fm.FormulaCheckError, match="circular"):
        fm.compile("A(x) = B(x) + 1\nB(x) = A(x)\nA(x)", [])
    with pytest.raises(fm.FormulaCheckError, match=r"does not match the sub-objective A\(x\): give it 1 argument"):
        fm.compile("A(x) = x\nA(x, y)", [])
    with pytest.raises(fm.FormulaCheckError, match="defined twice"):
        fm.compile("A(x) = x\nA(x) = 2 * x\nA(x)", [])


def test_a_declared_name_is_not_a_sub_objective():
    # p(x, z) = p(x|z) p(z) stays a factorisation line
    obj = fm.compile("p(x,z) = p(x|z) p(z)\nE_{q(z|x)}[log p(x,z) - log q(z|x)]", vae())
    assert "L(" not in obj.explain()
