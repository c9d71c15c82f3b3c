"""No silent wrong values (issue 9): parameters and observed data are checked against their constraints when asked
(`condition(validate=True)`, `validate_value`), and the declarations' own methods raise FormulaInputErrors that name
the declaration, the parameter or variable, the constraint and an offending value, never a bare torch error."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import formula as fm
import formula.families.declarations as fd

B, E = 4, 3
NAN = math.nan


def const(**params):
    """A net returning fixed parameters broadcast to [batch, E] (or [batch, E] rows of a vector parameter)."""

    def net(x):
        out = {}
        for name, value in params.items():
            value = torch.as_tensor(value, dtype=x.dtype)
            out[name] = value.expand(x.shape[:-1] + value.shape) if value.dim() else value.expand(x.shape)
        return out

    return net


# family -> (good net parameters, (bad parameter, value, expected message), (bad observed value, expected message))
CASES = {
    "Normal": ({"loc": 0.0, "scale": 1.0}, ("scale", -1.0, r"parameter scale must be > 0\.0, got -1\.0"),
               (NAN, "observed z must be a real number")),
    "Laplace": ({"loc": 0.0, "scale": 1.0}, ("loc", NAN, "parameter loc must be a real number"),
                (NAN, "observed z must be a real number")),
    "Bernoulli": ({"probs": 0.5}, ("probs", 1.5, r"probs must be in \[0\.0, 1\.0\], got 1\.5"),
                  (2.5, r"observed z must be in \[0\.0, 1\.0\], got 2\.5.*scale raw data")),
    "Categorical": ({"probs": [0.2, 0.3, 0.5]}, ("probs", [0.5, -0.1, 0.6], "probs must be non-negative"),
                    (1.5, r"observed z must be an integer in \[0, 2\], got 1\.5")),
    "OneHotCategorical": ({"logits": [0.0, 0.0, 0.0]}, ("logits", [0.0, NAN, 0.0], "logits must be a real"),
                          ([1.0, 1.0, 0.0], "observed z must be one-hot")),
    "Beta": ({"concentration1": 2.0, "concentration0": 2.0}, ("concentration0", 0.0, "concentration0 must be > 0"),
             (1.5, r"observed z must be in \[0\.0, 1\.0\]")),
    "Gamma": ({"concentration": 2.0, "rate": 1.0}, ("rate", -2.0, "rate must be > 0"),
              (-1.0, r"observed z must be >= 0\.0, got -1\.0")),
    "Dirichlet": ({"concentration": [1.0, 1.0, 1.0]}, ("concentration", [1.0, -1.0, 1.0],
                                                       "concentration must be > 0"),
                  ([0.5, 0.6, 0.1], "observed z must be on the simplex")),
    "RelaxedBernoulli": ({"temperature": 0.5, "logits": 0.0}, ("temperature", -0.5, "temperature must be > 0"),
                         (1.5, r"observed z must be in \[0\.0, 1\.0\]")),
    "RelaxedCategorical": ({"temperature": 0.5, "probs": [0.2, 0.3, 0.5]},
                           ("temperature", 0.0, "temperature must be > 0"),
                           ([0.5, 0.6, 0.1], "observed z must be on the simplex")),
    "Deterministic": ({"value": 1.0}, ("value", NAN, "parameter value must be a real number"),
                      (NAN, "observed z must be a real number")),
}
FAMILIES = sorted(CASES)


def declare(name, **params):
    return getattr(fd, name)("q(z|x)", net=const(**params))


def test_every_family_has_a_case():
    assert set(FAMILIES) == {name for name in fd.__all__ if name in fd.FAMILIES}  # the built-in families


@pytest.mark.parametrize("name", FAMILIES)
def test_bad_parameter_is_named_with_its_constraint_and_value(name):
    good, (param, bad, match), _ = CASES[name]
    x = torch.zeros(B, E)
    declare(name, **good).condition(x, validate=True)  # good parameters pass
    d = declare(name, **{**good, param: bad})
    if name != "OneHotCategorical":  # torch validates its inner Categorical whatever validate_args says
        d.condition(x)  # not validated unless asked: no cost in the default path
    with pytest.raises(fm.FormulaInputError, match=match) as info:
        d.condition(x, validate=True)
    assert f"{name} q(z|x)" in str(info.value) and "^" in str(info.value)
    with pytest.raises(fm.FormulaInputError, match=match):
        d.sample(x=x)  # the user's own methods validate


@pytest.mark.parametrize("name", FAMILIES)
def test_out_of_support_data_is_named_with_the_support_and_value(name):
    good, _, (bad, match) = CASES[name]
    x = torch.zeros(B, E)
    d = declare(name, **good)
    dist = d.condition(x)
    ok = dist.sample()
    d.validate_value("z", ok, dist)
    value = torch.as_tensor(bad, dtype=torch.float32).expand(ok.shape).clone()
    with pytest.raises(fm.FormulaInputError, match=match) as info:
        d.validate_value("z", value, dist)
    assert f"{name} q(z|x)" in str(info.value)
    with pytest.raises(fm.FormulaInputError, match=match):
        d.log_prob(z=value, x=x)


VALUES = st.lists(st.one_of(st.floats(-2, 2, width=32), st.just(math.nan), st.just(math.inf)), min_size=1,
                  max_size=6)


@settings(max_examples=60, deadline=None)
@given(scales=VALUES)
def test_a_parameter_check_fails_exactly_when_some_value_breaks_the_constraint(scales):
    scale = torch.tensor(scales)
    d = fd.Normal("q(z|x)", net=lambda x: {"loc": torch.zeros_like(scale), "scale": scale})
    if all(s > 0 for s in scales):  # NaN > 0 is False too
        d.condition(torch.zeros(1), validate=True)
    else:
        with pytest.raises(fm.FormulaInputError, match="scale must be > 0"):
            d.condition(torch.zeros(1), validate=True)


@settings(max_examples=60, deadline=None)
@given(values=VALUES)
def test_a_data_check_fails_exactly_when_some_value_is_outside_the_support(values):
    d = fd.Bernoulli("p(x)", probs=0.5)
    x = torch.tensor(values)
    if all(0 <= v <= 1 for v in values):
        d.validate_value("x", x)
    else:
        with pytest.raises(fm.FormulaInputError, match=r"x must be in \[0\.0, 1\.0\]"):
            d.validate_value("x", x)


def test_bernoulli_accepts_continuous_targets_in_the_unit_interval():
    d = declare("Bernoulli", probs=0.5)
    x = torch.zeros(B, E)
    grey = torch.rand(B, E)
    assert torch.isfinite(d.log_prob(z=grey, x=x)).all()
    for bad in (-0.01, 1.01, 16.0):
        with pytest.raises(fm.FormulaInputError, match="observed z"):
            d.log_prob(z=torch.full((B, E), bad), x=x)


def test_categorical_labels_out_of_range_or_fractional():
    cat = fd.Categorical("p(y)", probs=torch.ones(10) / 10)
    for bad, shown in ((9.5, "9.5"), (10, "10"), (-1, "-1")):
        with pytest.raises(fm.FormulaInputError, match=rf"y must be an integer in \[0, 9\], got {shown}"):
            cat.log_prob(y=torch.tensor([1, 2, bad]))
    assert cat.log_prob(y=torch.tensor([0, 9])).shape == (2,)
    # without the conditioned distribution, a conditional Categorical checks what it can: non-negative integers
    q = fd.Categorical("q(y|x)", net=lambda x: {"logits": x})
    with pytest.raises(fm.FormulaInputError, match="integer >= 0"):
        q.validate_value("y", torch.tensor([0.5]))
    q.validate_value("y", torch.tensor([7]))
    with pytest.raises(fm.FormulaInputError, match="not a variable of it"):
        q.validate_value("x", torch.tensor([0]))


def test_unnormalised_probabilities_are_accepted_as_torch_normalises_them():
    d = declare("Categorical", probs=[2.0, 1.0, 1.0])
    d.condition(torch.zeros(B, E), validate=True)
    with pytest.raises(fm.FormulaInputError, match="positive sum"):
        declare("Categorical", probs=[0.0, 0.0, 0.0]).condition(torch.zeros(B, E), validate=True)


def test_simplex_data_tolerance_scales_with_the_dimension():
    d = fd.Dirichlet("p(w)", concentration=torch.ones(1000))
    w = torch.rand(B, 1000)
    w = w / w.sum(-1, keepdim=True)  # float32 rounding: the sum is off by more than torch's 1e-6
    d.validate_value("w", w)
    with pytest.raises(fm.FormulaInputError, match="simplex"):
        d.validate_value("w", w * 1.01)


def test_fixed_parameters_are_checked_at_declaration():
    with pytest.raises(fm.FormulaCheckError, match="temperature must be > 0"):
        fd.RelaxedBernoulli("p(z)", temperature=-1.0, logits=0.0)
    with pytest.raises(fm.FormulaCheckError, match="invalid parameters"):
        fd.Normal("p(z)", loc=0.0, scale=-1.0)


def test_one_synchronisation_per_validated_call(monkeypatch):
    calls = []
    real = torch.Tensor.__bool__

    def counting(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(torch.Tensor, "__bool__", counting)
    d = fd.Beta("q(z|x)", net=const(concentration1=2.0, concentration0=3.0))
    d.condition(torch.zeros(B, E), validate=True)
    assert len(calls) == 1  # both parameters in one fused reduction
    calls.clear()
    d.condition(torch.zeros(B, E))
    assert not calls


def test_validation_of_meta_tensors_is_skipped():
    d = fd.Normal("q(z|x)", net=lambda x: {"loc": x, "scale": -x})
    d.condition(torch.ones(B, E, device="meta"), validate=True)
    d.validate_value("z", torch.full((B, E), math.nan, device="meta"))


# --- the declarations' own methods raise FormulaInputErrors, not torch errors ----------------------------------


def test_network_given_the_wrong_shape_names_the_shapes_given_and_expected():
    q = fd.Normal("q(z|x)", net=nn.Sequential(nn.Linear(6, 2 * E), nn.Unflatten(-1, (2, E)),
                                              _Split()))
    with pytest.raises(fm.FormulaInputError, match=r"failed on x \[4, 5\] \(its first layer Linear takes 6 "
                                                   r"features\): mat1 and mat2") as info:
        q.sample(x=torch.zeros(B, 5))
    assert "q(z|x)" in str(info.value) and info.value.__cause__ is None
    with pytest.raises(fm.FormulaInputError, match=r"failed on x \[4, 5\]"):
        q.log_prob(z=torch.zeros(B, E), x=torch.zeros(B, 5))
    critic = fd.Function("D(x,y)", net=lambda x, y: x @ y)
    with pytest.raises(fm.FormulaInputError, match=r"failed on x \[4, 3\], y \[4, 3\]"):
        critic(torch.zeros(B, E), torch.zeros(B, E))


class _Split(nn.Module):
    def forward(self, h):
        return {"loc": h[..., 0, :], "scale": nn.functional.softplus(h[..., 1, :])}


def test_log_prob_of_a_value_of_the_wrong_shape_names_both_shapes():
    q = declare("Normal", loc=0.0, scale=1.0)
    with pytest.raises(fm.FormulaInputError, match=r"z of shape \[4, 5\] does not fit the distribution's batch "
                                                   r"shape \[4\] and event shape \[3\]"):
        q.log_prob(z=torch.zeros(B, 5), x=torch.zeros(B, E))


def test_categorical_log_prob_of_label_nine_is_an_input_error():
    cat = fd.Categorical("p(y)", probs=torch.ones(3) / 3)
    with pytest.raises(fm.FormulaInputError, match=r"y must be an integer in \[0, 2\], got 9"):
        cat.log_prob(y=torch.tensor(9))


# --- through a compiled objective ------------------------------------------------------------------------------


def test_compiled_objective_reports_a_negative_scale_unless_validation_is_off():
    q = fd.Normal("q(z|x)", net=lambda x: {"loc": x, "scale": -torch.ones_like(x)})
    p = fd.Bernoulli("p(x|z)", net=lambda z: {"logits": z})
    prior = fd.Normal("p(z)", loc=0.0, scale=1.0, shape=(E,))
    text = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
    x = torch.rand(B, E)
    with pytest.raises(fm.FormulaInputError, match="scale must be > 0"):
        fm.compile(text, [q, p, prior])(x=x)
    assert fm.compile(text, [q, p, prior], validate=False)(x=x).shape == (B,)
    good = fd.Normal("q(z|x)", net=lambda x: {"loc": x, "scale": torch.ones_like(x)})
    with pytest.raises(fm.FormulaInputError, match=r"observed x must be in \[0\.0, 1\.0\], got 16\.0"):
        fm.compile(text, [good, p, prior])(x=torch.full((B, E), 16.0))
