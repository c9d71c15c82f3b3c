"""Declared distributions and functions (formula.families.declarations): the contract the compiler calls every step."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import formula as fm
import formula.families.declarations as fd
from formula.families.delta import Delta
from formula.errors import FormulaCheckError, FormulaError, FormulaInputError

B, K, X, E = 5, 2, 4, 3  # batch, draws, input width, event width (also the number of categories)


def pos(h):
    return F.softplus(h) + 0.5


# family -> (net output from h [..., 2E], fixed parameters of event width E, torch family, elementwise?)
CASES = {
    "Normal": (lambda h: {"loc": h[..., :E], "scale": pos(h[..., E:])},
               {"loc": torch.zeros(E), "scale": torch.ones(E)}, D.Normal, True),
    "Laplace": (lambda h: {"loc": h[..., :E], "scale": pos(h[..., E:])},
                {"loc": 0.5, "scale": 2.0}, D.Laplace, True),
    "Bernoulli": (lambda h: {"logits": h[..., :E]}, {"probs": 0.3}, D.Bernoulli, True),
    "Binomial": (lambda h: {"logits": h[..., :E]}, {"total_count": 4.0, "probs": 0.3}, D.Binomial, True),
    "Poisson": (lambda h: {"rate": pos(h[..., :E])}, {"rate": 2.0}, D.Poisson, True),
    "Categorical": (lambda h: {"logits": h[..., :E]}, {"probs": torch.tensor([0.2, 0.3, 0.5])},
                    D.Categorical, False),
    "OneHotCategorical": (lambda h: {"probs": torch.softmax(h[..., :E], -1)}, {"logits": torch.zeros(E)},
                          D.OneHotCategorical, False),
    "Beta": (lambda h: {"concentration1": pos(h[..., :E]), "concentration0": pos(h[..., E:])},
             {"concentration1": 2.0, "concentration0": 3.0}, D.Beta, True),
    "Gamma": (lambda h: {"concentration": pos(h[..., :E]), "rate": pos(h[..., E:])},
              {"concentration": 2.0, "rate": 1.5}, D.Gamma, True),
    "Dirichlet": (lambda h: {"concentration": pos(h[..., :E])}, {"concentration": torch.ones(E)},
                  D.Dirichlet, False),
    "RelaxedBernoulli": (lambda h: {"logits": h[..., :E]}, {"temperature": 0.5, "logits": 0.0},
                         D.RelaxedBernoulli, True),
    "RelaxedCategorical": (lambda h: {"logits": h[..., :E]}, {"temperature": 0.7, "probs": torch.ones(E) / E},
                           D.RelaxedOneHotCategorical, False),
    "Deterministic": (lambda h: h[..., :E], {"value": torch.arange(E, dtype=torch.float32)}, Delta, True),
}
NET_EXTRA = {"Binomial": {"total_count": torch.tensor(4.0)}, "RelaxedBernoulli": {"temperature": torch.tensor(0.5)},
             "RelaxedCategorical": {"temperature": torch.tensor(0.7)}}
FAMILIES = sorted(CASES)


class Net(nn.Module):
    """A small network of x, mapped to a family's parameters by `head`."""

    def __init__(self, head):
        super().__init__()
        self.lin = nn.Linear(X, 2 * E)
        self.head = head

    def forward(self, x):
        return self.head(self.lin(x))


def declare(name, signature="q(z|x)", **kw):
    head = CASES[name][0]
    return getattr(fd, name)(signature, net=Net(head), **NET_EXTRA.get(name, {}), **kw)


def reference(name, params, event_dims):
    """The hand-built torch distribution the declaration must equal."""
    torch_family = CASES[name][2]
    dist = torch_family(**params, validate_args=False)
    return D.Independent(dist, event_dims) if event_dims else dist


def net_params(d, x):
    out = d.net(x)
    out = out if isinstance(out, dict) else {"value": out}
    return {**NET_EXTRA.get(type(d).__name__, {}), **out}


# --- per family: nets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_net_condition_shapes_and_log_prob_match_torch(name):
    torch.manual_seed(0)
    d = declare(name)
    elementwise = CASES[name][3]
    assert d.event_dims == (1 if elementwise else 0)
    assert d.name == "q" and d.var_names == ("z",) and d.given_names == ("x",)
    x = torch.randn(B, X)
    dist = d.condition(x)
    assert dist.batch_shape == (B,)
    value = dist.sample((K,))
    assert value.shape[:2] == (K, B)
    ref = reference(name, net_params(d, x), d.event_dims)
    assert dist.event_shape == ref.event_shape
    lp = dist.log_prob(value)
    assert lp.shape == (K, B)
    torch.testing.assert_close(lp, ref.log_prob(value), rtol=1e-6, atol=1e-6)
    # conditioning values with a sample dimension keep it
    xs = torch.randn(K, B, X)
    assert d.condition(xs).batch_shape == (K, B)


