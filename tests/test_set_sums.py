"""Sums over a set of inputs (issue 12, item 10): GQN's `r = \\sum_{i=1}^{N} f(x_i, v_i)` over a varying number of
context views, given as `[batch, N_max, ...]` with `N=` the number of views of each example (a `[batch]` tensor;
the padding after them is masked out). Against hand-written masked sums and a hand-written GQN ELBO."""

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

import formula as fm
from test_sequence_functions import Gauss as SequenceGauss, normal

B, NMAX, X, V, R, Z = 5, 4, 3, 2, 6, 2


class Rep(nn.Module):
    """f(x, v): counts its calls and records the shapes it was given."""

    def __init__(self):
        super().__init__()
        self.lin, self.calls = nn.Linear(X + V, R), []

    def forward(self, x, v):
        self.calls.append((tuple(x.shape), tuple(v.shape)))
        return torch.tanh(self.lin(torch.cat([x, v], -1)))


def Gauss(n_in, n_out=Z):
    """A diagonal Gaussian of the concatenated arguments (test_sequence_functions'), over Z by default."""
    return SequenceGauss(n_in, n_out)


GQN = (r"r = \sum_{i=1}^{N} f(x_i, v_i)" "\n"
       r"\mathbb{E}_{q(z|x^q, r, v^q)}[\log p(x^q|z, r, v^q)] - D_{KL}(q(z|x^q, r, v^q) \| p(z|r, v^q))")


def gqn(text=GQN):
    f, q, p, dec = Rep(), Gauss(X + R + V), Gauss(R + V), Gauss(Z + R + V, X)
    decls = [fm.Function("f(x, v)", net=f), fm.Normal("q(z|x^q, r, v^q)", net=q), fm.Normal("p(z|r, v^q)", net=p),
             fm.Normal("p(x^q|z, r, v^q)", net=dec)]
    return fm.compile(text, decls), (f, q, p, dec)


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, v = torch.randn(B, NMAX, X, generator=g), torch.randn(B, NMAX, V, generator=g)
    counts = torch.tensor([1, 4, 2, 3, 0])
    return x, v, counts, torch.randn(B, X, generator=g), torch.randn(B, V, generator=g)


def masked_r(f, x, v, counts):
    """The representation by hand: each example's first counts[b] views through f, one by one, summed."""
    rows = []
    for b in range(B):
        r = torch.zeros(R)
        for i in range(int(counts[b])):
            r = r + torch.tanh(f.lin(torch.cat([x[b, i], v[b, i]], -1)))
        rows.append(r)
    return torch.stack(rows)


def test_the_gqn_elbo_equals_a_hand_written_one_with_a_varying_number_of_views():
    obj, (f, q, p, dec) = gqn()
    x, v, counts, xq, vq = data()
    torch.manual_seed(3)
    got = obj(x=x, v=v, N=counts, **{"x^q": xq, "v^q": vq})
    r = masked_r(f, x, v, counts)
    torch.manual_seed(3)
    post = normal(q(xq, r, vq))
    z = post.rsample()
    want = normal(dec(z, r, vq)).log_prob(xq) - kl_divergence(post, normal(p(r, vq)))
    torch.testing.assert_close(got, want)


def test_the_views_reach_the_net_in_one_call_along_a_leading_dimension():
    obj, (f, *_) = gqn()
    x, v, counts, xq, vq = data()
    f.calls.clear()
    obj(x=x, v=v, N=counts, **{"x^q": xq, "v^q": vq})
    assert f.calls == [((NMAX, B, X), (NMAX, B, V))]  # r is used four times, computed once
    assert "one vectorised pass" in obj.explain()


def test_padding_views_add_nothing_and_get_no_gradient():
    obj, (f, *_) = gqn()
    x, v, counts, xq, vq = data()
    x = x.clone().requires_grad_()
    obj(x=x, v=v, N=counts, **{"x^q": xq, "v^q": vq}).sum().backward()
    for b in range(B):
        assert torch.all(x.grad[b, int(counts[b]):] == 0)
        if counts[b] > 0:
            assert x.grad[b, :int(counts[b])].abs().sum() > 0
    junk = x.detach().clone()
    for b in range(B):
        junk[b, int(counts[b]):] = 1e3  # whatever the padding holds
    torch.manual_seed(0)
    a = obj(x=x.detach(), v=v, N=counts, **{"x^q": xq, "v^q": vq})
    torch.manual_seed(0)
    b_ = obj(x=junk, v=v, N=counts, **{"x^q": xq, "v^q": vq})
    torch.testing.assert_close(a, b_)


