"""`MMD(q(z|x) || p(z))`: the unbiased MMD^2 estimator against a hand-written one at fixed draws, zero in expectation
for identical distributions, gradients reaching the encoder, and the kernel chosen by the subscript."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

import formula as fm
from formula.compiler import mmd_kernels
from formula.compiler.mmd import subscript, unbiased_mmd2

from models import Gaussian, X, Z, binary


def hand_mmd2(a, b, kernel):
    """The U-statistic written out pair by pair."""
    n, m = len(a), len(b)
    xx = sum(kernel(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(kernel(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(kernel(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def median_sq(a, b):
    pooled = torch.cat([a, b])
    d2 = [((pooled[i] - pooled[j]) ** 2).sum() for i in range(len(pooled)) for j in range(len(pooled)) if i != j]
    return torch.stack(d2).median()


def model(seed=0):
    torch.manual_seed(seed)
    q = fm.Normal("q(z|x)", net=Gaussian(X))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    return q, prior


def draws_of(q, x, seed):
    """The draws the compiled objective makes with RNG seed `seed`: q's for the batch, then the prior's."""
    torch.manual_seed(seed)
    out = q.net(x)
    zq = torch.distributions.Normal(out["loc"], out["scale"]).rsample()
    zp = torch.distributions.Normal(torch.zeros(Z), torch.ones(Z)).rsample((len(x),))
    return zq, zp


@pytest.mark.parametrize("text, kernel", [
    ("MMD(q(z|x) || p(z))", "rbf"),
    (r"\mathrm{MMD}_{imq}(q(z|x) \| p(z))", "imq"),
    (r"\mathrm{MMD}_{\text{rbf}}(q(z|x) \| p(z))", "rbf"),
])
def test_matches_a_hand_written_unbiased_estimator_at_fixed_draws(text, kernel):
    q, prior = model()
    obj = fm.compile(text, [q, prior])
    x = binary(7)
    torch.manual_seed(3)
    value = obj(x=x)
    zq, zp = draws_of(q, x, 3)
    if kernel == "rbf":
        h2 = median_sq(zq, zp)
        k = lambda a, b: torch.exp(-((a - b) ** 2).sum() / (2 * h2))  # noqa: E731
    else:
        k = lambda a, b: 2 * Z / (2 * Z + ((a - b) ** 2).sum())  # noqa: E731
    expected = hand_mmd2(zq, zp, k)
    assert value.shape == (7,)
    torch.testing.assert_close(value, expected.expand(7))
    label = "Gaussian RBF kernel, median heuristic" if kernel == "rbf" else "inverse multiquadratic"
    assert label in obj.explain() and "unbiased estimator of MMD^2" in obj.explain()


def test_a_registered_kernel_with_a_given_bandwidth():
    saved = dict(mmd_kernels._KERNELS)
    try:
        mmd_kernels.register_kernel("wide", mmd_kernels.RBF(bandwidth=2.0))
        q, prior = model()
        obj = fm.compile(r"\mathrm{MMD}_{wide}(q(z|x) \| p(z))", [q, prior])
        x = binary(5)
        torch.manual_seed(4)
        value = obj(x=x)
        zq, zp = draws_of(q, x, 4)
        k = lambda a, b: torch.exp(-((a - b) ** 2).sum() / 8.0)  # noqa: E731
        torch.testing.assert_close(value, hand_mmd2(zq, zp, k).expand(5))
        assert "bandwidth 2" in obj.explain()
    finally:
        mmd_kernels._KERNELS.clear()
        mmd_kernels._KERNELS.update(saved)


@pytest.mark.parametrize("kernel", [mmd_kernels.RBF(), mmd_kernels.IMQ()])
def test_zero_in_expectation_for_identical_distributions(kernel):
    g = torch.Generator().manual_seed(0)
    values = torch.stack([unbiased_mmd2(torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g), kernel)
                          for _ in range(2000)])
    mean, se = values.mean(), values.std() / len(values) ** 0.5
    assert abs(mean) < 4 * se  # unbiased: zero within the Monte Carlo error (a biased V-statistic is > 0)
    shifted = torch.stack([unbiased_mmd2(torch.randn(16, 3, generator=g) + 1.0, torch.randn(16, 3, generator=g),
                                         kernel) for _ in range(200)])
    assert shifted.mean() > 20 * se  # and it sees a shift of one standard deviation


def test_the_encoder_gets_gradients_through_the_mmd():
    q, prior = model()
    obj = fm.compile(r"\mathrm{MMD}(q(z|x) \| \mathcal{N}(0, I))", [q, prior])
    obj(x=binary(8)).mean().backward()
    grads = [p.grad for p in q.net.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_training_on_the_mmd_moves_the_aggregate_posterior_to_the_prior():
    q, prior = model()
    obj = fm.compile("MMD(q(z|x) || p(z))", [q, prior])
    x = torch.cat([binary(32, seed=1), binary(32, seed=2)])
    opt = torch.optim.Adam(q.net.parameters(), lr=1e-2)
    torch.manual_seed(0)
    with torch.no_grad():
        before = torch.stack([obj(x=x).mean() for _ in range(20)]).mean()
    for _ in range(150):
        opt.zero_grad()
        obj(x=x).mean().backward()
        opt.step()
    with torch.no_grad():
        after = torch.stack([obj(x=x).mean() for _ in range(20)]).mean()
    assert after < before / 3


def test_the_kernel_is_the_parsed_subscript():
    for text, sub in [("MMD(q || p)", None), ("MMD_imq(q || p)", "imq"), (r"\mathrm{MMD}_{\text{imq}}(q \| p)", "imq"),
                      (r"\operatorname{MMD}_k(q \| p)", "k"), (r"\mathrm{MMD}_{IMQ}(q \| p)", "IMQ")]:
        node = fm.parse(text).statements[0]
        assert subscript(node) == sub


def test_errors_say_what_is_wrong():
    q, prior = model()
    with pytest.raises(fm.FormulaCheckError, match="no MMD kernel is named 'poly' \\(known: .*imq.*rbf"):
        fm.compile(r"\mathrm{MMD}_{poly}(q(z|x) \| p(z))", [q, prior])
    with pytest.raises(fm.FormulaInputError, match="at least 2 examples"):
        fm.compile("MMD(q(z|x) || p(z))", [q, prior])(x=binary(1))
    discrete = fm.Bernoulli("q(z|x)", net=torch.nn.Sequential())
    with pytest.raises(fm.FormulaCheckError, match="needs reparameterised draws of q\\(z\\|x\\)"):
        fm.compile("MMD(q(z|x) || p(z))", [discrete, prior])
    data = fm.Data("p_data(z)")
    with pytest.raises(fm.FormulaCheckError, match="empirical distribution"):
        fm.compile("MMD(p_data(z) || p(z))", [data, prior])


def test_formula_check_knows_mmd_without_the_compiler():
    from formula.check.checker import check_text

    checked = check_text("MMD(q(z|x) || p(z))", (("q(z|x)", "dist"), ("p(z)", "dist")))
    assert checked.inputs == ("x",)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 9), m=st.integers(2, 9), d=st.integers(1, 4), seed=st.integers(0, 2**16),
       kernel=st.sampled_from([mmd_kernels.RBF(), mmd_kernels.IMQ(), mmd_kernels.RBF(bandwidth=0.7)]))
def test_the_estimator_is_symmetric_and_permutation_invariant(n, m, d, seed, kernel):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)
    value = unbiased_mmd2(a, b, kernel)
    torch.testing.assert_close(value, unbiased_mmd2(b, a, kernel))
    torch.testing.assert_close(value, unbiased_mmd2(a[torch.randperm(n, generator=g)], b.flip(0), kernel))
    torch.testing.assert_close(unbiased_mmd2(a, b + 0.0, kernel), value)
    assert value.dtype == torch.float64


def test_several_draws_per_example_form_one_larger_set():
    q, prior = model()
    obj = fm.compile("MMD(q(z|x) || p(z))", [q, prior], samples=3)
    value = obj(x=binary(4))
    assert value.shape == (4,) and torch.isfinite(value).all()
    assert torch.allclose(value, value[0].expand(4))


def test_the_aggregate_posterior_written_as_a_definition_is_its_conditionals_draws():
    q, prior = model()
    x = binary(8)
    defined = fm.compile("q(z) = E_{p_data(x)}[q(z|x)]\n" r"\mathrm{MMD}_{imq}(q(z) \| p(z))",
                         [q, prior, fm.Data("p_data(x)")])
    written = fm.compile(r"\mathrm{MMD}_{imq}(q(z|x) \| p(z))", [q, prior])
    torch.manual_seed(3)
    value = defined(x=x)
    torch.manual_seed(3)
    torch.testing.assert_close(value, written(x=x))
    value.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.net.parameters())
