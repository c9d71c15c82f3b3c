"""Prefix and range indices as slices of a sequence (issue 12, item 1): `x_{<t}`, `x_{\\le t}`, `x_{1:t}`,
`x_{t:T}` reach a net as `[batch, length, ...]` (the length grows with t; `x_{<1}` is `[batch, 0, ...]`, and so is
`z_{<1}` where its declaration gives shape=), and
`q(z_{\\le T}|x_{\\le T}) = \\prod_t q(z_t | x_{\\le t}, z_{<t})` is a factorisation line: the expectation over
it draws z_1, ..., z_T one step at a time, each step seeing the draws before it. Against hand-written loops."""

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

import formula as fm
from models import X, Z

B, T = 5, 4


class Summary(nn.Module):
    """A Gaussian net of its inputs, each slice [batch, length, d] summed over its steps (0 for an empty one);
    records the shapes it is given."""

    def __init__(self, *sizes, n_out=Z, bernoulli=False):
        super().__init__()
        self.lin, self.seen, self.bernoulli = nn.Linear(sum(sizes), 2 * n_out), [], bernoulli
        self.n_out = n_out

    def forward(self, *args):
        self.seen.append(tuple(tuple(a.shape) for a in args))
        h = self.lin(torch.cat([a.sum(1) if a.dim() == 3 else a for a in args], -1))
        if self.bernoulli:
            return {"logits": h[..., :self.n_out]}
        return {"loc": h[..., :self.n_out], "scale": nn.functional.softplus(h[..., self.n_out:]) + 1e-3}


def normal(params):
    return Independent(Normal(params["loc"], params["scale"]), 1)


def bern(params):
    return Independent(Bernoulli(logits=params["logits"]), 1)


def sequence():
    return torch.bernoulli(torch.full((B, T, X), 0.5), generator=torch.Generator().manual_seed(1))


def test_prefix_slices_of_an_input_reach_the_nets_with_growing_length():
    torch.manual_seed(0)
    q = fm.Normal(r"q(z_t|x_{\le t})", net=Summary(X))
    p = fm.Bernoulli("p(x_t|z_t,x_{<t})", net=Summary(Z, X, n_out=X, bernoulli=True))
    obj = fm.compile(r"\sum_{t=1}^{T} E_{q(z_t|x_{\le t})}[\log p(x_t|z_t, x_{<t})]", [q, p])
    assert obj.inputs == ("x",)
    x = sequence()
    torch.manual_seed(2)
    value = obj(x=x)
    assert q.net.seen == [((B, t, X),) for t in range(1, T + 1)]
    assert p.net.seen == [((B, Z), (B, t - 1, X)) for t in range(1, T + 1)]
    torch.manual_seed(2)
    hand = 0.0
    for t in range(1, T + 1):
        z = normal(q.net(x[:, :t])).rsample()
        hand = hand + bern(p.net(z, x[:, :t - 1])).log_prob(x[:, t - 1])
    torch.testing.assert_close(value, hand)


@pytest.mark.parametrize("written, lo, hi", [("x_{1:t}", 1, None), (r"x_{\leq t}", 1, None), ("x_{t:T}", None, T)])
def test_range_slices(written, lo, hi):
    """`x_{1:t}` is `x_{\\le t}`; `x_{t:T}` runs from step t to the end (what a backward RNN reads)."""
    torch.manual_seed(0)
    f = fm.Function(f"f({written})", net=lambda s: s.sum((1, 2)))
    obj = fm.compile(rf"\sum_{{t=1}}^{{T}} f({written})", [f])
    x = sequence()
    value = obj(x=x)
    hand = sum(x[:, (lo or t) - 1:(hi or t)].sum((1, 2)) for t in range(1, T + 1))
    torch.testing.assert_close(value, hand)


FACTORISED = (r"q(z_{\le T}|x_{\le T}) = \prod_t q(z_t | x_{\le t}, z_{<t})" "\n"
              r"E_{q(z_{\le T}|x_{\le T})}[\sum_{t=1}^{T} \log p(x_t|z_t)]")