@pytest.mark.parametrize("name", [n for n in FAMILIES if CASES[n][2].has_rsample])
def test_rsample_gradients_reach_the_net(name):
    torch.manual_seed(0)
    d = declare(name)
    draw = d.condition(torch.randn(B, X)).rsample((K,))
    (draw.float() * torch.randn_like(draw.float())).sum().backward()
    for p in d.net.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("name", FAMILIES)
def test_capabilities_are_read_from_the_torch_family(name):
    cls, torch_family = getattr(fd, name), CASES[name][2]
    assert fd.FAMILIES[name] is cls
    for d in (declare(name), cls("p(z)", **CASES[name][1])):
        caps = d.capabilities
        assert caps.family is torch_family and caps.label == name
        assert caps.reparameterised == torch_family.has_rsample
        assert caps.enumerable == torch_family.has_enumerate_support
        assert caps.discrete == (name in ("Bernoulli", "Binomial", "Poisson", "Categorical", "OneHotCategorical"))
        assert caps.has_density and caps.can_sample
        assert d.kind is fm.DeclKind.DISTRIBUTION
        assert not hasattr(cls, "has_rsample") and not hasattr(cls, "discrete")  # no hand-copied class flags


@pytest.mark.parametrize("name", FAMILIES)
def test_named_sample_and_log_prob(name):
    torch.manual_seed(0)
    d = declare(name)
    x = torch.randn(B, X)
    out = d.sample(x=x)
    assert set(out) == {"z"}
    lp = d.log_prob(z=out["z"], x=x)
    assert lp.shape == (B,)
    torch.testing.assert_close(lp, d.condition(x).log_prob(out["z"]))
    assert d.sample((K,), x=x)["z"].shape[:2] == (K, B)
    with pytest.raises(FormulaInputError, match="missing x"):
        d.log_prob(z=out["z"])
    with pytest.raises(FormulaInputError, match="unknown y"):
        d.sample(x=x, y=x)


@pytest.mark.parametrize("name", FAMILIES)
def test_float64_net_gives_float64_values(name):
    torch.manual_seed(0)
    d = declare(name).double()
    x = torch.randn(B, X, dtype=torch.float64)
    dist = d.condition(x)
    value = dist.sample()
    if value.is_floating_point():
        assert value.dtype == torch.float64
    assert dist.log_prob(value).dtype == torch.float64


@pytest.mark.parametrize("name", FAMILIES)
def test_state_dict_round_trip_and_repr(name):
    torch.manual_seed(0)
    a, b = declare(name), declare(name)
    b.load_state_dict(a.state_dict())
    x = torch.randn(B, X)
    value = a.condition(x).sample()
    torch.testing.assert_close(a.condition(x).log_prob(value), b.condition(x).log_prob(value))
    text = repr(a)
    assert name in text and "q(z|x)" in text and "Net" in text and "Linear" in text


# --- per family: fixed parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_fixed_parameters_broadcast_against_sample_and_batch_dims(name):
    torch.manual_seed(0)
    fixed = CASES[name][1]
    elementwise = CASES[name][3]
    shape = (E,) if elementwise else ()
    d = getattr(fd, name)("p(z)", shape=shape or None, **fixed)
    assert d.event_dims == len(shape)
    dist = d.condition()
    assert dist.batch_shape == ()
    value = d.sample((K, B))["z"]
    lp = d.log_prob(z=value)
    assert lp.shape == (K, B)
    tensors = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in fixed.items()}
    ref = CASES[name][2](**tensors, validate_args=False)
    ref = D.Independent(ref.expand(shape), len(shape)) if shape else ref
    torch.testing.assert_close(lp, ref.log_prob(value), rtol=1e-6, atol=1e-6)
    # numbers and tensors are buffers, so they move and save with the module
    assert {n for n, _ in d.named_buffers()} == set(fixed)
    assert not list(d.parameters())


@pytest.mark.parametrize("name", FAMILIES)
def test_to_meta_moves_buffers_parameters_and_net(name):
    fixed = getattr(fd, name)("p(z)", **CASES[name][1]).to("meta")
    assert all(t.device.type == "meta" for t in fixed.buffers())
    assert "p(z)" in repr(fixed)
    net = declare(name).to("meta")
    assert all(p.device.type == "meta" for p in net.parameters())


