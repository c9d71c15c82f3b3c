"""gradient="st": a relaxed categorical's draw is one-hot in the forward pass, with the relaxed draw's gradient."""

import torch
from torch import distributions as D, nn

import formula as fm

C = 4
TEMPERATURE = 0.5


class Logits(nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.3, -0.2, 1.0, 0.1]))

    def forward(self):
        return {"logits": self.logits, "temperature": torch.tensor(TEMPERATURE)}


def score(z):
    """A nonlinear f(z): the straight-through gradient is df/dz at the hard value times dy/dlogits."""
    return (z * torch.tensor([1.0, -2.0, 0.5, 3.0])).sum(-1) ** 2


def compiled(gradient):
    q = fm.RelaxedCategorical("q(z)", net=Logits())
    f = fm.Function("f(z)", net=score)
    return q, fm.compile("E_{q(z)}[f(z)]", [q, f], gradient=gradient, samples=16)


def test_forward_is_one_hot_and_the_gradient_is_the_relaxed_draws():
    q, obj = compiled("st")
    assert "straight-through" in obj.explain()
    torch.manual_seed(0)
    value = obj()
    (g,) = torch.autograd.grad(value.mean(), [q.net.logits])
    # By hand: the same relaxed draws, their hard values, f's gradient at the hard value pushed through y.
    torch.manual_seed(0)
    logits = q.net.logits
    y = D.RelaxedOneHotCategorical(torch.tensor(TEMPERATURE), logits=logits).rsample((16,))
    h = torch.zeros_like(y).scatter_(-1, y.argmax(-1, keepdim=True), 1.0).requires_grad_(True)
    f = score(h)
    (df_dh,) = torch.autograd.grad(f.mean(), [h])
    (g_ref,) = torch.autograd.grad(y, [logits], grad_outputs=df_dh)
    torch.testing.assert_close(value.mean(), f.mean().detach())
    torch.testing.assert_close(g, g_ref)


def test_the_draw_is_one_hot():
    seen = []
    q = fm.RelaxedCategorical("q(z)", net=Logits())
    f = fm.Function("f(z)", net=lambda z: (seen.append(z), z.sum(-1))[1])
    obj = fm.compile("E_{q(z)}[f(z)]", [q, f], gradient="st", samples=32)
    obj()
    (z,) = seen
    assert ((z == 0) | (z == 1)).all() and (z.sum(-1) == 1).all()


def test_st_does_not_apply_to_a_normal():
    q = fm.Normal("q(z)", loc=0.0, scale=1.0, shape=(2,))
    obj = fm.compile("E_{q(z)}[log q(z)]", [q], gradient="st")
    assert "straight-through" not in obj.explain()
