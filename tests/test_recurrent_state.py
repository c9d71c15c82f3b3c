"""Recurrent deterministic states (issue 12, item 2): a definition line `h_t = f(h_{t-1}, x_t, z_t)` before the
objective is a state computed step by step inside the time sum, after z_t is drawn, once per step. VRNN (Chung et
al. 2015) as the paper writes its bound, against a hand-written loop at the same draws; several states at once (a
DRAW-like toy with encoder, decoder and canvas states and log p(x|c_T) outside the sum); the state's net called once
per step; errors with carets."""

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

import formula as fm

B, T, X, Z, H = 5, 4, 3, 2, 6

VRNN = (r"h_t = f(h_{t-1}, x_t, z_t)" "\n"
        r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|x_t,h_{t-1})}[\log p(x_t|z_t,h_{t-1})] - "
        r"KL(q(z_t|x_t,h_{t-1}) \| p(z_t|h_{t-1}))")


class Gauss(nn.Module):
    """A diagonal Gaussian of the concatenated arguments."""

    def __init__(self, n_in, n_out=Z):
        super().__init__()
        self.lin = nn.Linear(n_in, 2 * n_out)

    def forward(self, *args):
        loc, scale = self.lin(torch.cat(args, -1)).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-3}


class Cell(nn.Module):
    """A GRU cell over the concatenated inputs, the state first; counts its calls."""

    def __init__(self, n_in, hidden=H):
        super().__init__()
        self.cell, self.calls = nn.GRUCell(n_in, hidden), 0

    def forward(self, h, *inputs):
        self.calls += 1
        return self.cell(torch.cat(inputs, -1), h)


def normal(params):
    return Independent(Normal(params["loc"], params["scale"]), 1)


def vrnn(learn: bool = False):
    """f, the first value, the prior, the posterior and the emission (seeded)."""
    torch.manual_seed(0)
    return (fm.Function("f(h, x, z)", net=Cell(X + Z)), fm.Initial("h_0", size=(H,), learn=learn),
            fm.Normal("p(z_t|h_{t-1})", net=Gauss(H)), fm.Normal("q(z_t|x_t,h_{t-1})", net=Gauss(X + H)),
            fm.Normal("p(x_t|z_t,h_{t-1})", net=Gauss(Z + H, X)))


def vrnn_by_hand(f, init, prior, q, emit, x):
    """The paper's loop: z_t ~ q(z_t|x_t, h_{t-1}), the emission and the KL at h_{t-1}, then h_t = f(h_{t-1}, x_t,
    z_t)."""
    h = init.value.expand(x.shape[0], H) if init.learn else torch.zeros(x.shape[0], H, dtype=x.dtype)
    total = 0.0
    for t in range(x.shape[1]):
        qd = normal(q.net(x[:, t], h))
        z = qd.rsample()
        total = total + normal(emit.net(z, h)).log_prob(x[:, t]) - kl_divergence(qd, normal(prior.net(h)))
        h = f.net(h, x[:, t], z)
    return total


def sequence(seed=1):
    return torch.randn(B, T, X, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("learn", [False, True])
def test_the_vrnn_bound_equals_the_hand_written_loop_at_the_same_draws(learn):
    decls = vrnn(learn)
    obj = fm.compile(VRNN, list(decls))
    assert obj.inputs == ("x",)
    x = sequence()
    torch.manual_seed(4)
    value = obj(x=x)
    torch.manual_seed(4)
    hand = vrnn_by_hand(*decls, x)
    torch.testing.assert_close(value, hand)
    params = list(obj.parameters())
    assert any(p is decls[1].value for p in params) == learn  # a learned first value is a parameter
    torch.manual_seed(4)
    g1 = torch.autograd.grad(obj(x=x).sum(), params)
    torch.manual_seed(4)
    g2 = torch.autograd.grad(vrnn_by_hand(*decls, x).sum(), params)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c)


