"""The declaration protocol (formula.families.protocol) and LazyDistribution: capabilities read per instance from
what a declaration returns, and a declaration type written outside the package used in a compiled objective."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.distributions as D
from torch import nn

import formula as fm
from formula.families.protocol import capabilities_of

B, X, Z, R, C = 6, 5, 3, 2, 4  # batch, data width, latent width, low rank, mixture components


# --- capabilities of torch distributions ---------------------------------------------------------------------


def mixture(batch=()):
    comp = D.Independent(D.Normal(torch.zeros(*batch, C, X), torch.ones(*batch, C, X)), 1)
    return D.MixtureSameFamily(D.Categorical(logits=torch.zeros(*batch, C)), comp)


@pytest.mark.parametrize("dist, expected", [
    (D.Independent(D.Normal(torch.zeros(3), 1.0), 1), dict(reparameterised=True, discrete=False, enumerable=False,
                                                          family=D.Normal)),
    (D.Independent(D.Independent(D.Bernoulli(torch.full((2, 3), 0.5)), 1), 1),
     dict(reparameterised=False, discrete=True, enumerable=True, family=D.Bernoulli)),
    (mixture(), dict(reparameterised=False, discrete=False, enumerable=False, family=D.MixtureSameFamily)),
    (D.Poisson(torch.ones(3)), dict(reparameterised=False, discrete=True, enumerable=False, family=D.Poisson)),
    (D.LowRankMultivariateNormal(torch.zeros(Z), torch.ones(Z, R), torch.ones(Z)),
     dict(reparameterised=True, discrete=False, family=D.LowRankMultivariateNormal)),
    (D.RelaxedBernoulli(torch.tensor(0.5), probs=torch.full((3,), 0.5)),
     dict(reparameterised=True, discrete=False, family=D.RelaxedBernoulli)),
])
def test_capabilities_are_read_from_the_instance(dist, expected):
    caps = capabilities_of(dist)
    for name, value in expected.items():
        assert getattr(caps, name) == value, name
    assert caps.has_density and caps.can_sample and caps.label == expected["family"].__name__
    assert capabilities_of(type(dist)).family is type(dist)  # a class works too (read from its flags)


def test_capabilities_are_frozen_and_hashable():
    caps = capabilities_of(D.Normal(0.0, 1.0), label="Normal")
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.reparameterised = False
    assert {caps: 1}[capabilities_of(D.Normal(1.0, 2.0), label="Normal")] == 1


def test_kinds_and_capabilities_of_data_and_functions():
    data, critic = fm.Data("p_data(x)"), fm.Function("D(x)", net=nn.Linear(X, 1))
    assert data.kind is fm.DeclKind.DATA and critic.kind is fm.DeclKind.FUNCTION
    assert data.capabilities.can_sample and not data.capabilities.has_density
    assert not critic.capabilities.can_sample and not critic.capabilities.has_density
    for d in (data, critic):
        assert isinstance(d, fm.Declaration) and isinstance(d, nn.Module)


# --- LazyDistribution --------------------------------------------------------------------------------------


class LowRankEncoder(nn.Module):
    """q(z|x) as a low-rank Gaussian: a module returning a torch distribution (the zuko pattern)."""

    def __init__(self):
        super().__init__()
        self.loc, self.factor, self.diag = nn.Linear(X, Z), nn.Linear(X, Z * R), nn.Linear(X, Z)

    def forward(self, x):
        factor = self.factor(x).unflatten(-1, (Z, R))
        return D.LowRankMultivariateNormal(self.loc(x), factor, nn.functional.softplus(self.diag(x)) + 0.1,
                                           validate_args=False)


class Normalised(nn.Module):
    """Returns a Normal; batch norm inside, so a probe in training mode would move its statistics."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(X)

    def forward(self, x):
        return D.Normal(self.norm(x), 1.0)


def test_example_probe_reads_capabilities_in_eval_mode_without_moving_statistics():
    module = Normalised()
    q = fm.LazyDistribution("q(z|x)", module, event_dims=1, example={"x": torch.randn(B, X) * 10})
    assert module.training and module.norm.num_batches_tracked.item() == 0
    assert torch.equal(module.norm.running_mean, torch.zeros(X))
    caps = q.capabilities
    assert caps.reparameterised and caps.family is D.Normal and not caps.enumerable
    assert q.condition(torch.randn(B, X)).event_shape == (X,)
    by_position = fm.LazyDistribution("q(z|x)", module, example=(torch.randn(B, X),))
    assert by_position.capabilities == caps


