"""The discrete toy of the score-function estimator tests (NVIL, VIMCO): Bernoulli latents z in {0, 1}^D with learned
logits, a Normal likelihood p(x|z) = N(z W, I), and one observation X1; small enough to enumerate exactly."""

import torch
from torch import nn

D = 2
W = torch.tensor([[1.5, -0.5], [0.3, 1.2]])
X1 = torch.tensor([[0.8, -0.6]])


class Table(nn.Module):
    """q(z)'s logits, a parameter of their own."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.4, -0.7]))

    def forward(self):
        return {"logits": self.logits}


class Mean(nn.Module):
    """p(x|z): mean z W, unit scale."""

    def forward(self, z):
        return {"loc": z @ W, "scale": torch.ones_like(z)}
