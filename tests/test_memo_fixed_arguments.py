"""A memoised network call is keyed by WHICH inputs and numbers it is given, not only by their being fixed for the
call: `D(x) - D(y)` is not zero, `\\bar\\alpha_T` and `\\bar\\alpha_1` are two values, and `p(x|y)` and `p(x|y')` two
densities (a silent wrong value before: the second use returned the first's cached result)."""

import torch

import formula as fm


def test_one_function_of_two_inputs_is_two_values():
    D = fm.Function("D(x)", net=lambda x: x.sum(-1))
    value = fm.compile("D(x) - D(y)", [D])(x=torch.ones(2, 3), y=torch.zeros(2, 3))
    torch.testing.assert_close(value, torch.full((2,), 3.0))


def test_one_schedule_at_two_fixed_steps_is_two_values():
    s = fm.Schedule("alpha_bar", torch.tensor([0.9, 0.5, 0.1]))
    value = fm.compile(r"\bar\alpha_T - \bar\alpha_1 + 0 * x", [s])(x=torch.zeros(2), T=3)
    torch.testing.assert_close(value, torch.full((2,), 0.1 - 0.9))


def test_a_density_conditioned_on_a_primed_input_is_its_own():
    p = fm.Normal("p(x|y)", net=lambda y: {"loc": y, "scale": torch.ones_like(y)})
    x, y, y2 = torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3)
    value = fm.compile("log p(x|y) - log p(x|y')", [p])(x=x, y=y, **{"y'": y2})
    torch.testing.assert_close(value, torch.full((2,), 1.5))
