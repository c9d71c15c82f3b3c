"""Regression tests for what the audits found in the checker and compiler (issues 8, 9 and 16): crashes that must be
FormulaErrors, values that were silently wrong, and costs a user could not see. Values are compared with
hand-written PyTorch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import formula as fm

from models import Gaussian, Logits, binary, vae

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"


# --- crashes that are now check or input errors -------------------------------------------------------------


def test_log_of_a_declared_function_is_a_call():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 1), nn.Sigmoid())
    obj = fm.compile("log D(x)", [fm.Function("D(x)", net=net)])
    x = torch.randn(4, 3)
    torch.testing.assert_close(obj(x=x), torch.log(net(x)).squeeze(-1))


@pytest.mark.parametrize("text, message", [
    (r"\sum_{k=1} x", "needs both bounds"),
    (r"E_{z_1,...,z_K \sim q(z|x)}[\log \frac{1}{K} \sum_{k=1} p(x, z_k) / q(z_k|x)]", "needs both bounds"),
    (r"\log \mathcal{N}(0 \mid I)", "density of a variable"),
    (r"\log \mathcal{N}(x, (x) \mid I)", "over one variable"),
    (r"\log \mathcal{N}(x, y \mid 0, I)", "over one variable"),
    (r"\sum_{t=1}^{T}" * 6 + "x_t", "nested"),
    (r"\sum_{t=1}^{T}" * 150 + "x_t", None),  # refused by the parser's nesting limit, at once
    ("E_q(z|x)[E_q(z|x)[log p(x|z)]]", "already drawn"),
])
def test_mistakes_are_check_errors_with_a_caret(text, message):
    q, p, prior = vae()
    with pytest.raises(fm.FormulaError) as info:
        fm.compile(text, [q, p, prior])
    assert isinstance(info.value, fm.FormulaCheckError) or message is None
    if message:
        assert message in str(info.value)


def test_a_scalar_one_edit_from_a_keyword_is_a_typo():
    q, p, prior = vae()
    with pytest.raises(fm.FormulaCheckError, match="did you mean log"):
        fm.compile("lg * KL(q(z|x)||p(z))", [q, p, prior])
    # a Greek scalar is not a typo of a family name
    fm.compile("beta * KL(q(z|x)||p(z))", [q, p, prior])


def _dmm():
    torch.manual_seed(0)
    q = fm.Normal("q(z_t|z_{t-1},x_t)", net=Gaussian(3 + 6))
    p = fm.Normal("p(z_t|z_{t-1})", net=Gaussian(3))
    e = fm.Bernoulli("p(x_t|z_t)", net=Logits(3))
    return [q, p, e]


DMM = r"\sum_{t=1}^{T} (E_{q(z_t|z_{t-1},x_t)}[\log p(x_t|z_t)] - KL(q(z_t|z_{t-1},x_t) || p(z_t|z_{t-1})))"


@pytest.mark.parametrize("inputs, message", [
    ({"T": 0}, "at least 1"),
    ({"T": -1}, "at least 1"),
    ({"T": 9}, "has 5 steps"),
])
def test_sequence_lengths_that_cannot_be(inputs, message):
    obj = fm.compile(DMM, _dmm())
    x = torch.bernoulli(torch.full((2, 5, 6), 0.5))
    with pytest.raises(fm.FormulaInputError, match=message):
        obj(x=x, z_0=torch.zeros(2, 3), **inputs)


def test_zero_draws_and_an_empty_batch_are_input_errors():
    q, p, prior = vae()
    iwae = fm.compile(r"E_{z_1,...,z_K \sim q(z|x)}[\log \frac{1}{K} \sum_{k=1}^{K} \frac{p(x, z_k)}{q(z_k|x)}]",
                      [q, p, prior])
    with pytest.raises(fm.FormulaInputError, match="K must be a positive integer"):
        iwae(x=binary(3), K=0)
    with pytest.raises(fm.FormulaInputError, match="empty"):
        fm.compile(VAE, [q, p, prior])(x=binary(3)[:0])


# --- values that were silently wrong ----------------------------------------------------------------------


class StepNet(nn.Module):
    """A Normal whose mean is the step index t alone; records every t it is called with."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype)
        self.calls.append(float(t))
        loc = (self.w * t).expand(x.shape[0], 1)
        return {"loc": loc, "scale": torch.ones_like(loc)}