def test_unconditional_module_is_probed_when_asked_and_a_conditional_one_needs_an_example():
    calls = []

    def prior():
        calls.append(1)
        return D.MultivariateNormal(torch.zeros(Z), torch.eye(Z))

    p = fm.LazyDistribution("p(z)", prior)
    assert not calls
    assert p.capabilities.family is D.MultivariateNormal and calls == [1]
    q = fm.LazyDistribution("q(z|x)", LowRankEncoder())
    with pytest.raises(fm.FormulaCheckError, match=r"example=\{'x': \.\.\.\}"):
        q.capabilities
    q.condition(torch.randn(B, X))  # the first call reads them
    assert q.capabilities.family is D.LowRankMultivariateNormal


def test_module_must_keep_returning_one_class_of_distribution():
    flip = [False]

    def module(x):
        return D.Laplace(x, 1.0) if flip[0] else D.Normal(x, 1.0)

    q = fm.LazyDistribution("q(z|x)", module, example={"x": torch.zeros(B, Z)})
    flip[0] = True
    with pytest.raises(fm.FormulaInputError, match="returned a Laplace.*read from a Normal"):
        q.condition(torch.zeros(B, Z))
    bad = fm.LazyDistribution("q(z|x)", lambda x: {"loc": x})
    with pytest.raises(fm.FormulaCheckError, match="must return a torch.distributions.Distribution, got dict"):
        bad.condition(torch.zeros(B, Z))


def test_declared_capabilities_are_checked_against_the_first_distribution():
    said = fm.Capabilities(reparameterised=True, discrete=False, enumerable=False, has_density=True,
                           can_sample=True, family=None, label="Mixture")
    q = fm.LazyDistribution("p(x)", lambda: mixture(), capabilities=said)
    assert q.capabilities is said
    with pytest.raises(fm.FormulaCheckError, match="says reparameterised"):
        q.condition()


def test_declaration_errors_of_lazy_distributions():
    with pytest.raises(fm.FormulaCheckError, match="must be an nn.Module or a callable"):
        fm.LazyDistribution("q(z|x)", 3)
    with pytest.raises(fm.FormulaCheckError, match="event_dims"):
        fm.LazyDistribution("q(z|x)", LowRankEncoder(), event_dims=-1)
    with pytest.raises(fm.FormulaCheckError, match="capabilities="):
        fm.LazyDistribution("q(z|x)", LowRankEncoder(), capabilities="reparameterised")
    with pytest.raises(fm.FormulaInputError, match="missing x"):
        fm.LazyDistribution("q(z|x)", LowRankEncoder(), example={"y": torch.zeros(B, X)})
    with pytest.raises(fm.FormulaInputError, match=r"event_dims=2 but its module returned batch shape \[6\]"):
        fm.LazyDistribution("q(z|x)", LowRankEncoder(), event_dims=2, example={"x": torch.zeros(B, X)})


def test_lazy_distribution_samples_scores_enumerates_and_saves():
    torch.manual_seed(0)
    enc = LowRankEncoder()
    q = fm.LazyDistribution("q(z|x)", enc, example={"x": torch.zeros(1, X)})
    x = torch.randn(B, X)
    z = q.sample(x=x)["z"]
    assert z.shape == (B, Z) and z.requires_grad
    torch.testing.assert_close(q.log_prob(z=z, x=x), enc(x).log_prob(z))
    assert set(q.state_dict()) == {f"module.{k}" for k in enc.state_dict()}
    labels = fm.LazyDistribution("p(y)", lambda: D.Bernoulli(torch.full((3,), 0.3)), event_dims=1)
    assert labels.capabilities.enumerable
    support = labels.enumerate_support()
    assert support.shape == (8, 3)
    torch.testing.assert_close(labels.condition().log_prob(support).exp().sum(), torch.tensor(1.0))
    assert "q(z|x)" in repr(q) and "LowRankEncoder" in repr(q)


def test_validation_reaches_nested_distributions():
    def module(x):
        comp = D.Independent(D.Normal(x.unsqueeze(-2).expand(-1, C, -1), -torch.ones(C, X), validate_args=False), 1)
        return D.MixtureSameFamily(D.Categorical(logits=torch.zeros(x.shape[0], C)), comp, validate_args=False)

    p = fm.LazyDistribution("p(x|z)", module, example={"z": torch.zeros(B, X)})
    p.condition(torch.zeros(B, X))  # not validated by default: no cost
    with pytest.raises(fm.FormulaInputError, match=r"parameter component_distribution\.base_dist\.scale must be > 0"):
        p.condition(torch.zeros(B, X), validate=True)


