"""Definitions before the objective and in `where` clauses (formula.check.definitions): WGAN-GP's critic objective as
the paper writes it, against hand-written PyTorch at the same draws; a defined variable evaluated once per trace;
the aggregate posterior and the permuted-dimensions sampler; and the errors for definitions that cannot be used."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import formula as fm

X = 2
# Gulrajani et al. (2017), eq. 3, with its definitions as lines before the objective
WGAN_GP_LINES = "\n".join([
    r"\epsilon \sim \mathcal{U}[0, 1]",
    r"\tilde x = G(z)",
    r"\hat x = \epsilon x + (1 - \epsilon) \tilde x",
    r"\mathbb{E}_{\tilde x \sim P_g}[D(\tilde x)] - \mathbb{E}_{x \sim P_r}[D(x)] "
    r"+ \lambda \mathbb{E}_{\hat x \sim P_{\hat x}}[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2]",
])
WGAN_GP_WHERE = (r"\mathbb{E}_{\tilde x \sim P_g}[D(\tilde x)] - \mathbb{E}_{x \sim P_r}[D(x)] "
                 r"+ \lambda \mathbb{E}_{\hat x}[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2] \quad \text{where} \quad "
                 r"\hat x = \epsilon x + (1 - \epsilon) \tilde x, \tilde x = G(z), \epsilon \sim \mathcal{U}[0, 1]")


def nets(seed: int = 0):
    torch.manual_seed(seed)
    critic = nn.Sequential(nn.Linear(X, 16), nn.Tanh(), nn.Linear(16, 1))
    generator = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, X))
    return critic, generator


def declarations(critic, generator):
    return [fm.Function("D(x)", net=critic), fm.Function("G(z)", net=generator), fm.Data("P_r(x)"),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(2,))]


def hand_written(critic, generator, x, lam, seed):
    """The critic's loss at the draws the compiled objective makes after `torch.manual_seed(seed)`: the first term's
    z, then the penalty's epsilon (a draw statement's variable is drawn first) and its z."""
    torch.manual_seed(seed)
    n = x.shape[0]
    fake = generator(torch.randn(n, 2))
    eps = torch.rand(n, 1)  # one per example
    z = torch.randn(n, 2)
    x_hat = eps * x + (1 - eps) * generator(z)
    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    penalty = (g.norm(dim=-1) - 1) ** 2
    return critic(fake).squeeze(-1) - critic(x).squeeze(-1) + lam * penalty


@pytest.mark.parametrize("text", [WGAN_GP_LINES, WGAN_GP_WHERE], ids=["definition lines", "where clause"])
def test_the_wgan_gp_critic_objective_equals_hand_written_pytorch(text):
    critic, generator = nets()
    objective = fm.compile(text, declarations(critic, generator))
    assert objective.inputs == ("lambda", "x")
    x = torch.randn(7, X)
    torch.manual_seed(3)
    value = objective(x=x, **{"lambda": 10.0})
    expected = hand_written(critic, generator, x, 10.0, seed=3)
    torch.testing.assert_close(value, expected)
    value.mean().backward()  # second order: the penalty trains the critic (its weights; D's last bias cancels)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters() if p.dim() > 1)
    plan = objective.explain()
    assert "bind \\hat{x} = epsilon * x + (1 - epsilon) * \\tilde{x} (a definition)" in plan


def test_a_defined_variable_used_twice_is_evaluated_once_per_draw():
    critic, generator = nets()
    calls = []
    generator.register_forward_hook(lambda *_: calls.append(1))
    objective = fm.compile("\\tilde x = G(z)\nE_{z ~ p(z)}[D(\\tilde x) + D(\\tilde x)^2] + E_{z ~ p(z)}[D(\\tilde x)]",
                           declarations(critic, generator))
    objective(batch_size=4)
    assert len(calls) == 2  # once per expectation's draw of z, not once per use


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 4)

    def forward(self, x):
        h = self.net(x)
        return {"loc": h[:, :2], "scale": nn.functional.softplus(h[:, 2:]) + 1e-3}


AGGREGATE = r"q(z) = \mathbb{E}_{p_{data}(x)}[q(z|x)]"
PERMUTED = r"\bar q(z) = \prod_j q(z_j)"


def encoder_declarations(seed: int = 0):
    torch.manual_seed(seed)
    encoder = Encoder()
    return encoder, [fm.Normal("q(z|x)", net=encoder), fm.Data("p_data(x)"), fm.Function("f(z)", net=nn.Linear(2, 1))]


def test_the_aggregate_posterior_draws_per_example_and_trains_the_encoder():
    encoder, decls = encoder_declarations()
    objective = fm.compile(AGGREGATE + "\n" + r"\mathbb{E}_{q(z)}[\|z\|^2]", decls)
    x = torch.randn(5, 3)
    torch.manual_seed(1)
    value = objective(x=x)
    torch.manual_seed(1)
    params = encoder(x)
    z = params["loc"] + params["scale"] * torch.randn(5, 2)
    torch.testing.assert_close(value, (z ** 2).sum(-1))
    value.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_the_permuted_sampler_permutes_each_dimension_independently_across_the_batch():
    _, decls = encoder_declarations()
    seen = []
    decls[2].net.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    x = torch.randn(64, 3)
    for sampler in (r"\mathbb{E}_{q(z)}[f(z)]", r"\mathbb{E}_{z' \sim \bar q(z)}[f(z')]"):
        torch.manual_seed(4)  # the same draws of z ~ q(z|x): the permuted sampler permutes them
        fm.compile("\n".join([AGGREGATE, PERMUTED, sampler]), decls)(x=x)
    drawn, permuted = seen
    assert drawn.shape == permuted.shape == (64, 2)
    orders = []
    for j in range(2):  # each column holds the same values as the draws' column, in another order
        where = (permuted[:, j, None] == drawn[None, :, j]).float().argmax(1)
        assert torch.equal(drawn[where, j], permuted[:, j]) and len(set(where.tolist())) == 64
        orders.append(where)
    assert not torch.equal(orders[0], torch.arange(64))
    assert not torch.equal(orders[0], orders[1])  # each dimension permuted independently of the other


@pytest.mark.parametrize("text, message", [
    (AGGREGATE + "\n" + r"\mathbb{E}_{q(z)}[\log q(z)]", "q\\(z\\) is the aggregate posterior.*has no density"),
    (AGGREGATE + "\n" + PERMUTED + "\n" + r"\mathbb{E}_{q(z)}[\log \bar q(z)]", "product of marginals.*no density"),
    ("\\hat x = 2 \\hat x\nE_{p_data(x)}[x]", "uses \\\\hat\\{x\\} itself|uses \\\\hat x itself|itself"),
    ("a = b + 1\nb = a\nE_{p_data(x)}[a]", "circular"),
    ("a = 1\na = 2\nE_{p_data(x)}[a]", "defined twice"),
    (r"q(z) = \mathbb{E}_{p_{data}(x)}[z]" + "\n" + r"\mathbb{E}_{q(z)}[z]", "conditional given what it averages"),
])
def test_definitions_that_cannot_be_used_say_why(text, message):
    _, decls = encoder_declarations()
    with pytest.raises(fm.FormulaCheckError, match=message) as info:
        fm.compile(text, decls)
    assert "^" in str(info.value)
