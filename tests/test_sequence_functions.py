"""Networks that summarise a sequence, used per step (issue 12, item 2): a declared function over the whole
sequence (`fm.Function("h(x)", net=GRU)`, [batch, T, ...]) is indexable as `h_t`, computed once per call and
sliced per step; the step index written among the conditions reaches the net as a Python int. Against a
hand-run RNN, and Krishnan's DMM (a backward RNN over x_{t:T} combined with z_{t-1}) against a hand-written loop."""

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

import formula as fm
from models import X, Z

B, T, HID = 5, 4, 7


class Backward(nn.Module):
    """A GRU run from the end of the sequence: h_t summarises x_{t:T}; counts its calls."""

    def __init__(self):
        super().__init__()
        self.gru, self.calls = nn.GRU(X, HID, batch_first=True), 0

    def forward(self, x):
        self.calls += 1
        out, _ = self.gru(x.flip(1))
        return out.flip(1)


class Combiner(nn.Module):
    """Krishnan et al. (2017): h_combined = (tanh(W z_{t-1} + b) + h_t) / 2, then a Gaussian of it."""

    def __init__(self):
        super().__init__()
        self.z_to_h, self.loc, self.scale = nn.Linear(Z, HID), nn.Linear(HID, Z), nn.Linear(HID, Z)

    def forward(self, z_prev, h):
        c = 0.5 * (torch.tanh(self.z_to_h(z_prev)) + h)
        return {"loc": self.loc(c), "scale": nn.functional.softplus(self.scale(c)) + 1e-3}


class Gauss(nn.Module):
    def __init__(self, n_in, n_out=Z):
        super().__init__()
        self.lin = nn.Linear(n_in, 2 * n_out)

    def forward(self, *args):
        loc, scale = self.lin(torch.cat(args, -1)).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-3}


def normal(params):
    return Independent(Normal(params["loc"], params["scale"]), 1)


KRISHNAN = (r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},h_t)}[\log p(x_t|z_t)] - "
            r"D_{KL}(q(z_t|z_{t-1},h_t) \| p(z_t|z_{t-1}))")


def dmm():
    torch.manual_seed(0)
    h = fm.Function("h(x)", net=Backward())
    q = fm.Normal("q(z_t|z_{t-1},h_t)", net=Combiner())
    trans = fm.Normal("p(z_t|z_{t-1})", net=Gauss(Z))
    emit = fm.Normal("p(x_t|z_t)", net=Gauss(Z, X))
    start = fm.Normal("p(z_0)", loc=0.0, scale=1.0, shape=(Z,))
    return h, q, trans, emit, start


def dmm_by_hand(h, q, trans, emit, x):
    feats = h.net(x)
    total, z_prev = 0.0, Normal(torch.zeros(Z), torch.ones(Z)).rsample((x.shape[0],))
    for t in range(x.shape[1]):
        qd = normal(q.net(z_prev, feats[:, t]))
        z = qd.rsample()
        total = total + normal(emit.net(z)).log_prob(x[:, t]) - kl_divergence(qd, normal(trans.net(z_prev)))
        z_prev = z
    return total


def test_krishnans_dmm_with_a_backward_rnn_equals_the_hand_written_loop():
    decls = dmm()
    h = decls[0]
    obj = fm.compile(KRISHNAN, list(decls))
    assert obj.inputs == ("x",)
    x = torch.randn(B, T, X)
    torch.manual_seed(4)
    value = obj(x=x)
    assert h.net.calls == 1  # once per call, sliced per step
    torch.manual_seed(4)
    hand = dmm_by_hand(*decls[:4], x)
    torch.testing.assert_close(value, hand)
    params = list(obj.parameters())
    torch.manual_seed(4)
    g1 = torch.autograd.grad(obj(x=x).sum(), params)
    torch.manual_seed(4)
    g2 = torch.autograd.grad(dmm_by_hand(*decls[:4], x).sum(), params)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c)


def test_the_features_at_each_step_equal_a_hand_run_rnn():
    torch.manual_seed(0)
    rnn = Backward()
    h = fm.Function("h(x)", net=rnn)
    f = fm.Function("f(h_t)", net=lambda v: v.sum(-1))
    obj = fm.compile(r"\sum_{t=1}^{T} f(h_t)", [h, f])
    x = torch.randn(B, T, X)
    value = obj(x=x)
    out = rnn(x)
    hand = sum(out[:, t].sum(-1) for t in range(T))
    torch.testing.assert_close(value, hand)
    assert rnn.calls == 2  # one for the objective, one here


def test_the_paper_s_x_t_to_T_condition_gives_the_same_value_as_h_t():
    """Written with the slice x_{t:T} itself, the net sees [batch, T-t+1, X] and reruns the RNN each step."""
    decls = dmm()
    h, q, trans, emit, start = decls

    class OnSlice(nn.Module):
        def __init__(self):
            super().__init__()
            self.combiner, self.rnn = q.net, h.net

        def forward(self, z_prev, x_rest):
            return self.combiner(z_prev, self.rnn(x_rest)[:, 0])

    q_slice = fm.Normal("q(z_t|z_{t-1},x_{t:T})", net=OnSlice())
    text = KRISHNAN.replace("h_t", "x_{t:T}")
    obj = fm.compile(text, [q_slice, trans, emit, start])
    x = torch.randn(B, T, X)
    torch.manual_seed(4)
    value = obj(x=x)
    torch.manual_seed(4)
    torch.testing.assert_close(value, dmm_by_hand(h, q, trans, emit, x))


def test_the_step_index_reaches_a_net_as_an_int_when_written_as_a_condition():
    seen = []

    def net(z, t):
        seen.append(t)
        return {"loc": z * t, "scale": torch.ones_like(z)}

    q = fm.Normal("q(y_t|x_t,t)", net=net)
    obj = fm.compile(r"\sum_{t=1}^{T} \log q(y_t|x_t,t)", [q])
    x, y = torch.randn(B, T, Z), torch.randn(B, T, Z)
    value = obj(x=x, y=y)
    assert seen == [1, 2, 3, 4] and all(type(t) is int for t in seen)
    hand = sum(Independent(Normal(x[:, t - 1] * t, 1.0), 1).log_prob(y[:, t - 1]) for t in range(1, T + 1))
    torch.testing.assert_close(value, hand)


def test_a_step_past_the_end_is_an_input_error():
    torch.manual_seed(0)
    h = fm.Function("h(x)", net=Backward())
    f = fm.Function("f(h_t)", net=lambda v: v.sum(-1))
    obj = fm.compile(r"\sum_{t=1}^{T} f(h_t)", [h, f])
    with pytest.raises(fm.FormulaInputError, match="has 4 steps"):
        obj(x=torch.randn(B, T, X), T=5)