def factorised():
    torch.manual_seed(0)
    first = fm.Normal(r"q(z_1|x_{\le 1})", net=Summary(X))
    step = fm.Normal(r"q(z_t|x_{\le t},z_{<t})", net=Summary(X, Z))
    emit = fm.Bernoulli("p(x_t|z_t)", net=Summary(Z, n_out=X, bernoulli=True))
    return first, step, emit


def test_a_factorisation_over_steps_draws_each_step_after_the_previous_ones():
    first, step, emit = factorised()
    obj = fm.compile(FACTORISED, [first, step, emit])
    assert obj.inputs == ("x",)
    x = sequence()
    torch.manual_seed(3)
    value = obj(x=x)
    assert step.net.seen == [((B, t, X), (B, t - 1, Z)) for t in range(2, T + 1)]
    torch.manual_seed(3)
    zs = [normal(first.net(x[:, :1])).rsample()]
    for t in range(2, T + 1):
        zs.append(normal(step.net(x[:, :t], torch.stack(zs, 1))).rsample())
    hand = sum(bern(emit.net(zs[t])).log_prob(x[:, t]) for t in range(T))
    torch.testing.assert_close(value, hand)
    assert "level by level" in obj.explain()


def test_a_length_shorter_than_the_data():
    first, step, emit = factorised()
    obj = fm.compile(FACTORISED, [first, step, emit])
    assert obj(x=sequence(), T=2).shape == (B,)
    assert len(step.net.seen) == 1


def test_an_empty_prefix_of_draws_is_an_input_error_with_a_hint():
    """z_{<1} has no draws and no known size (no shape= on its declaration): a clear error, never a silent value."""
    _, step, emit = factorised()
    obj = fm.compile(FACTORISED, [step, emit])
    with pytest.raises(fm.FormulaInputError, match="empty"):
        obj(x=sequence())


def test_a_level_generic_declaration_with_a_shape_draws_the_first_level_from_an_empty_prefix():
    """Without a first-level declaration, `q(z_t|x_{\\le t}, z_{<t})` draws z_1 too: its net gets z_{<1} as
    `[batch, 0, *shape]` (the declaration's shape=), as a hand-written loop starting from an empty stack does."""
    _, _, emit = factorised()
    step = fm.Normal(r"q(z_t|x_{\le t},z_{<t})", net=Summary(X, Z), shape=(Z,))
    obj = fm.compile(FACTORISED, [step, emit])
    x = sequence()
    torch.manual_seed(3)
    value = obj(x=x)
    assert step.net.seen == [((B, t, X), (B, t - 1, Z)) for t in range(1, T + 1)]
    torch.manual_seed(3)
    zs = []
    for t in range(1, T + 1):
        before = torch.stack(zs, 1) if zs else torch.zeros(B, 0, Z)
        zs.append(normal(step.net(x[:, :t], before)).rsample())
    hand = sum(bern(emit.net(zs[t])).log_prob(x[:, t]) for t in range(T))
    torch.testing.assert_close(value, hand)


def test_an_empty_prefix_without_a_shape_says_to_pass_one():
    _, step, emit = factorised()
    obj = fm.compile(FACTORISED, [step, emit])
    with pytest.raises(fm.FormulaInputError, match=r"pass shape=\(\.\.\.\) to the declaration over z"):
        obj(x=sequence())


def test_a_slice_of_a_latent_nobody_draws_is_a_check_error():
    torch.manual_seed(0)
    q = fm.Normal("q(z|x)", net=Summary(X))
    f = fm.Function("f(z_{<t})", net=lambda s: s.sum((1, 2)))
    with pytest.raises(fm.FormulaCheckError, match="no enclosing expectation draws it"):
        fm.compile(r"E_{q(z|x)}[\sum_{t=1}^{T} f(z_{<t})]", [q, f])