@settings(max_examples=15, deadline=None)
@given(lower=st.integers(1, 3), steps=st.integers(1, 4), kl=st.booleans())
def test_a_net_of_the_step_index_runs_once_per_step_with_that_step(lower, steps, kl):
    """The memo key holds every condition's value, the sum index included (q(z_t | x, t) is not the draw of the
    first step again), against the hand-unrolled sum."""
    net = StepNet()
    q = fm.Normal("q(z_t|x,t)", net=net)
    prior = fm.Normal("p(z_t)", loc=0.0, scale=1.0, shape=(1,))
    body = "KL(q(z_t|x,t) || p(z_t))" if kl else "E_q(z_t|x,t)[z_t]"
    upper = lower + steps - 1
    obj = fm.compile(rf"\sum_{{t={lower}}}^{{{upper}}} {body}", [q, prior])
    x = torch.zeros(2, 1)
    torch.manual_seed(0)
    value = obj(x=x)
    assert net.calls == [float(t) for t in range(lower, upper + 1)]
    ts = torch.arange(lower, upper + 1, dtype=torch.float32)
    expected = (0.5 * ts ** 2).sum() if kl else None
    if kl:
        torch.testing.assert_close(value, expected.expand(2))
    else:  # each step's draw is N(t, 1): the mean of the sum over many examples is the sum of the steps
        many = obj(x=torch.zeros(20000, 1))
        assert abs(many.mean().item() - ts.sum().item()) < 0.1 * steps


def test_two_identical_terms_are_two_entries_that_sum_to_the_total():
    q, p, prior = vae()
    obj = fm.compile("KL(q(z|x)||p(z)) + KL(q(z|x)||p(z))", [q, p, prior])
    total, terms = obj.evaluate(x=binary(4))
    assert list(terms) == ["KL(q(z|x) || p(z))", "KL(q(z|x) || p(z)) [2]"]
    torch.testing.assert_close(total, sum(terms.values()))
    assert obj.term_names == tuple(terms)


def test_monte_carlo_kl_to_an_explicit_family_draws_once_per_sample():
    """KL(q(z) || N(0, I)) with analytic_kl=False used to ignore samples= (one draw for every example)."""
    torch.manual_seed(0)
    q = fm.Normal("q(z)", loc=0.3, scale=0.7, shape=(2,))
    obj = fm.compile(r"KL(q(z) \| \mathcal{N}(0, I))", [q], analytic_kl=False, samples=3000)
    value = obj(batch_size=2)
    exact = torch.distributions.kl_divergence(torch.distributions.Normal(0.3, 0.7),
                                              torch.distributions.Normal(0.0, 1.0)) * 2  # two dimensions
    assert value.shape == (2,)
    assert torch.allclose(value, exact.expand(2), atol=0.05)


def test_an_objective_without_data_takes_its_batch_size_from_the_call():
    torch.manual_seed(0)
    g = fm.Function("G(z)", net=nn.Linear(2, 1))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))
    obj = fm.compile("E_p(z)[G(z)]", [g, prior])
    assert obj(batch_size=7).shape == (7,)
    with pytest.raises(fm.FormulaInputError, match="batch_size must be a positive integer"):
        obj(batch_size=0)


# --- costs a user could not see ------------------------------------------------------------------------------


class Counting(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.lin, self.calls = nn.Linear(n_in, n_out), 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def test_a_function_used_in_several_terms_runs_once_per_call():
    torch.manual_seed(0)
    enc = Counting(6, 3)
    z_e = fm.Function("z_e(x)", net=enc)
    obj = fm.compile(r"\|z_e(x)\|^2 + \|sg(z_e(x))\|^2 + \|z_e(x) - 1\|^2", [z_e])
    obj(x=binary(4))
    assert enc.calls == 1


def test_the_plan_shows_a_start_value_drawn_from_its_declaration():
    torch.manual_seed(0)
    decls = _dmm() + [fm.Normal("p(z_0)", loc=0.0, scale=1.0, shape=(3,))]
    plan = fm.compile(DMM, decls).explain()
    assert plan.count("draw z_0 ~ p(z_0)") == 1 and "drawn at first use" in plan


def test_a_letter_subscript_no_sum_binds_is_part_of_the_name():
    q = fm.Normal("q(z)", loc=0.0, scale=1.0)
    g = fm.Function("f(z)", net=nn.Identity())
    obj = fm.compile("E_q(z)[f(z)] * 0 + x_q + lambda_x", [q, g])
    assert obj.inputs == ("lambda_x", "x_q")
    torch.testing.assert_close(obj(x_q=torch.ones(3), lambda_x=2.0), torch.full((3,), 3.0))


def test_a_sum_over_examples_is_one_vectorised_evaluation():
    """\\frac{1}{N}\\sum_{i=1}^{N} f(x^{(i)}): the body does not depend on i, so it runs once (not N times)."""
    torch.manual_seed(0)
    net = Counting(6, 1)
    obj = fm.compile(r"\frac{1}{N}\sum_{i=1}^{N} f(x^{(i)})", [fm.Function("f(x)", net=net)])
    x = binary(5)
    value = obj(x=x, N=1000)
    assert net.calls == 1
    torch.testing.assert_close(value, net.lin(x).squeeze(-1))
    assert "does not use i" in obj.explain()


def test_observed_data_without_a_batch_dimension_is_an_input_error():
    q, p, prior = vae()
    obj = fm.compile(VAE, [q, p, prior])
    with pytest.raises(fm.FormulaInputError, match=r"needs a batch dimension .* pass x\[None\]"):
        obj(x=torch.ones(6))
    assert obj(x=torch.ones(1, 6)).shape == (1,)


def test_a_prior_of_the_wrong_size_says_which_shapes_differ():
    q = fm.Normal("q(z|x)", net=Gaussian(6, 16))
    p = fm.Bernoulli("p(x|z)", net=Logits(16))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(8,))
    with pytest.raises(fm.FormulaInputError, match=r"event shape \[16\].* \[8\]"):
        fm.compile(VAE, [q, p, prior])(x=binary(4))