def representation(counts_kw, text=r"r = \sum_{i=1}^{N} f(x_i, v_i)" "\n" r"\log p(y|r)"):
    f, head = Rep(), Gauss(R, 1)
    obj = fm.compile(text, [fm.Function("f(x, v)", net=f), fm.Normal("p(y|r)", net=head)])
    x, v, *_ = data()
    y = torch.randn(B, 1)
    got = obj(x=x, v=v, y=y, **counts_kw)
    return got, f, head, x, v, y


@pytest.mark.parametrize("kw, counts", [({}, [NMAX] * B), ({"N": 2}, [2] * B), ({"N": torch.tensor(3)}, [3] * B),
                                        ({"N": torch.tensor([4, 0, 1, 2, 3])}, [4, 0, 1, 2, 3])])
def test_the_upper_bound_is_the_sets_length_a_number_or_counts_per_example(kw, counts):
    got, f, head, x, v, y = representation(kw)
    want = normal(head(masked_r(f, x, v, torch.tensor(counts)))).log_prob(y)
    torch.testing.assert_close(got, want)


def test_a_numeric_bound_and_a_later_first_element():
    got, f, head, x, v, y = representation({}, r"r = \sum_{i=2}^{3} f(x_i, v_i)" "\n" r"\log p(y|r)")
    r = torch.tanh(f.lin(torch.cat([x[:, 1:3], v[:, 1:3]], -1))).sum(1)
    torch.testing.assert_close(got, normal(head(r)).log_prob(y))


def test_the_papers_superscript_views_are_the_sums_index():
    text = r"\mathbf{r} = \sum_{i=1}^{N} f(\mathbf{x}^i, \mathbf{v}^i)" "\n" r"\log p(y|\mathbf{r})"
    got, f, head, x, v, y = representation({"N": torch.tensor([4, 0, 1, 2, 3])}, text)
    want = normal(head(masked_r(f, x, v, torch.tensor([4, 0, 1, 2, 3])))).log_prob(y)
    torch.testing.assert_close(got, want)


def test_a_likelihood_summed_over_a_set_in_the_objective_itself():
    """`\\sum_i \\log p(x_i|z)`: every view scored under one latent, masked per example, no definition line."""
    q, dec = Gauss(1), Gauss(Z, X)
    obj = fm.compile(r"\mathbb{E}_{q(z|y)}[\sum_{i=1}^{N} \log p(x_i|z)] - KL(q(z|y) || p(z))",
                     [fm.Normal("q(z|y)", net=q), fm.Normal("p(x|z)", net=dec),
                      fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))])
    x, _, counts, *_ = data()
    y = torch.randn(B, 1)
    torch.manual_seed(1)
    got = obj(x=x, y=y, N=counts)
    torch.manual_seed(1)
    post = normal(q(y))
    z = post.rsample()
    lik = torch.stack([sum((normal(dec(z[b])).log_prob(x[b, i]) for i in range(int(counts[b]))), torch.tensor(0.))
                       for b in range(B)])
    prior = Independent(Normal(torch.zeros(Z), torch.ones(Z)), 1)
    torch.testing.assert_close(got, lik - kl_divergence(post, prior))


def test_several_draws_per_example_replicate_the_counts():
    _, (f, q, p, dec) = gqn()
    three = fm.compile(GQN, [fm.Function("f(x, v)", net=f), fm.Normal("q(z|x^q, r, v^q)", net=q),
                             fm.Normal("p(z|r, v^q)", net=p), fm.Normal("p(x^q|z, r, v^q)", net=dec)], samples=3)
    x, v, counts, xq, vq = data()
    terms = three.terms(x=x, v=v, N=counts, **{"x^q": xq, "v^q": vq})
    r = masked_r(f, x, v, counts)
    kl = kl_divergence(normal(q(xq, r, vq)), normal(p(r, vq)))  # closed form: the same for every draw
    torch.testing.assert_close(terms["KL(q(z|x^q, r, v^q) || p(z|r, v^q))"], kl)


@pytest.mark.parametrize("kw, message", [
    ({"N": torch.tensor([5, 1, 1, 1, 1])}, "must count 0..4"),
    ({"N": torch.tensor([1, 2])}, "2 counts for a batch of 5"),
    ({"N": 7}, "the sets have 4 elements"),
    ({"N": torch.tensor([1.5, 1, 1, 1, 1])}, "whole numbers"),
])
def test_counts_that_do_not_fit_the_sets_are_input_errors(kw, message):
    obj, _ = gqn()
    x, v, _, xq, vq = data()
    with pytest.raises(fm.FormulaInputError, match=message):
        obj(x=x, v=v, **kw, **{"x^q": xq, "v^q": vq})


