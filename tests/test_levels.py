"""Per-level sums over a hierarchy (issue 12, item 3): `\\sum_{l=2}^{L} E_{q(z_{<l}|x)}[KL(q(z_l|x, z_{<l}) ||
p(z_l|z_{<l}))]` draws z_1, z_2, ... one level at a time, each level with its own network (fm.PerIndex), against
a hand-written three-level hierarchy at fixed seeds; the ladder that silently reused q(z_1|x) is a check error."""

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

import formula as fm
from formula.families.per_index import PerIndex
from models import Gaussian, X, Z

B, L = 5, 3
HIER = r"\sum_{l=2}^{L} E_{q(z_{<l}|x)}[KL(q(z_l | x, z_{<l}) \| p(z_l | z_{<l}))]"


class Flat(nn.Module):
    """A Gaussian net of its inputs with every slice [batch, length, Z] flattened to [batch, length * Z]."""

    def __init__(self, n_in):
        super().__init__()
        self.gauss = Gaussian(n_in)

    def forward(self, *args):
        return self.gauss(*[a.flatten(1) if a.dim() == 3 else a for a in args])


def hierarchy():
    torch.manual_seed(0)
    q1 = fm.Normal("q(z_1|x)", net=Gaussian(X))
    ql = fm.Normal("q(z_l|x,z_{<l})", net=PerIndex([Flat(X + (l - 1) * Z) for l in range(2, L + 1)], first=2))
    pl = fm.Normal("p(z_l|z_{<l})", net=PerIndex([Flat((l - 1) * Z) for l in range(2, L + 1)], first=2))
    return q1, ql, pl


def normal(params):
    return Independent(Normal(params["loc"], params["scale"]), 1)


def by_hand(q1, ql, pl, x):
    """One ancestral draw z_1, z_2 (z_3 is never needed: the KL of level 3 is closed form), each level's nets."""
    z = [normal(q1.net(x)).rsample()]
    total = 0.0
    for l in range(2, L + 1):
        prefix = torch.stack(z, 1)
        q, p = normal(ql.net.nets[l - 2](x, prefix)), normal(pl.net.nets[l - 2](prefix))
        total = total + kl_divergence(q, p)
        if l < L:
            z.append(q.rsample())
    return total


def test_per_level_sum_uses_each_levels_own_draws_and_networks():
    q1, ql, pl = hierarchy()
    obj = fm.compile(HIER, [q1, ql, pl])
    assert obj.inputs == ("L", "x")
    x = torch.rand(B, X)
    torch.manual_seed(3)
    value = obj(x=x, L=L)
    torch.manual_seed(3)
    hand = by_hand(q1, ql, pl, x)
    torch.testing.assert_close(value, hand)
    params = list(obj.parameters())
    grads = torch.autograd.grad(value.sum(), params, allow_unused=True)
    torch.manual_seed(3)
    hand_grads = torch.autograd.grad(by_hand(q1, ql, pl, x).sum(), params, allow_unused=True)
    for g, h in zip(grads, hand_grads):
        assert (g is None) == (h is None)
        if g is not None:
            torch.testing.assert_close(g, h)
    # every level's network took part: the last level's nets have gradients
    last = ql.net.nets[1].gauss.loc.weight
    (at,) = [i for i, p in enumerate(params) if p is last]
    assert grads[at] is not None and grads[at].abs().sum() > 0


def test_the_plan_says_level_by_level():
    obj = fm.compile(HIER, list(hierarchy()))
    explained = obj.explain()
    assert "level by level" in explained and "draw z_1 ~ q(z_1|x)" in explained


def test_a_ladder_over_a_fixed_level_declaration_is_a_check_error():
    """q(z_{l-1}|x) resolved by letter to q(z_1|x) gave every level z_1's draw: now an error with a caret."""
    torch.manual_seed(0)
    decls = [fm.Normal("q(z_1|x)", net=Gaussian(X)), fm.Normal("q(z_l|z_{l-1},x)", net=Gaussian(Z + X)),
             fm.Normal("p(z_l|z_{l-1})", net=Gaussian(Z))]
    text = r"\sum_{l=2}^{L} E_{q(z_{l-1}|x)}[KL(q(z_l|z_{l-1},x) || p(z_l|z_{l-1}))]"
    with pytest.raises(fm.FormulaCheckError, match="declared for z_1 only") as err:
        fm.compile(text, decls)
    assert err.value.span is not None and text[err.value.span[0]:err.value.span[1]] == "q(z_{l-1}|x)"
    assert "z_{<l}" in str(err.value)