def test_the_state_net_runs_once_per_step():
    decls = vrnn()
    cell = decls[0].net
    obj = fm.compile(VRNN, list(decls))
    obj(x=sequence())
    assert cell.calls == T - 1  # h_1 .. h_{T-1}: the bound never reads h_T
    cell.calls = 0
    h_T = fm.compile(VRNN.replace(r"KL(", r"KL(") + r" + g(h_T)",
                     list(decls) + [fm.Function("g(h)", net=lambda h: h.sum(-1))])
    h_T(x=sequence())
    assert cell.calls == T  # read at the last step too, outside the sum: once more, not again per use
    assert "state h_t = f(h_{t-1}, x_t, z_t): computed at each step on first use" in obj.explain()


def test_a_first_value_computed_from_the_inputs():
    f, _, prior, q, emit = vrnn()
    g = fm.Function("g(x)", net=nn.Linear(X, H))  # of the whole sequence [batch, T, X]: here its mean
    g.net.forward = lambda x, lin=g.net: nn.functional.linear(x.mean(1), lin.weight, lin.bias)
    obj = fm.compile("h_0 = g(x)\n" + VRNN, [f, g, prior, q, emit])
    x = sequence()
    torch.manual_seed(2)
    value = obj(x=x)
    torch.manual_seed(2)
    h = g.net(x)
    total = 0.0
    for t in range(T):
        qd = normal(q.net(x[:, t], h))
        z = qd.rsample()
        total = total + normal(emit.net(z, h)).log_prob(x[:, t]) - kl_divergence(qd, normal(prior.net(h)))
        h = f.net(h, x[:, t], z)
    torch.testing.assert_close(value, total)


# --- several states: a DRAW-like toy ------------------------------------------------------------------------------

D, HE, HD, STEPS = 4, 5, 3, 3
DRAW = "\n".join([
    r"\hat x_t = x - \sigma(c_{t-1})",
    r"h^{enc}_t = e(h^{enc}_{t-1}, x, \hat x_t, h^{dec}_{t-1})",
    r"h^{dec}_t = d(h^{dec}_{t-1}, z_t)",
    r"c_t = c_{t-1} + w(h^{dec}_t)",
    r"\mathbb{E}_{q(z_{\le T}|x)}[\log p(x|c_T) - \sum_{t=1}^{T} KL(q(z_t|h^{enc}_t) \| p(z_t))]",
])


def draw():
    torch.manual_seed(0)
    return (fm.Function("e(h, x, r, g)", net=Cell(D + D + HD, HE)), fm.Function("d(h, z)", net=Cell(Z, HD)),
            fm.Function("w(h)", net=nn.Linear(HD, D)),
            fm.Initial("h^{enc}_0", size=(HE,)), fm.Initial("h^{dec}_0", size=(HD,)), fm.Initial("c_0", size=(D,)),
            fm.Normal("q(z_t|h^{enc}_t)", net=Gauss(HE)), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)),
            fm.Bernoulli("p(x|c)", net=lambda c: {"logits": c}))


def draw_by_hand(decls, x, steps):
    """DRAW's loop (Gregor et al. 2015): read the error image, encode, draw z_t, decode, add to the canvas."""
    e, d, w, q = decls[0], decls[1], decls[2], decls[6]
    n = x.shape[0]
    h_enc, h_dec, c = torch.zeros(n, HE), torch.zeros(n, HD), torch.zeros(n, D)
    kl = 0.0
    for _ in range(steps):
        x_hat = x - torch.sigmoid(c)
        h_enc = e.net(h_enc, x, x_hat, h_dec)
        qd = normal(q.net(h_enc))
        z = qd.rsample()
        kl = kl + kl_divergence(qd, Independent(Normal(torch.zeros(Z), torch.ones(Z)), 1))
        h_dec = d.net(h_dec, z)
        c = c + w.net(h_dec)
    return torch.distributions.Bernoulli(logits=c).log_prob(x).sum(-1) - kl