def test_sets_of_different_lengths_are_an_input_error():
    obj, _ = gqn()
    x, v, counts, xq, vq = data()
    with pytest.raises(fm.FormulaInputError, match="have 4 and 3 elements"):
        obj(x=x, v=v[:, :3], N=counts, **{"x^q": xq, "v^q": vq})


def test_a_sum_that_uses_its_index_as_a_number_stays_step_by_step():
    obj = fm.compile(r"\sum_{t=1}^{T} \log p(x_t|t)", [fm.Normal("p(x|t)", net=StepNet())])
    assert "step by step" in obj.explain() and "vectorised" not in obj.explain()
    obj(x=torch.randn(B, 3, X))


class StepNet(nn.Module):
    def forward(self, t):
        assert isinstance(t, int)
        return {"loc": torch.full((X,), float(t)), "scale": torch.ones(X)}


def test_a_set_sum_inside_an_exact_sum_sees_the_enumerated_values():
    """`\\sum_y q(y|w) \\sum_i \\log p(x_i|y)`: every view scored under every value of y, masked per example."""
    C = 3
    qy = fm.Categorical("q(y|w)", net=lambda w: {"logits": w})
    lik = Gauss(C, X)
    onehot = lambda y: nn.functional.one_hot(y, C).to(torch.get_default_dtype())  # noqa: E731
    obj = fm.compile(r"\sum_y q(y|w) \sum_{i=1}^{N} \log p(x_i|y)",
                     [qy, fm.Normal("p(x|y)", net=lambda y: lik(onehot(y)))])
    x, _, counts, *_ = data()
    w = torch.randn(B, C)
    got = obj(x=x, w=w, N=counts)
    probs = torch.softmax(w, -1)
    want = torch.stack([sum(probs[b, c] * sum((normal(lik(onehot(torch.tensor(c)))).log_prob(x[b, i])
                                               for i in range(int(counts[b]))), torch.tensor(0.))
                            for c in range(C)) for b in range(B)])
    torch.testing.assert_close(got, want)


def test_a_step_by_step_sum_in_a_definition_line():
    """`s = \\sum_{t=1}^{T} g(x_t, t)` uses t as a number, so it loops; its steps no longer key the definition's
    memo outside the sum (that raised 'no value for t')."""
    g, head = fm.Function("g(x, t)", net=lambda x, t: x[..., :2] * t), Gauss(2, 1)
    obj = fm.compile("s = \\sum_{t=1}^{T} g(x_t, t)\n\\log p(y|s)", [g, fm.Normal("p(y|s)", net=head)])
    assert "step by step" in obj.explain()
    x, y = torch.randn(B, 3, X), torch.randn(B, 1)
    s = sum(x[:, t - 1, :2] * t for t in (1, 2, 3))
    torch.testing.assert_close(obj(x=x, y=y), normal(head(s)).log_prob(y))


def test_the_log_of_a_mean_over_a_set_stays_in_log_space():
    """`\\log \\frac{1}{N} \\sum_i p(y|x_i)`: a mixture over each example's own views, finite where every
    density underflows (log-densities near -3e4)."""
    head = Gauss(X, X)
    obj = fm.compile(r"\log \frac{1}{N} \sum_{i=1}^{N} p(y|x_i)", [fm.Normal("p(y|x)", net=head)])
    assert "(log-sum-exp)" in obj.explain()
    x, _, counts, *_ = data()
    counts = counts.clamp(min=1)
    y = 100 * torch.randn(B, X)
    got = obj(x=x, y=y, N=counts)
    want = torch.stack([torch.logsumexp(torch.stack([normal(head(x[b, i])).log_prob(y[b])
                                                     for i in range(int(counts[b]))]), 0) - counts[b].log()
                        for b in range(B)])
    assert want.max() < -1000 and torch.isfinite(got).all()
    torch.testing.assert_close(got, want)


def test_an_input_error_of_a_set_sum_points_at_the_sum():
    obj, _ = gqn()
    x, v, _, xq, vq = data()
    with pytest.raises(fm.FormulaInputError) as err:
        obj(x=x, v=v, N=torch.tensor([9, 1, 1, 1, 1]), **{"x^q": xq, "v^q": vq})
    line, marks = str(err.value).splitlines()[-2:]
    start = marks.index("^")
    assert line[start:].startswith(r"\sum_{i=1}^{N} f(x_i, v_i)") and marks.count("^") >= len("\\sum")