def test_fixed_shape_expands_buffers_and_sets_event_dims():
    prior = fd.Normal("p(z)", loc=0.0, scale=1.0, shape=(64,))
    assert prior.loc.shape == (64,) and prior.event_dims == 1
    assert prior.condition().event_shape == (64,)
    assert prior.sample((B,))["z"].shape == (B, 64)
    z = torch.randn(K, B, 64)
    expected = D.Normal(torch.zeros(64), torch.ones(64)).log_prob(z).sum(-1)
    torch.testing.assert_close(prior.log_prob(z=z), expected)
    assert "loc=0" in repr(prior) and "shape=(64,)" in repr(prior)
    # an explicit event_dims splits shape into batch and event
    seq = fd.Normal("p(z)", loc=0.0, scale=1.0, shape=(7, 64), event_dims=1)
    assert seq.condition().batch_shape == (7,) and seq.condition().event_shape == (64,)
    # categorical labels: shape is the number of independent labels, probs keep their category dim
    labels = fd.Categorical("p(y)", probs=torch.ones(10) / 10, shape=(4,))
    assert labels.probs.shape == (4, 10) and labels.sample()["y"].shape == (4,)


def test_fixed_tensor_parameters_without_shape_give_the_event():
    prior = fd.Normal("p(z)", loc=torch.zeros(6), scale=1.0)
    assert prior.event_dims == 1 and prior.condition().event_shape == (6,)
    scalar = fd.Normal("p(z)", loc=0.0, scale=1.0)
    assert scalar.event_dims == 0 and scalar.log_prob(z=torch.zeros(B, 6)).shape == (B, 6)


def test_learnable_parameters_are_registered_and_trained():
    loc = nn.Parameter(torch.zeros(()))
    prior = fd.Normal("p(z)", loc=loc, scale=1.0, shape=(4,))
    assert [n for n, _ in prior.named_parameters()] == ["loc"]
    assert prior.loc is loc and prior.condition().event_shape == (4,)
    prior.log_prob(z=torch.ones(B, 4)).sum().backward()
    assert loc.grad is not None and loc.grad.item() == pytest.approx(B * 4)
    restored = fd.Normal("p(z)", loc=nn.Parameter(torch.ones(())), scale=1.0, shape=(4,))
    restored.load_state_dict(prior.state_dict())
    assert restored.loc.item() == 0.0


def test_fixed_parameters_mix_with_net_outputs():
    d = fd.Normal("p(x|z)", net=lambda z: {"loc": z}, scale=0.1)
    z = torch.randn(B, E)
    torch.testing.assert_close(d.log_prob(x=z, z=z), D.Normal(z, 0.1).log_prob(z).sum(-1))


def test_deterministic_is_a_point_mass_at_the_net_output():
    f = fd.Deterministic("f(h|x)", net=nn.Linear(X, E))
    x = torch.randn(B, X)
    h = f.sample(x=x)["h"]
    torch.testing.assert_close(h, f.net(x))
    assert f.log_prob(h=h, x=x).abs().sum() == 0 and f.log_prob(h=h, x=x).shape == (B,)
    assert f.condition(x).entropy().shape == (B,)
    dict_net = fd.Deterministic("f(h|x)", net=lambda x: {"value": 2 * x})
    torch.testing.assert_close(dict_net.sample(x=x)["h"], 2 * x)


# --- networks are called by keyword or by position -----------------------------------------------------------