def test_a_named_game_keeps_its_players_and_its_value():
    """\\min_G \\max_D V(D, G) = ...: the prefix covers the relation chain; the objective is its named member."""
    torch.manual_seed(0)
    d_net = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    g_net = nn.Linear(3, 2)
    decls = [fm.Function("D(x)", net=d_net), fm.Function("G(z)", net=g_net), fm.Data("p_data(x)"),
             fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(3,))]
    obj = fm.compile(r"\min_G \max_D V(D, G) = E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))]",
                     decls)
    assert obj.players == (("min", ("G",)), ("max", ("D",)))
    x = torch.randn(4, 2)
    torch.manual_seed(1)
    value = obj(x=x)
    torch.manual_seed(1)
    z = torch.randn(4, 3)
    expected = torch.log(d_net(x)).squeeze(-1) + torch.log(1 - d_net(g_net(z))).squeeze(-1)
    torch.testing.assert_close(value, expected)


def test_a_decorated_draw_is_not_the_plain_variable():
    """Drawing \\hat x does not make the data x a sampled variable (latents are told apart by decoration)."""
    torch.manual_seed(0)
    q = fm.Normal(r"q(\hat x|x)", net=Gaussian(6, 6))
    p = fm.Bernoulli(r"p(x|\hat x)", net=Logits(6))
    obj = fm.compile(r"E_{q(\hat x|x)}[\log p(x|\hat x)]", [q, p])
    assert obj.inputs == ("x",)
    assert obj(x=binary(3)).shape == (3,)


def test_float64_data_for_a_float32_net_names_the_dtypes_and_the_fix():
    q, p, prior = vae()
    with pytest.raises(fm.FormulaInputError, match=r"x is float64 but the net's parameters are float32: .*\.float\(\)"):
        fm.compile(VAE, [q, p, prior])(x=binary(4).double())


def test_observed_data_with_an_extra_dimension_is_an_input_error():
    q, p, prior = vae()
    with pytest.raises(fm.FormulaInputError, match=r"declare event_dims=2"):
        fm.compile(VAE, [q, p, prior])(x=binary(4)[:, None])


def test_the_plan_says_where_a_batch_without_data_comes_from():
    g = fm.Function("G(z)", net=nn.Linear(2, 1))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))
    assert "batch_size=" in fm.compile("E_p(z)[G(z)]", [g, prior]).explain()


def test_an_expectation_over_an_undeclared_sampler_is_an_error():
    f = fm.Function("f(z)", net=nn.Identity())
    q = fm.Normal("q(z)", loc=0.0, scale=1.0)
    with pytest.raises(fm.FormulaCheckError, match="no declared Q"):
        fm.compile(r"\langle f(z) \rangle_{z \sim Q}", [f, q])


@pytest.mark.parametrize("text", [r"\beta(x)", r"\beta(x+1)"])
def test_a_greek_letter_called_without_a_declaration_says_how_to_write_the_product(text):
    with pytest.raises(fm.FormulaCheckError, match=r"for the product write \\beta \\cdot"):
        fm.compile(text, [])
    assert fm.compile(r"\beta (x+1)", [])(beta=2.0, x=torch.ones(2)).tolist() == [4.0, 4.0]


def test_a_constant_prior_is_built_once_and_rebuilt_when_its_parameters_change():
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))
    assert prior.condition() is prior.condition()
    prior.loc.add_(1.0)  # an in-place change is a new version: the cached distribution is not reused
    torch.testing.assert_close(prior.condition().mean, torch.ones(2))
    learnable = fm.Normal("p(z)", loc=torch.nn.Parameter(torch.zeros(2)), scale=1.0, shape=(2,))
    assert learnable.condition() is not learnable.condition()  # its graph is freed by every backward


def test_the_progress_bar_counts_toward_a_fixed_last_epoch(capsys):
    q, p, prior = vae()
    trainer = fm.Trainer(fm.compile(VAE, [q, p, prior]), batch_size=4, progress=True)
    trainer.fit({"x": binary(8)}, epochs=3)
    err = capsys.readouterr().err
    assert "epoch 3/3" in err and "/4" not in err and "/5" not in err