def test_a_level_without_a_network_is_an_input_error():
    q1, ql, pl = hierarchy()
    obj = fm.compile(HIER, [q1, ql, pl])
    with pytest.raises(fm.FormulaInputError, match="no network for index value 4"):
        obj(x=torch.rand(B, X), L=L + 1)


def test_nothing_declared_per_level_says_what_to_declare():
    torch.manual_seed(0)
    decls = [fm.Normal("p(z_l|z_{<l})", net=Gaussian(Z)), fm.Normal("r(z|x)", net=Gaussian(X))]
    with pytest.raises(fm.FormulaCheckError, match=r"declare q\(z_l\|x, z_\{<l\}\)"):
        fm.compile(HIER, decls)


def test_a_declaration_of_one_step_is_not_used_for_another():
    """q(z_1|x) used as q(z_2|x) would silently give z_2 the first step's network."""
    torch.manual_seed(0)
    decls = [fm.Normal("q(z_1|x)", net=Gaussian(X)), fm.Normal("p(z_2)", loc=0.0, scale=1.0, shape=(Z,))]
    with pytest.raises(fm.FormulaCheckError, match="declared for z_1 only"):
        fm.compile("KL(q(z_2|x) || p(z_2))", decls)


def test_a_sum_from_the_first_level_gives_level_one_an_empty_prefix():
    """`\\sum_{l=1}^{L}` with no first-level declaration: the generic declarations (shape= given) draw z_1 too, their
    level-1 networks getting z_{<1} as [batch, 0, Z]; the same as the hand-written hierarchy from an empty stack."""
    torch.manual_seed(0)
    ql = fm.Normal("q(z_l|x,z_{<l})", net=PerIndex([Flat(X + l * Z) for l in range(L)]), shape=(Z,))
    pl = fm.Normal("p(z_l|z_{<l})", net=PerIndex([Flat(l * Z) for l in range(L)]), shape=(Z,))
    obj = fm.compile(HIER.replace("l=2", "l=1"), [ql, pl])
    x = torch.rand(B, X)
    torch.manual_seed(3)
    value = obj(x=x, L=L)
    torch.manual_seed(3)
    z, hand = [], 0.0
    for l in range(1, L + 1):
        prefix = torch.stack(z, 1) if z else torch.zeros(B, 0, Z)
        q, p = normal(ql.net.nets[l - 1](x, prefix)), normal(pl.net.nets[l - 1](prefix))
        hand = hand + kl_divergence(q, p)
        if l < L:
            z.append(q.rsample())
    torch.testing.assert_close(value, hand)


def test_one_level_given_as_an_input_runs_that_levels_networks():
    """`E_{q(z_{<l}|x)}[KL(q(z_l|x, z_{<l}) || p(z_l|z_{<l}))]` with `l=3` passed: one group's KL, each PerIndex
    at the level the input says (it used to find no level outside a sum), against the hand-written level 3."""
    q1, ql, pl = hierarchy()
    obj = fm.compile(r"E_{q(z_{<l}|x)}[KL(q(z_l | x, z_{<l}) \| p(z_l | z_{<l}))]", [q1, ql, pl])
    x = torch.rand(B, X)
    torch.manual_seed(3)
    value = obj(x=x, l=3)
    torch.manual_seed(3)
    z = [normal(q1.net(x)).rsample()]
    z.append(normal(ql.net.nets[0](x, torch.stack(z, 1))).rsample())
    prefix = torch.stack(z, 1)
    hand = kl_divergence(normal(ql.net.nets[1](x, prefix)), normal(pl.net.nets[1](prefix)))
    torch.testing.assert_close(value, hand)