class Recorder(nn.Module):
    """Records how it was called and returns a Normal's parameters of its first input."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, *args, **kwargs):
        self.calls.append((len(args), tuple(kwargs)))
        first = args[0] if args else next(iter(kwargs.values()))
        return {"loc": first, "scale": torch.ones_like(first)}


@pytest.mark.parametrize("signature, expected", [
    ("q(z|x,y)", (0, ("x", "y"))),
    ("q(z_1|z_2,b_1,b_2)", (0, ("z_2", "b_1", "b_2"))),
    ("q(z_t|z_{t-1},x)", (2, ())),
    ("p(z'|z)", (0, ("z",))),
    ("p(x|z')", (1, ())),
    ("p(z)", (0, ())),
])
def test_net_keywords_only_for_identifier_names(signature, expected):
    rec = Recorder()
    d = fd.Normal(signature, net=rec) if signature != "p(z)" else fd.Normal(signature, net=lambda: {
        "loc": torch.zeros(E), "scale": torch.ones(E)})
    n = len(d.given_names)
    d.condition(*[torch.zeros(B, E)] * n)
    if n:
        assert rec.calls == [expected]


def test_net_with_one_positional_parameter_is_called_positionally():
    class Positional(nn.Module):
        def forward(self, inputs):
            return {"logits": inputs}

    d = fd.Bernoulli("p(x|z)", net=Positional())
    assert d.condition(torch.zeros(B, E)).batch_shape == (B,)


def test_conditions_keep_declared_order():
    d = fd.Normal("q(z|x,y)", net=lambda x, y: {"loc": x - y, "scale": torch.ones_like(x)})
    x, y = torch.ones(B, E), torch.zeros(B, E)
    torch.testing.assert_close(d.condition(x, y).mean, x)
    torch.testing.assert_close(d.sample(y=y, x=x)["z"].shape, x.shape)


# --- discrete support ------------------------------------------------------------------------------------


def test_enumerate_support_categorical_and_one_hot():
    torch.manual_seed(0)
    x = torch.randn(B, X)
    cat = declare("Categorical", "q(y|x)")
    support = cat.enumerate_support(x)
    assert support.shape == (E, B)
    torch.testing.assert_close(cat.condition(x).log_prob(support).exp().sum(0), torch.ones(B))
    assert cat.enumerate_support(x, expand=False).shape == (E, 1)
    onehot = declare("OneHotCategorical", "q(y|x)")
    support = onehot.enumerate_support(x)
    assert support.shape == (E, B, E)
    torch.testing.assert_close(onehot.condition(x).log_prob(support).exp().sum(0), torch.ones(B))


def test_enumerate_support_of_a_bernoulli_vector_is_the_joint_support():
    torch.manual_seed(0)
    x = torch.randn(B, X)
    d = declare("Bernoulli", "q(y|x)")
    support = d.enumerate_support(x)
    assert support.shape == (2 ** E, B, E)
    assert len({tuple(row.tolist()) for row in support[:, 0]}) == 2 ** E
    torch.testing.assert_close(d.condition(x).log_prob(support).exp().sum(0), torch.ones(B))
    with pytest.raises(FormulaCheckError, match="too many"):
        fd.Bernoulli("p(x)", probs=0.5, shape=(40,)).enumerate_support()
    with pytest.raises(FormulaCheckError, match="not a discrete"):
        declare("Normal").enumerate_support(x)


# --- declaration errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("build, match", [
    (lambda: fd.Normal("q(z|x", net=nn.Identity()), "signature"),
    (lambda: fd.Normal("q(z,w|x)", net=nn.Identity()), "one variable"),
    (lambda: fd.Normal("p(z)", mean=0.0, scale=1.0), "unknown parameter 'mean'"),
    (lambda: fd.Normal("p(z)", loc=0.0), "missing parameter scale"),
    (lambda: fd.Bernoulli("p(x)", probs=0.5, logits=0.0), "only one of probs or logits"),
    (lambda: fd.Normal("q(z|x)", loc=0.0, scale=1.0), "needs net="),
    (lambda: fd.Normal("p(z)", loc=0.0, scale=-1.0), "invalid parameters"),
    (lambda: fd.Normal("p(z)", loc=0.0, scale=1.0, event_dims=1), "event_dims=1"),
    (lambda: fd.Normal("p(z)", loc=torch.zeros(3), scale=1.0, shape=(4,)), "does not broadcast"),
    (lambda: fd.Normal(42, loc=0.0, scale=1.0), "signature must be a string"),
    (lambda: fd.Normal("q(z|x)", net=3), "net= must be"),
    (lambda: fd.Normal("q(z|z)", net=nn.Identity()), "appears twice"),
    (lambda: fd.Function("D(x)", net=None), "needs net="),
    (lambda: fd.Distribution("p(z)"), "the base of the families"),
])
def test_declaration_errors(build, match):
    with pytest.raises(FormulaCheckError, match=match) as info:
        build()
    if info.value.text is not None:
        assert "^" in str(info.value)


@pytest.mark.parametrize("net, match", [
    (lambda x: {"mu": x, "sigma": x}, r"Normal q\(z\|x\).*'mu', 'sigma'.*expected loc, scale"),
    (lambda x: {"loc": x}, "missing scale"),
    (lambda x: x, "must return a dict"),
])
def test_net_returning_wrong_keys_names_the_distribution_and_the_keys(net, match):
    d = fd.Normal("q(z|x)", net=net)
    with pytest.raises(FormulaError, match=match) as info:
        d.condition(torch.zeros(B, E))
    assert isinstance(info.value, (FormulaCheckError, FormulaInputError))
    assert "^" in str(info.value)


def test_net_output_of_the_wrong_shape_is_an_input_error():
    d = fd.Normal("q(z|x)", net=lambda x: {"loc": x, "scale": torch.ones(7)})
    with pytest.raises(FormulaInputError, match="q\\(z\\|x\\)"):
        d.condition(torch.zeros(B, E))
    scalar = fd.Normal("q(z|x)", net=lambda x: {"loc": x.sum(), "scale": x.sum().exp()})
    with pytest.raises(FormulaInputError, match="event"):
        scalar.condition(torch.zeros(B, E))
    shaped = fd.Normal("q(z|x)", net=lambda x: {"loc": x, "scale": torch.ones_like(x)}, shape=(4,))
    with pytest.raises(FormulaInputError, match="trailing shape"):
        shaped.condition(torch.zeros(B, E))
    with pytest.raises(FormulaInputError, match="takes 1 values"):
        d.condition()


# --- Data and Function -----------------------------------------------------------------------------------


def test_data_returns_the_batch_and_has_no_density():
    data = fd.Data("p_{data}(x,y)")
    assert data.name == "p_data" and data.var_names == ("x", "y")
    x, y = torch.randn(B, X), torch.randn(B)
    out = data.sample(x=x, y=y)
    assert out["x"] is x and out["y"] is y
    assert data.sample((K,), x=x, y=y)["x"].shape == (K, B, X)
    with pytest.raises(FormulaCheckError, match="no density"):
        data.log_prob(x=x, y=y)
    with pytest.raises(FormulaCheckError):
        data.condition()
    with pytest.raises(FormulaInputError, match="missing y"):
        data.sample(x=x)
    assert "p_{data}(x,y)" in repr(data)


def test_function_calls_its_net_in_declared_order_and_by_name():
    critic = fd.Function("T(x,z)", net=lambda x, z: x * 2 + z)
    assert critic.name == "T" and critic.arg_names == ("x", "z") and critic.parsed.name == "T"
    x, z = torch.ones(B), torch.zeros(B)
    torch.testing.assert_close(critic(x, z), 2 * x)
    torch.testing.assert_close(critic(z=z, x=x), 2 * x)
    with pytest.raises(FormulaInputError, match="takes 2 arguments"):
        critic(x)
    disc = fd.Function("D_{psi}(x)", net=nn.Sequential(nn.Linear(X, 1)))
    assert disc.name == "D_psi" and len(list(disc.parameters())) == 2
    assert disc(torch.zeros(B, X)).shape == (B, 1)
    assert "D_{psi}(x)" in repr(disc) and "Linear" in repr(disc)
    assert copy.deepcopy(disc).state_dict().keys() == disc.state_dict().keys()


@pytest.mark.parametrize("signature, name, var_names, given_names", [
    ("q(z|x)", "q", ("z",), ("x",)),
    ("p_B(z|b)", "p_B", ("z",), ("b",)),
    ("p_{prior}(z)", "p_prior", ("z",), ()),
    ("q(z_t|z_{t-1},x)", "q", ("z_t",), ("z_{t-1}", "x")),
    ("q(z_1|z_2,b_1,b_2)", "q", ("z_1",), ("z_2", "b_1", "b_2")),
])
def test_names_of_declared_signatures(signature, name, var_names, given_names):
    d = fd.Normal(signature, net=lambda *a, **k: {"loc": 0.0, "scale": 1.0})
    assert (d.name, d.var_names, d.given_names) == (name, var_names, given_names)
    assert d.parsed.name == signature[0] and d.signature_text == signature


# --- a property: shapes of draws and log-densities ------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=0, max_size=3),
       sample=st.lists(st.integers(1, 3), min_size=0, max_size=2), data=st.data())
def test_log_prob_reduces_exactly_the_event_dims(shape, sample, data):
    event_dims = data.draw(st.integers(0, len(shape)))
    d = fd.Normal("p(z)", loc=0.0, scale=1.0, shape=tuple(shape) or None, event_dims=event_dims)
    z = d.sample(tuple(sample))["z"]
    assert z.shape == tuple(sample) + tuple(shape)
    lp = d.log_prob(z=z)
    assert lp.shape == tuple(sample) + tuple(shape)[:len(shape) - event_dims]
    torch.testing.assert_close(lp.sum(), D.Normal(0.0, 1.0).log_prob(z).sum())
