"""Suffix slices (issue 12, item 1): `x_{\\geq t}` (`\\ge`, ASCII `>=`, Unicode `≥`) is steps t..T of a sequence
and `x_{>t}` steps t+1..T, the same as `x_{t:T}` and `x_{t+1:T}`: they parse, print back in every spelling,
check and compile, in a function's argument, in a declaration's conditions and as a slice of draws. Against
hand-written slices of the same tensors."""

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

import formula as fm
import formula.lang.nodes as n
from formula.lang.parser import parse
from formula.text.printing import to_ascii, to_latex
from formula.text.symbolic import pretty

B, T, X, Z = 3, 5, 2, 2


def sequence(seed=1):
    return torch.randn(B, T, X, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("written, inclusive", [
    (r"x_{\geq t}", True), (r"x_{\ge t}", True), ("x_{>=t}", True), ("x_{≥t}", True), ("x_{>t}", False)])
def test_a_suffix_parses_to_one_node(written, inclusive):
    (v,) = parse(written).statements
    assert v == n.Var("x", (n.After(n.Var("t"), inclusive=inclusive),))


@pytest.mark.parametrize("written", [r"f(x_{\geq t}) + g(z_{>t-1})", r"q(z_t|z_{t-1}, x_{\geq t})"])
def test_a_suffix_prints_back_in_every_spelling(written):
    tree = parse(written)
    assert parse(to_ascii(tree)) == tree
    assert parse(to_latex(tree)) == tree
    assert parse(pretty(tree)) == tree
    assert r"\geq t" in to_latex(tree) and ">=t" in to_ascii(tree).replace(" ", "") or ">t" in to_ascii(tree)


def test_equivalence_keeps_strict_and_inclusive_apart():
    assert fm.equivalent(r"\sum_t f(x_{\geq t})", "sum_t f(x_{>=t})")
    assert not fm.equivalent(r"\sum_t f(x_{\geq t})", "sum_t f(x_{>t})")


@pytest.mark.parametrize("written, lo", [(r"x_{\geq t}", 0), (r"x_{\ge t}", 0), ("x_{>t}", 1)])
def test_a_suffix_of_an_input_is_the_hand_written_slice(written, lo):
    """Steps t..T (or t+1..T: empty at t = T) reach the net as `x[:, t-1+lo:]`."""
    seen = []

    def net(s):
        seen.append(tuple(s.shape))
        return (s * torch.arange(1, s.shape[1] + 1, dtype=s.dtype).view(1, -1, 1)).sum((1, 2))

    f = fm.Function(f"f({written})", net=net)
    obj = fm.compile(rf"\sum_{{t=1}}^{{T}} f({written})", [f])
    x = sequence()
    value = obj(x=x)
    assert seen == [(B, T - (t - 1 + lo), X) for t in range(1, T + 1)]
    hand = sum(net(x[:, t - 1 + lo:]) for t in range(1, T + 1))
    torch.testing.assert_close(value, hand)
    same = fm.compile(rf"\sum_{{t=1}}^{{T}} f(x_{{t+{lo}:T}})", [fm.Function(f"f(x_{{t+{lo}:T}})", net=net)])
    torch.testing.assert_close(same(x=x), hand)


def test_a_suffix_ends_at_a_given_T():
    f = fm.Function(r"f(x_{\geq t})", net=lambda s: s.sum((1, 2)))
    obj = fm.compile(r"\sum_{t=1}^{T} f(x_{\geq t})", [f])
    x = sequence()
    torch.testing.assert_close(obj(x=x, T=3), sum(x[:, t - 1:3].sum((1, 2)) for t in range(1, 4)))


class Backward(nn.Module):
    """q(z_t | z_{t-1}, x_{>=t}): a Gaussian of the previous draw and the mean of the steps from t on."""

    def __init__(self):
        super().__init__()
        self.lin, self.seen = nn.Linear(Z + X, 2 * Z), []

    def forward(self, z, xs):
        self.seen.append(tuple(xs.shape))
        loc, s = self.lin(torch.cat([z, xs.mean(1)], -1)).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(s) + 1e-3}


def test_a_suffix_in_a_declarations_conditions_is_what_a_backward_encoder_reads():
    """Krishnan's structured posterior `q(z_t|z_{t-1}, x_{t:T})` written with `\\geq`: each step's net gets the
    steps from t on, and the bound is the hand-written loop with the same draws."""
    torch.manual_seed(0)
    q = fm.Normal(r"q(z_t|z_{t-1}, x_{\geq t})", net=Backward())
    emit = nn.Linear(Z, X)
    p = fm.Normal("p(x_t|z_t)", net=lambda z: {"loc": emit(z), "scale": torch.ones_like(emit(z))})
    obj = fm.compile(r"\sum_{t=1}^{T} E_{q(z_t|z_{t-1}, x_{\geq t})}[\log p(x_t|z_t)]", [q, p])
    assert obj.inputs == ("x", "z_0")
    x, z0 = sequence(), torch.zeros(B, Z)
    torch.manual_seed(4)
    value = obj(x=x, z_0=z0)
    assert q.net.seen == [(B, T - t + 1, X) for t in range(1, T + 1)]
    torch.manual_seed(4)
    z, hand = z0, 0.0
    for t in range(1, T + 1):
        params = q.net(z, x[:, t - 1:])
        z = Independent(Normal(params["loc"], params["scale"]), 1).rsample()
        hand = hand + Independent(Normal(emit(z), 1.0), 1).log_prob(x[:, t - 1])
    torch.testing.assert_close(value, hand)


def test_a_suffix_of_draws_stacks_the_later_levels():
    """Inside `E_{q(z_{\\le T}|x)}`, `z_{>t}` is the draws of steps t+1..T stacked, `z_{\\geq t}` from t."""
    torch.manual_seed(0)
    first = fm.Normal("q(z_1|x)", net=lambda x: {"loc": x.mean(1), "scale": torch.ones(B, Z)})
    step = fm.Normal("q(z_l|x, z_{<l})", net=lambda x, zs: {"loc": zs.sum(1), "scale": torch.ones(B, Z)})
    g = fm.Function(r"g(z_{\geq t})", net=lambda s: (s ** 2).sum((1, 2)))
    h = fm.Function("h(z_{>t})", net=lambda s: s.sum((1, 2)))
    obj = fm.compile(r"E_{q(z_{\le L}|x)}[\sum_{t=1}^{L} g(z_{\geq t}) + h(z_{>t})]", [first, step, g, h])
    x = sequence()
    torch.manual_seed(5)
    value = obj(x=x, L=3)
    torch.manual_seed(5)
    zs = [Independent(Normal(x.mean(1), torch.ones(B, Z)), 1).rsample()]
    for _ in range(2):
        zs.append(Independent(Normal(torch.stack(zs, 1).sum(1), torch.ones(B, Z)), 1).rsample())
    s = torch.stack(zs, 1)
    hand = sum((s[:, t - 1:] ** 2).sum((1, 2)) + s[:, t:].sum((1, 2)) for t in range(1, 4))
    torch.testing.assert_close(value, hand)


def test_other_relations_in_an_index_are_syntax_errors_naming_the_four_forms():
    with pytest.raises(fm.FormulaSyntaxError, match=r"\\geq t or >t"):
        parse(r"x_{\neq t}")
