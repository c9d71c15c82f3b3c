"""Normalizing flows through zuko (`fm.Flow`) and declared transforms with their log-determinant (`fm.Transform`,
`\\log |\\det \\partial f / \\partial z|`), against zuko's and torch's own computations."""

from __future__ import annotations

import pytest
import torch
import torch.distributions as D
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import formula as fm

zuko = pytest.importorskip("zuko")

B, X, Z, C = 6, 3, 2, 4
JACOBIAN = r"\log \left|\det \frac{\partial f(z)}{\partial z}\right|"


def _nsf(features=X, context=0):
    return zuko.flows.NSF(features=features, context=context, transforms=2, hidden_features=(16,))


# -- fm.Flow --


def test_an_unconditional_flow_log_density_is_zukos_own():
    torch.manual_seed(0)
    flow = _nsf()
    p = fm.Flow("p(x)", flow)
    x = torch.randn(B, X)
    torch.testing.assert_close(fm.compile("log p(x)", [p])(x=x), flow().log_prob(x))
    torch.testing.assert_close(p.log_prob(x=x), flow().log_prob(x))
    data = fm.compile("E_{p_data(x)}[log p(x)]", [p, fm.Data("p_data(x)")])
    torch.testing.assert_close(data(x=x), flow().log_prob(x))


def test_a_conditional_flow_log_density_is_zukos_own_and_several_conditions_are_one_context():
    torch.manual_seed(0)
    maf = zuko.flows.MAF(X, context=C, hidden_features=(16,))
    x, y = torch.randn(B, X), torch.randn(B, C)
    assert fm.Flow("p(x|y)", maf).capabilities.reparameterised  # known without example=
    torch.testing.assert_close(fm.compile("log p(x|y)", [fm.Flow("p(x|y)", maf)])(x=x, y=y), maf(y).log_prob(x))
    two = fm.Flow("p(x|y,w)", maf)
    value = fm.compile("log p(x|y,w)", [two])(x=x, y=y[:, :1], w=y[:, 1:])
    torch.testing.assert_close(value, maf(y).log_prob(x))
    assert {n for n, _ in two.named_parameters()} == {"module.flow." + n for n, _ in maf.named_parameters()}


def test_flow_draws_are_reparameterised_and_reach_the_flows_parameters():
    torch.manual_seed(0)
    q = fm.Flow("q(z|x)", zuko.flows.MAF(Z, context=X, hidden_features=(16,)))
    z = q.sample(x=torch.randn(B, X))["z"]
    assert z.shape == (B, Z) and z.requires_grad
    objective = fm.compile("E_q(z|x)[-log q(z|x)]", [q])
    assert "reparameterised" in objective.explain()
    objective(x=torch.randn(B, X)).mean().backward()
    assert all(p.grad is not None for p in q.parameters())


def test_a_module_returning_a_distribution_is_a_flow_too():
    net = nn.Linear(X, Z)
    q = fm.Flow("q(z|x)", lambda x: D.Independent(D.Normal(net(x), 1.0), 1), example={"x": torch.zeros(1, X)})
    assert q.capabilities.reparameterised and q.capabilities.family is D.Normal
    with pytest.raises(fm.FormulaCheckError, match="example="):
        fm.Flow("q(z|x)", lambda x: D.Normal(x, 1.0)).capabilities


def test_a_flow_prior_gets_a_monte_carlo_kl_equal_to_hand_written():
    torch.manual_seed(0)
    enc, prior_flow = nn.Linear(X, 2 * Z), _nsf(Z)
    q = fm.Normal("q(z|x)", net=lambda x: dict(zip(("loc", "scale"), (enc(x)[:, :Z], enc(x)[:, Z:].exp()))))
    prior = fm.Flow("p(z)", prior_flow)
    objective = fm.compile("-KL(q(z|x) || p(z))", [q, prior])
    assert "Monte Carlo" in objective.explain() or "monte carlo" in objective.explain().lower()
    x = torch.randn(B, X)
    torch.manual_seed(3)
    value = objective(x=x)
    torch.manual_seed(3)
    h = enc(x)
    qz = D.Independent(D.Normal(h[:, :Z], h[:, Z:].exp()), 1)
    z = qz.rsample()
    torch.testing.assert_close(value, prior_flow().log_prob(z) - qz.log_prob(z))


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(Z, 32), nn.Tanh(), nn.Linear(32, X))

    def forward(self, z):
        return {"loc": self.net(z)}


def test_a_conditional_flow_encoder_trains_inside_a_vae():
    torch.manual_seed(0)
    q = fm.Flow("q(z|x)", zuko.flows.MAF(Z, context=X, transforms=2, hidden_features=(32,)))
    prior = fm.Flow("p(z)", _nsf(Z))
    p = fm.Normal("p(x|z)", net=_Decoder(), scale=0.5)
    elbo = fm.compile("E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))", [q, p, prior])
    data = torch.randn(256, Z) @ torch.randn(Z, X) + 0.1 * torch.randn(256, X)

    def held_out():
        torch.manual_seed(7)
        with torch.no_grad():
            return float(elbo(x=data.repeat(8, 1)).mean())

    before = held_out()
    trainer = fm.Trainer(elbo, lr=3e-3, device="cpu", batch_size=64, progress=False)
    trainer.fit({"x": data}, epochs=10)  # 40 steps
    after = held_out()
    assert after > before + 1.0, (before, after)
    assert all(p.grad is not None for p in q.parameters())


