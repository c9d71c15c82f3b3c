"""Contract case for TD-VAE with its two time indices (issue 12, item 4; Gregor et al. 2019, eq. 8): t_1 and a jump
delta drawn per example, t_2 = t_1 + delta, beliefs b_t of a declared function over the whole sequence gathered at
t_1 and t_2, two samplers in one subscript, one p_B(z|b) at both indices and the jump reaching the transition;
against hand-written PyTorch at the same draws."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Bernoulli, Categorical, Independent, Normal

import formula as fm
from contract.cases import B, BELIEF, Declarations, Inputs, case
from models import X, Z, Gaussian, Logits, binary

STEPS, JUMP = 6, 2  # sequence length T and the longest jump D

TD_VAE_JUMPY = (r"t_1 \sim \mathcal{U}\{1, \ldots, T - D\}" "\n" r"\delta \sim \mathcal{U}\{1, \ldots, D\}" "\n"
                r"t_2 = t_1 + \delta" "\n"
                r"\mathbb{E}_{t_1, \delta}\left[\mathbb{E}_{z_{t_2} \sim p_B(z|b_{t_2}), z_{t_1} \sim "
                r"q(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})}\left[\log p(x_{t_2}|z_{t_2}) + \log p_B(z_{t_1}|b_{t_1}) "
                r"+ \log p(z_{t_2}|z_{t_1}, \delta) - \log p_B(z_{t_2}|b_{t_2}) - \log q(z_{t_1}|z_{t_2}, b_{t_1}, "
                r"b_{t_2})\right]\right]")


class CausalBelief(nn.Module):
    """b_t = tanh(sum_{s <= t} W x_s): a belief over x_{\\le t} for every t at once, [batch, T, BELIEF] (no RNN, so
    that the compiled checks capture it in one graph)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(X, BELIEF)

    def forward(self, x):
        return torch.tanh(torch.cumsum(self.lin(x), 1))


class Jump(nn.Module):
    """p(z_{t_2}|z_{t_1}, delta): the jump, a [batch] integer tensor, as the feature delta / D."""

    def __init__(self):
        super().__init__()
        self.gauss = Gaussian(Z + 1)

    def forward(self, z, delta):
        return self.gauss(z, delta.to(z.dtype).unsqueeze(-1) / JUMP)


def _inputs() -> Inputs:
    return {"x": binary(B * STEPS, seed=8).reshape(B, STEPS, X), "T": STEPS, "D": JUMP}


def _normal(params) -> Independent:
    return Independent(Normal(params["loc"], params["scale"]), 1)


def _reference(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    belief, p_b, q, jump, emit = (d.net for d in decls)
    x, steps, most = inputs["x"], inputs["T"], inputs["D"]
    n, dtype, device = x.shape[0], x.dtype, x.device
    t1 = Categorical(logits=torch.zeros(steps - most, dtype=dtype, device=device)).sample((n,)) + 1
    delta = Categorical(logits=torch.zeros(most, dtype=dtype, device=device)).sample((n,)) + 1
    t2 = t1 + delta
    b, rows = belief(x), torch.arange(n, device=device)
    b1, b2, x2 = b[rows, t1 - 1], b[rows, t2 - 1], x[rows, t2 - 1]
    pb2 = _normal(p_b(b2))
    z2 = pb2.rsample()
    qz1 = _normal(q(z2, b1, b2))
    z1 = qz1.rsample()
    return (Independent(Bernoulli(logits=emit(z2)["logits"]), 1).log_prob(x2) + _normal(p_b(b1)).log_prob(z1)
            + _normal(jump(z1, delta)).log_prob(z2) - pb2.log_prob(z2) - qz1.log_prob(z1))


@case("td-vae-jumpy", TD_VAE_JUMPY, inputs=_inputs, draws=["t_1", "delta", "z_{t_2}", "z_{t_1}"],
      reference=_reference)
def _td_vae_jumpy() -> Declarations:
    torch.manual_seed(0)
    return (fm.Function("b(x)", net=CausalBelief()), fm.Normal("p_B(z|b)", net=Gaussian(BELIEF)),
            fm.Normal("q(z_{t_1}|z_{t_2},b_{t_1},b_{t_2})", net=Gaussian(Z + 2 * BELIEF)),
            fm.Normal(r"p(z_{t_2}|z_{t_1},\delta)", net=Jump()), fm.Bernoulli("p(x|z)", net=Logits(Z)))
