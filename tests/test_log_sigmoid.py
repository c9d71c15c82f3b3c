"""`log sigma(a)` and `log(1 - sigma(a))` are computed as logsigmoid: finite values and gradients where sigma rounds
to 0 or 1 in float32 (a confident discriminator in a GAN or AVB)."""

import pytest
import torch
from torch.nn.functional import logsigmoid

import formula as fm


@pytest.mark.parametrize("text, sign", [(r"\log \sigma(T(x))", 1.0), (r"\log(1 - \sigma(T(x)))", -1.0),
                                        ("log(1 - sigmoid(T(x)))", -1.0)])
def test_log_sigmoid_forms_equal_logsigmoid_and_stay_finite(text, sign):
    w = torch.tensor(40.0, requires_grad=True)
    T = fm.Function("T(x)", net=lambda x: w * x.sum(-1))
    x = torch.tensor([[1.0], [-1.0], [0.0], [3.0]])
    value = fm.compile(text, [T])(x=x)
    expected = logsigmoid(sign * 40.0 * x.sum(-1))
    torch.testing.assert_close(value, expected)
    value.sum().backward()
    assert torch.isfinite(w.grad)


def test_a_number_inside_log_sigmoid_is_evaluated_as_a_number():
    value = fm.compile(r"\log \sigma(a) + 0 * x", [])(x=torch.zeros(2), a=-100.0)
    torch.testing.assert_close(value, torch.full((2,), -100.0))