def test_several_states_equal_a_hand_written_draw_loop():
    decls = draw()
    e, d = decls[0], decls[1]
    obj = fm.compile(DRAW, list(decls))
    assert set(obj.inputs) == {"x", "T"}
    x = torch.rand(B, D, generator=torch.Generator().manual_seed(3)).round()
    torch.manual_seed(5)
    value = obj(x=x, T=STEPS)
    assert (e.net.calls, d.net.calls) == (STEPS, STEPS)  # each state once per step
    torch.manual_seed(5)
    hand = draw_by_hand(decls, x, STEPS)
    torch.testing.assert_close(value, hand)
    torch.manual_seed(5)
    g1 = torch.autograd.grad(obj(x=x, T=STEPS).sum(), list(obj.parameters()))
    torch.manual_seed(5)
    g2 = torch.autograd.grad(draw_by_hand(decls, x, STEPS).sum(), list(obj.parameters()))
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c)


# --- errors --------------------------------------------------------------------------------------------------------


def _caret_under(err, text, part):
    lines = str(err).splitlines()
    line, marks = lines[-2], lines[-1]
    start = marks.index("^")
    assert line[start:start + len(part)] == part, str(err)


def test_a_state_used_before_its_draw_is_a_check_error():
    f, init, prior, q, emit = vrnn()
    text = (r"h_t = f(h_{t-1}, x_t, z_t)" "\n"
            r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|x_t,h_t)}[\log p(x_t|z_t,h_{t-1})]")
    with pytest.raises(fm.FormulaCheckError, match=r"h_t is used before it can be computed.*reads z_t") as err:
        fm.compile(text, [f, init, fm.Normal("q(z_t|x_t,h_t)", net=Gauss(X + H)), emit])
    _caret_under(err.value, text, "h_t)")


def test_states_that_read_each_other_at_the_same_step_are_a_check_error():
    g = fm.Function("g(a)", net=nn.Identity())
    text = "a_t = g(b_t) + a_{t-1}\nb_t = g(a_t)\n\\sum_{t=1}^{T} g(a_t)"
    with pytest.raises(fm.FormulaCheckError, match=r"read each other at the same step: a_t -> b_t -> a_t") as err:
        fm.compile(text, [g, fm.Initial("a_0", size=(2,))])
    assert "^" in str(err.value) and "previous" not in str(err.value)


def test_a_missing_first_value_is_a_check_error_with_the_ways_to_give_one():
    f, _, prior, q, emit = vrnn()
    with pytest.raises(fm.FormulaCheckError, match=r"h_0.*fm.Initial\(\"h_0\", size=\(H,\)\).*h_0 = g\(x\)") as err:
        fm.compile(VRNN, [f, prior, q, emit])
    _caret_under(err.value, VRNN, "h_{t-1}")


def test_a_net_that_changes_the_state_s_shape_is_an_input_error_at_the_definition():
    _, init, prior, q, emit = vrnn()
    grow = fm.Function("f(h, x, z)", net=lambda h, x, z: torch.cat([h, z], -1)[:, :H - 1])
    obj = fm.compile(VRNN, [grow, init, prior, q, emit])
    with pytest.raises(fm.FormulaInputError, match=r"the state h_t = f\(h_\{t-1\}, x_t, z_t\).*failed|shape") as err:
        obj(x=sequence())
    _caret_under(err.value, VRNN, "h_t = f(")


def test_a_first_value_of_the_wrong_size_is_an_input_error_at_the_definition():
    f, _, prior, q, emit = vrnn()
    obj = fm.compile(VRNN, [f, fm.Initial("h_0", size=(H + 1,)), prior, q, emit])
    with pytest.raises(fm.FormulaInputError) as err:
        obj(x=sequence())
    assert "h_t" in str(err.value) or "h_{t-1}" in str(err.value)


def test_a_state_used_as_a_slice_is_a_check_error():
    f, init, prior, q, emit = vrnn()
    g = fm.Function("g(h)", net=lambda h: h.sum((-1, -2)))
    text = VRNN + r" + g(h_{<T})"
    with pytest.raises(fm.FormulaCheckError, match=r"used one step at a time") as err:
        fm.compile(text, [f, init, prior, q, emit, g])
    _caret_under(err.value, text, "h_{<T}")