# --- a new declaration type, written here, in a compiled objective -------------------------------------------


class MixtureDecoder(fm.Declaration):
    """p(x|z) as a mixture of C diagonal Gaussians: a declaration type implemented from outside formula."""

    def __init__(self, signature: str):
        super().__init__(signature)
        self.logits, self.locs = nn.Linear(Z, C), nn.Linear(Z, C * X)
        self.log_scale = nn.Parameter(torch.zeros(C, X))

    @property
    def capabilities(self) -> fm.Capabilities:
        return fm.capabilities_of(D.MixtureSameFamily, label="Mixture")

    def condition(self, z, validate=False):
        comp = D.Independent(D.Normal(self.locs(z).unflatten(-1, (C, X)), self.log_scale.exp()), 1)
        return D.MixtureSameFamily(D.Categorical(logits=self.logits(z)), comp)


def test_new_declaration_type_in_a_compiled_elbo_matches_hand_written_pytorch():
    torch.manual_seed(0)
    x = torch.randn(B, X)
    q = fm.LazyDistribution("q(z|x)", LowRankEncoder(), example={"x": x})
    prior = fm.LazyDistribution("p(z)", lambda: D.MultivariateNormal(torch.zeros(Z), torch.eye(Z)))
    p = MixtureDecoder("p(x|z)")
    elbo = fm.compile("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))", [q, p, prior])
    assert "closed" in elbo.explain().lower()  # KL(LowRankMVN || MVN) is registered with torch
    torch.manual_seed(1)
    value = elbo(x=x)
    torch.manual_seed(1)
    qz = q.module(x)
    z = qz.rsample()
    expected = p.condition(z).log_prob(x) - D.kl_divergence(qz, prior.condition())
    assert value.shape == (B,)
    torch.testing.assert_close(value, expected)
    (-value.mean()).backward()
    assert all(t.grad is not None for t in [*q.parameters(), *p.parameters()])


def test_a_new_family_is_one_subclass_whose_capabilities_come_from_its_torch_class():
    class StudentT(fm.Distribution):
        torch_family = D.StudentT
        params = (("df",), ("loc",), ("scale",))

    t = StudentT("p(z)", df=3.0, loc=0.0, scale=1.0, shape=(Z,))
    caps = t.capabilities
    assert caps.reparameterised and not caps.discrete and caps.family is D.StudentT and caps.label == "StudentT"
    z = t.sample((B,))["z"]
    torch.testing.assert_close(t.log_prob(z=z), D.StudentT(3.0, 0.0, 1.0).log_prob(z).sum(-1))
    with pytest.raises(fm.FormulaInputError, match="parameter df must be > 0"):
        StudentT("q(z|x)", net=lambda x: {"df": -x, "loc": x, "scale": x}).condition(torch.ones(B, Z), validate=True)


def test_a_zuko_flow_is_a_lazy_distribution_in_a_compiled_objective():
    zuko = pytest.importorskip("zuko")  # not a dependency: the flow declaration over it comes later
    torch.manual_seed(0)
    flow = zuko.flows.MAF(features=Z, context=X, transforms=2, hidden_features=(16,))
    q = fm.LazyDistribution("q(z|x)", flow, example={"x": torch.zeros(1, X)})
    assert q.capabilities.reparameterised and q.capabilities.has_density
    p = fm.Normal("p(x|z)", net=_Loc(nn.Linear(Z, X)), scale=1.0)
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    objective = fm.compile("E_q(z|x)[log p(x|z) + log p(z) - log q(z|x)]", [q, p, prior])
    x = torch.randn(B, X)
    torch.manual_seed(1)
    value = objective(x=x)
    torch.manual_seed(1)
    qz = flow(x)
    z = qz.rsample()
    expected = (D.Normal(p.net(z)["loc"], 1.0).log_prob(x).sum(-1) + D.Normal(0.0, 1.0).log_prob(z).sum(-1)
                - qz.log_prob(z))
    torch.testing.assert_close(value, expected)


class _Loc(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin = lin

    def forward(self, z):
        return {"loc": self.lin(z)}
