"""Exact sums over a discrete variable broadcast the other inputs (issue 12, item 9): inside `\\sum_y q(y|x) f(x, y)`
a net receives x expanded to the enumerated values of y ([C, batch, ...]), against hand-written PyTorch with nets
that do not broadcast (a plain concatenation)."""

import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal, kl_divergence
from torch.nn import functional as F

import formula as fm

B, X, C, Z = 5, 6, 4, 3


class Concat(nn.Module):
    """A net of (a, y) that concatenates its inputs as they come: both must have the same leading shape."""

    def __init__(self, n_in, n_out, gaussian=False):
        super().__init__()
        self.lin, self.gaussian, self.seen = nn.Linear(n_in + C, n_out), gaussian, []

    def forward(self, a, y):
        self.seen.append((tuple(a.shape), tuple(y.shape)))
        h = self.lin(torch.cat([a, F.one_hot(y, C).to(a.dtype)], -1))
        if not self.gaussian:
            return h.squeeze(-1)
        loc, scale = h.chunk(2, -1)
        return {"loc": loc, "scale": F.softplus(scale) + 1e-3}


def classifier():
    return fm.Categorical("q(y|x)", net=_Logits())


class _Logits(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(X, C)

    def forward(self, x):
        return {"logits": self.lin(x)}


def unlabelled_m2():
    """q(y|x), q(z|x,y) whose net concatenates (and records the shapes it gets), and a standard Normal p(z)."""
    torch.manual_seed(0)
    return (classifier(), fm.Normal("q(z|x,y)", net=Concat(X, 2 * Z, gaussian=True)),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)))


def test_a_function_in_an_exact_sum_receives_the_inputs_expanded():
    torch.manual_seed(0)
    qy, f = classifier(), fm.Function("f(x,y)", net=Concat(X, 1))
    obj = fm.compile(r"\sum_y q(y|x) f(x, y)", [qy, f])
    x = torch.rand(B, X)
    value = obj(x=x)
    assert f.net.seen == [((C, B, X), (C, B))]
    q = Categorical(logits=qy.net(x)["logits"])
    ys = q.enumerate_support()  # [C, B]
    hand = (q.log_prob(ys).exp() * f.net(x.expand(C, B, X), ys)).sum(0)
    torch.testing.assert_close(value, hand)


def test_a_conditioned_distribution_and_a_kl_in_an_exact_sum():
    """M2's unlabelled bound with q(z|x,y) a net that concatenates: x reaches it as [C, batch, X]."""
    qy, qz, prior = unlabelled_m2()
    obj = fm.compile(r"\sum_y q(y|x) KL(q(z|x,y) || p(z)) + H[q(y|x)]", [qy, qz, prior])
    x = torch.rand(B, X)
    value = obj(x=x)
    assert qz.net.seen == [((C, B, X), (C, B))]
    q = Categorical(logits=qy.net(x)["logits"])
    ys = q.enumerate_support()
    post = Independent(Normal(**qz.net(x.expand(C, B, X), ys)), 1)
    std = Independent(Normal(torch.zeros(Z), torch.ones(Z)), 1)
    hand = (q.probs.T * kl_divergence(post, std)).sum(0) + q.entropy()
    torch.testing.assert_close(value, hand)


def test_a_draw_made_outside_the_sum_is_expanded_too():
    torch.manual_seed(0)
    qz = fm.Normal("q(z|x)", net=lambda x: {"loc": x[..., :Z], "scale": torch.ones_like(x[..., :Z])})
    qy = fm.Categorical("q(y|z)", net=lambda z: {"logits": torch.cat([z, z[..., :1]], -1)})
    g = fm.Function("g(z,y)", net=Concat(Z, 1))
    obj = fm.compile(r"E_{q(z|x)}[\sum_y q(y|z) g(z, y)]", [qz, qy, g])
    x = torch.rand(B, X)
    torch.manual_seed(1)
    value = obj(x=x)
    assert g.net.seen == [((C, B, Z), (C, B))]
    torch.manual_seed(1)
    z = Normal(x[:, :Z], torch.ones(B, Z)).rsample()
    q = Categorical(logits=torch.cat([z, z[:, :1]], -1))
    ys = q.enumerate_support()
    hand = (q.probs.T * g.net(z.expand(C, B, Z), ys)).sum(0)
    torch.testing.assert_close(value, hand)


def test_outside_the_sum_the_same_net_still_sees_the_batch():
    """The memo keeps the expanded and the plain values apart: a KL outside the sum is per example."""
    qy, qz, prior = unlabelled_m2()
    obj = fm.compile(r"KL(q(z|x,y) || p(z)) + \sum_y q(y|x) KL(q(z|x,y) || p(z))", [qy, qz, prior])
    x, y = torch.rand(B, X), torch.randint(0, C, (B,))
    assert obj(x=x, y=y).shape == (B,)
    assert sorted(qz.net.seen) == sorted([((C, B, X), (C, B)), ((B, X), (B,))])