def test_initial_names_a_state_at_a_number():
    with pytest.raises(fm.FormulaCheckError, match="the state at its first step"):
        fm.Initial("h_t", size=(3,))
    with pytest.raises(fm.FormulaCheckError, match="size must be positive"):
        fm.Initial("h_0", size=(0,))


def test_a_draw_read_through_a_plain_step_definition_counts_for_the_check():
    f, init, prior, q, emit = vrnn()
    u = fm.Function("u(z)", net=nn.Identity())
    text = (r"w_t = u(z_t)" "\n" r"h_t = f(h_{t-1}, x_t, w_t)" "\n"
            r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|x_t,h_t)}[\log p(x_t|z_t,h_{t-1})]")
    with pytest.raises(fm.FormulaCheckError, match=r"h_t is used before it can be computed.*reads z_t"):
        fm.compile(text, [f, u, init, fm.Normal("q(z_t|x_t,h_t)", net=Gauss(X + H)), emit])
    obj = fm.compile(text.replace("q(z_t|x_t,h_t)", "q(z_t|x_t,h_{t-1})"), [f, u, init, q, emit])
    x = sequence()
    torch.manual_seed(3)
    value = obj(x=x)
    torch.manual_seed(3)
    h, total = torch.zeros(B, H), 0.0
    for t in range(T):
        z = normal(q.net(x[:, t], h)).rsample()
        total = total + normal(emit.net(z, h)).log_prob(x[:, t])
        h = f.net(h, x[:, t], z)
    torch.testing.assert_close(value, total)


def test_a_state_used_before_the_sum_that_draws_its_steps_is_an_input_error_at_the_use():
    decls = vrnn()
    g = fm.Function("g(h)", net=lambda h: h.sum(-1))
    text = (r"h_t = f(h_{t-1}, x_t, z_t)" "\n"
            r"g(h_T) + \sum_{t=1}^{T} \mathbb{E}_{q(z_t|x_t,h_{t-1})}[\log p(x_t|z_t,h_{t-1})]")
    obj = fm.compile(text, list(decls) + [g])
    with pytest.raises(fm.FormulaInputError, match=r"h_t at t = 1 reads z_1, which is not drawn at this point.*"
                                                   r"comes after that sum") as err:
        obj(x=sequence())
    _caret_under(err.value, text, "h_T")
    after = fm.compile(text.replace("g(h_T) + ", "") + " + g(h_T)", list(decls) + [g])
    assert torch.isfinite(after(x=sequence())).all()


def test_a_state_reads_a_draw_without_index_made_around_the_sum():
    """A sentence-level latent z drawn once, read by the state at every step: h_t = f(h_{t-1}, x_t, z)."""
    f, init, _, _, _ = vrnn()
    enc = fm.Normal("q(z|x)", net=nn.Sequential(nn.Flatten(), Gauss(T * X)))
    emit = fm.Normal("p(x_t|h_{t-1})", net=Gauss(H, X))
    text = (r"h_t = f(h_{t-1}, x_t, z)" "\n"
            r"\mathbb{E}_{q(z|x)}[\sum_{t=1}^{T} \log p(x_t|h_{t-1})]")
    obj = fm.compile(text, [f, init, enc, emit])
    x = sequence()
    torch.manual_seed(6)
    value = obj(x=x)
    torch.manual_seed(6)
    z = normal(enc.net(x)).rsample()
    h, total = torch.zeros(B, H), 0.0
    for t in range(T):
        total = total + normal(emit.net(h)).log_prob(x[:, t])
        h = f.net(h, x[:, t], z)
    torch.testing.assert_close(value, total)
    outside = text.replace(r"\mathbb{E}_{q(z|x)}[\sum_{t=1}^{T} \log p(x_t|h_{t-1})]",
                           r"\sum_{t=1}^{T} \log p(x_t|h_t) + \mathbb{E}_{q(z|x)}[\log p(x_1|h_0)]")
    with pytest.raises(fm.FormulaCheckError, match=r"h_t is used before it can be computed.*reads z\b") as err:
        fm.compile(outside, [f, init, enc, fm.Normal("p(x_t|h_t)", net=Gauss(H, X))])
    _caret_under(err.value, outside, "h_t)")
