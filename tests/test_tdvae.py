"""TD-VAE's two time indices (issue 12, item 4; Gregor et al. 2019, eq. 8): `z_{t_1}`, `z_{t_2}`, `b_{t_1}`,
`b_{t_2}`, `x_{t_2}` with t_1 < t_2 drawn per example (`t_1 \\sim \\mathcal{U}\\{1, \\ldots, T - D\\}`, a jump
`\\delta \\sim \\mathcal{U}\\{1, \\ldots, D\\}`, `t_2 = t_1 + \\delta`) or given, several samplers in one subscript
evaluated in the written order, beliefs b_t from an LSTM over the whole sequence gathered per example, one
declaration p_B(z|b) at both indices and the jump reaching p(z_{t_2}|z_{t_1}, \\delta). Against hand-written
PyTorch at the same draws."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, kl_divergence

import formula as fm
from models import X, Z
from test_sequence_functions import Gauss, normal

B, T, D, H = 6, 7, 3, 5

BODY = (r"\log p(x_{t_2}|z_{t_2}) + \log p_B(z_{t_1}|b_{t_1}) + \log p(z_{t_2}|z_{t_1}, \delta) "
        r"- \log p_B(z_{t_2}|b_{t_2}) - \log q(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})")
SAMPLERS = r"z_{t_2} \sim p_B(z|b_{t_2}), z_{t_1} \sim q(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})"
DRAWN = (r"t_1 \sim \mathcal{U}\{1, \ldots, T - D\}" "\n" r"\delta \sim \mathcal{U}\{1, \ldots, D\}" "\n"
         r"t_2 = t_1 + \delta" "\n"
         r"\mathbb{E}_{t_1, \delta}\left[\mathbb{E}_{" + SAMPLERS + r"}\left[" + BODY + r"\right]\right]")
DRAWN_ASCII = ("t_1 ~ \\mathcal{U}\\{1, ..., T - D\\}; delta ~ \\mathcal{U}\\{1, ..., D\\}; t_2 = t_1 + delta; "
               "E_{t_1, delta}[E_{z_{t_2} ~ p_B(z|b_{t_2}), z_{t_1} ~ q(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})}["
               "log p(x_{t_2}|z_{t_2}) + log p_B(z_{t_1}|b_{t_1}) + log p(z_{t_2}|z_{t_1}, delta) "
               "- log p_B(z_{t_2}|b_{t_2}) - log q(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})]]")
GIVEN = r"\delta = t_2 - t_1" "\n" r"\mathbb{E}_{" + SAMPLERS + r"}\left[" + BODY + r"\right]"


class Belief(nn.LSTM):
    """b_t = LSTM(x_{\\le t}): [batch, T, H]; counts its calls."""

    def __init__(self):
        super().__init__(X, H, batch_first=True)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)[0]


class Jump(nn.Module):
    """p(z_{t_2}|z_{t_1}, delta): the jump (a [batch] integer tensor) as a feature delta / D; records what it got."""

    def __init__(self):
        super().__init__()
        self.gauss, self.seen = Gauss(Z + 1), []

    def forward(self, z, delta):
        self.seen.append(delta)
        return self.gauss(z, delta.to(z.dtype).unsqueeze(-1) / D)


def declarations():
    torch.manual_seed(0)
    return [fm.Function("b(x)", net=Belief()), fm.Normal("p_B(z|b)", net=Gauss(H)),
            fm.Normal("q(z_{t_1}|z_{t_2},b_{t_1},b_{t_2})", net=Gauss(Z + 2 * H)),
            fm.Normal(r"p(z_{t_2}|z_{t_1},\delta)", net=Jump()), fm.Normal("p(x|z)", net=Gauss(Z, X))]


def by_hand(decls, x, t1, t2):
    """The bound at steps t1 < t2 (one per example), drawing z_{t_2} ~ p_B(z|b_{t_2}), then z_{t_1} ~ q."""
    belief, p_b, q, jump, emit = (d.net for d in decls)
    b = belief(x)
    rows = torch.arange(x.shape[0])
    b1, b2, x2 = b[rows, t1 - 1], b[rows, t2 - 1], x[rows, t2 - 1]
    pb2 = normal(p_b(b2))
    z2 = pb2.rsample()
    qz1 = normal(q(z2, b1, b2))
    z1 = qz1.rsample()
    return (normal(emit(z2)).log_prob(x2) + normal(p_b(b1)).log_prob(z1) + normal(jump(z1, t2 - t1)).log_prob(z2)
            - pb2.log_prob(z2) - qz1.log_prob(z1))


def draw_steps(n):
    """t_1 ~ U{1..T-D}, then delta ~ U{1..D}, as the outer expectation draws them."""
    t1 = Categorical(logits=torch.zeros(T - D)).sample((n,)) + 1
    delta = Categorical(logits=torch.zeros(D)).sample((n,)) + 1
    return t1, delta


def sequence(seed=3):
    return torch.randn(B, T, X, generator=torch.Generator().manual_seed(seed))


def assert_same_value_and_gradients(obj, make_value, make_hand):
    params = list(obj.parameters())
    torch.manual_seed(5)
    value = make_value()
    torch.manual_seed(5)
    hand = make_hand()
    torch.testing.assert_close(value, hand)
    g1 = torch.autograd.grad(value.sum(), params)
    g2 = torch.autograd.grad(hand.sum(), params)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c)


def test_the_drawn_two_index_bound_equals_the_hand_written_one_at_the_same_draws():
    decls = declarations()
    obj = fm.compile(DRAWN, decls)
    assert set(obj.inputs) == {"x", "T", "D"}
    x = sequence()

    def hand():
        t1, delta = draw_steps(B)
        return by_hand(decls, x, t1, t1 + delta)

    assert_same_value_and_gradients(obj, lambda: obj(x=x, T=T, D=D), hand)
    assert decls[0].net.calls == 2  # once per evaluation (the LSTM is not rerun at each index)


def test_given_indices_equal_the_hand_written_bound():
    decls = declarations()
    obj = fm.compile(GIVEN, decls)
    assert set(obj.inputs) == {"x", "t_1", "t_2"}
    x = sequence()
    t1, t2 = torch.tensor([1, 2, 3, 1, 4, 6]), torch.tensor([2, 5, 4, 7, 6, 7])
    assert_same_value_and_gradients(obj, lambda: obj(x=x, t_1=t1, t_2=t2), lambda: by_hand(decls, x, t1, t2))


def test_the_drawn_steps_are_inside_the_sequence_and_t_2_after_t_1():
    decls = declarations()
    obj = fm.compile(DRAWN, decls)
    x = sequence()
    torch.manual_seed(0)
    obj(x=torch.randn(400, T, X), T=T, D=D)
    delta = decls[3].net.seen[-1]
    assert delta.shape == (400,) and delta.dtype == torch.long
    assert set(delta.tolist()) == set(range(1, D + 1))  # every jump length 1..D is drawn
    assert x.shape[1] == T


def test_gathers_pick_each_example_s_own_step():
    seen = {}
    belief = Belief()
    f = fm.Function("f(x)", net=lambda v: seen.setdefault("x", v).sum(-1))
    g = fm.Function("g(b)", net=lambda v: seen.setdefault("b", v).sum(-1))
    obj = fm.compile(r"f(x_{t_2}) + g(b_{t_1})", [fm.Function("b(x)", net=belief), f, g])
    x = sequence()
    t1, t2 = torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([7, 6, 5, 6, 7, 7])  # each example its own steps
    obj(x=x, t_1=t1, t_2=t2)
    for i in range(B):
        torch.testing.assert_close(seen["x"][i], x[i, t2[i] - 1])
        torch.testing.assert_close(seen["b"][i], belief(x)[i, t1[i] - 1])
    seen.clear()
    obj(x=x, t_1=2, t_2=torch.tensor(5))  # one step for every example: an int or a 0-d tensor
    torch.testing.assert_close(seen["x"], x[:, 4])
    torch.testing.assert_close(seen["b"], belief(x)[:, 1])


def test_the_jump_reaches_the_transition_net():
    decls = declarations()
    obj = fm.compile(GIVEN, decls)
    t1, t2 = torch.tensor([1, 2, 3, 1, 4, 6]), torch.tensor([2, 5, 4, 7, 6, 7])
    obj(x=sequence(), t_1=t1, t_2=t2)
    assert torch.equal(decls[3].net.seen[-1], t2 - t1)
    decls = declarations()
    obj = fm.compile(DRAWN, decls)
    torch.manual_seed(9)
    obj(x=sequence(), T=T, D=D)
    torch.manual_seed(9)
    _, delta = draw_steps(B)
    assert torch.equal(decls[3].net.seen[-1], delta)


def test_the_plan_draws_in_the_written_order_from_one_p_B():
    plan = fm.compile(DRAWN, declarations()).explain()
    order = [plan.index(f"draw {v} ") for v in ("t_1", "delta", "z_{t_2}", "z_{t_1}")]
    assert order == sorted(order)
    assert "draw z_{t_2} ~ p_B(z_{t_2}|b_{t_2})" in plan and "a gather along time" in plan


def test_several_draws_per_example_give_one_value_each():
    obj = fm.compile(DRAWN, declarations(), samples=3)
    value = obj(x=sequence(), T=T, D=D)
    assert value.shape == (B,) and torch.isfinite(value).all()


def test_the_paper_s_latex_and_the_ascii_are_one_formula():
    assert fm.equivalent(DRAWN, DRAWN_ASCII)


# --- errors ------------------------------------------------------------------------------------------------


def _caret_under(err: fm.FormulaError, text: str, written: str) -> None:
    assert err.span is not None and text[err.span[0]:err.span[1]] == written


def test_a_given_t_2_not_after_t_1_is_an_input_error_with_a_caret():
    obj = fm.compile(GIVEN, declarations())
    with pytest.raises(fm.FormulaInputError, match=r"t_2 must come after t_1.*example 2 has t_1 = 3, t_2 = 3") as e:
        obj(x=sequence(), t_1=torch.tensor([1, 2, 3, 1, 4, 6]), t_2=torch.tensor([2, 5, 3, 7, 6, 7]))
    _caret_under(e.value, GIVEN, "b_{t_2}")
    with pytest.raises(fm.FormulaInputError, match=r"example 3 has t_1 = 5, t_2 = 5"):  # an int t_2 for every example
        obj(x=sequence(), t_1=torch.tensor([1, 2, 3, 5, 4, 1]), t_2=5)
    with pytest.raises(fm.FormulaInputError, match=r"t_1 = 4, t_2 = 4"):
        obj(x=sequence(), t_1=4, t_2=4)


def test_a_step_outside_the_sequence_is_an_input_error_with_a_caret():
    obj = fm.compile(GIVEN, declarations())
    with pytest.raises(fm.FormulaInputError, match=r"b_\{t_2\} at t_2 = 8 of example 5, but b\(x\) has 7 steps"):
        obj(x=sequence(), t_1=torch.tensor([1, 2, 3, 1, 4, 6]), t_2=torch.tensor([2, 5, 4, 7, 6, 8]))
    obj = fm.compile(DRAWN, declarations())
    with pytest.raises(fm.FormulaInputError, match="has 7 steps") as e:  # T larger than the sequence
        torch.manual_seed(0)
        obj(x=sequence(), T=30, D=D)
    assert e.value.span is not None
    with pytest.raises(fm.FormulaInputError, match=r"x_\{t_2\}: the step t_2 must be one integer per example"):
        fm.compile(r"f(x_{t_2})", [fm.Function("f(x)", net=lambda v: v.sum(-1))])(
            x=sequence(), t_2=torch.tensor([1, 2]))


def test_a_time_index_drawn_from_a_continuous_family_is_a_check_error():
    text = r"t_1 \sim \mathcal{N}(0, 1)" "\n" r"\mathbb{E}_{t_1}[f(x_{t_1})]"
    with pytest.raises(fm.FormulaCheckError, match=r"not a distribution over steps") as e:
        fm.compile(text, [fm.Function("f(x)", net=lambda v: v.sum(-1))])
    _caret_under(e.value, text, "x_{t_1}")


def test_a_drawn_index_outside_its_expectation_is_a_check_error_not_an_input():
    text = DRAWN.replace(r"\mathbb{E}_{t_1, \delta}\left[", "").replace(r"\right]\right]", r"\right]")
    with pytest.raises(fm.FormulaCheckError, match=r"no enclosing expectation draws it here") as e:
        fm.compile(text, declarations())
    _caret_under(e.value, text, "b_{t_2}")


KL_FORM = (r"t_1 \sim \mathcal{U}\{1, \ldots, T - D\}" "\n" r"\delta \sim \mathcal{U}\{1, \ldots, D\}" "\n"
           r"t_2 = t_1 + \delta" "\n"
           r"\mathbb{E}_{t_1, \delta}\left[\mathbb{E}_{z_{t_2} \sim p_B(z|b_{t_2})}\left[\log p(x_{t_2}|z_{t_2}) - "
           r"\log p_B(z_{t_2}|b_{t_2}) + \mathbb{E}_{q(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})}[\log p(z_{t_2}|z_{t_1}, "
           r"\delta)] - KL(q(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2}) \| p_B(z_{t_1}|b_{t_1}))\right]\right]")


def test_the_bound_with_the_closed_form_kl_at_gathered_beliefs_equals_the_hand_written_one():
    """The paper's bound with its two q-terms as a KL: closed form between the Normals at b_{t_1}, b_{t_2}."""
    decls = declarations()
    obj = fm.compile(KL_FORM, decls)
    assert "closed form" in obj.explain()
    x = sequence()
    belief, p_b, q, jump, emit = (d.net for d in decls)

    def hand():
        t1, delta = draw_steps(B)
        b, rows = belief(x), torch.arange(B)
        b1, b2 = b[rows, t1 - 1], b[rows, t1 + delta - 1]
        pb2 = normal(p_b(b2))
        z2 = pb2.rsample()
        qz1 = normal(q(z2, b1, b2))
        z1 = qz1.rsample()
        return (normal(emit(z2)).log_prob(x[rows, t1 + delta - 1]) - pb2.log_prob(z2)
                + normal(jump(z1, delta)).log_prob(z2) - kl_divergence(qz1, normal(p_b(b1))))

    assert_same_value_and_gradients(obj, lambda: obj(x=x, T=T, D=D), hand)