# -- fm.Transform and log |det ∂f/∂z| --


def _jacobian_objective(f, text=JACOBIAN):
    return fm.compile(text, [f])


def _autograd_ladj(fn, z):
    jac = torch.stack([torch.autograd.functional.jacobian(fn, z[i]) for i in range(z.shape[0])])
    return torch.linalg.slogdet(jac).logabsdet


def test_planar_flow_log_determinant_equals_the_autograd_jacobian():
    torch.manual_seed(0)
    planar = fm.PlanarFlow(Z, layers=5, init_scale=0.7)
    z = torch.randn(B, Z)
    value = _jacobian_objective(fm.Transform("f(z)", planar))(z=z)
    torch.testing.assert_close(value, _autograd_ladj(planar, z))
    assert fm.PlanarFlow(Z, layers=0).call_and_ladj(z)[1].abs().max() == 0  # K = 0: the identity


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2 * Z, max_size=2 * Z))
def test_planar_layers_stay_invertible(values):
    planar = fm.PlanarFlow(Z, layers=1)
    with torch.no_grad():
        planar.u.copy_(torch.tensor(values[:Z]).view(1, Z))
        planar.w.copy_(torch.tensor(values[Z:]).view(1, Z) + 1e-3)
        assert float((planar.w * planar._u_hat()).sum()) >= -1 - 1e-5  # wᵀû ≥ -1 (Rezende & Mohamed, appendix A)


def test_a_zuko_lazy_transform_uses_its_own_log_determinant_and_trains():
    torch.manual_seed(0)
    lazy = zuko.flows.MaskedAutoregressiveTransform(Z, hidden_features=(16,))
    f = fm.Transform("f(z)", lazy)
    z = torch.randn(B, Z)
    value = _jacobian_objective(f)(z=z)
    torch.testing.assert_close(value, lazy().call_and_ladj(z)[1])
    torch.testing.assert_close(value, _autograd_ladj(lambda v: lazy()(v), z))
    value.sum().backward()
    assert all(p.grad is not None for p in lazy.parameters())


def test_a_torch_transform_and_a_plain_function_give_the_same_log_determinant():
    z = torch.randn(B, Z)
    exp_ladj = fm.compile(JACOBIAN, [fm.Transform("f(z)", D.ExpTransform())])(z=z)
    torch.testing.assert_close(exp_ladj, z.sum(-1))  # log |det diag(e^z)| = Σ z
    weight = torch.randn(Z, Z)
    plain = fm.compile(JACOBIAN, [fm.Function("f(z)", net=lambda v: torch.tanh(v @ weight))])(z=z)
    torch.testing.assert_close(plain, _autograd_ladj(lambda v: torch.tanh(v @ weight), z))


def test_the_autograd_fallback_refuses_large_variables():
    f = fm.Function("f(z)", net=lambda v: 2 * v)
    with pytest.raises(fm.FormulaInputError, match="max_jacobian_dims"):
        fm.compile(JACOBIAN, [f])(z=torch.randn(2, 17))


@pytest.mark.parametrize("text, match", [
    (r"\log \det \frac{\partial f(z)}{\partial z}", "absolute value"),
    (r"\log \left|\det \frac{\partial f(z)}{\partial x}\right|", "with respect to its argument z"),
    (r"\log \left|\det \frac{\partial g(z)}{\partial z}\right|", "not a declared function"),
])
def test_malformed_jacobians_are_check_errors_with_a_caret(text, match):
    with pytest.raises(fm.FormulaCheckError, match=match) as error:
        fm.compile(text, [fm.Transform("f(z)", fm.PlanarFlow(Z, 1))])
    assert error.value.span is not None


def test_other_applications_are_checked_as_before():
    f = fm.Function("f(z)", net=lambda v: v.sum(-1).exp())
    torch.testing.assert_close(fm.compile("log f(z) + abs(-2)", [f])(z=torch.ones(2, Z)), torch.full((2,), 4.0))


class _Counted(nn.Module):
    """A planar flow that counts its passes (call_and_ladj or forward)."""

    def __init__(self):
        super().__init__()
        self.flow, self.passes = fm.PlanarFlow(Z, layers=3), 0

    def forward(self, z):
        self.passes += 1
        return self.flow(z)

    def call_and_ladj(self, z):
        self.passes += 1
        return self.flow.call_and_ladj(z)


def test_a_transform_and_its_log_determinant_at_the_same_z_run_the_flow_once():
    torch.manual_seed(0)
    counted = _Counted()
    free_energy = fm.compile(r"E_{q_0(z_0)}[\log q_0(z_0) + U(f(z_0)) - \log |\det \frac{\partial f(z_0)}{\partial z_0}|]",
                             [fm.Normal("q_0(z_0)", loc=0.0, scale=1.0, shape=(Z,)),
                              fm.Transform("f(z_0)", counted), fm.Function("U(z)", net=lambda v: (v ** 2).sum(-1))])
    torch.manual_seed(1)
    value = free_energy(batch_size=B)
    assert counted.passes == 1  # f(z_0) and the log-determinant from one call_and_ladj
    torch.manual_seed(1)
    z0 = torch.randn(B, Z)
    y, ladj = counted.flow.call_and_ladj(z0)
    expected = D.Independent(D.Normal(torch.zeros(Z), torch.ones(Z)), 1).log_prob(z0) + (y ** 2).sum(-1) - ladj
    torch.testing.assert_close(value, expected)
    value.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in counted.flow.parameters())
