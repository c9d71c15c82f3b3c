"""Small networks and declarations shared by the compile tests: every model of docs/language.md §5 in miniature."""

import torch
from torch import nn
from torch.nn import functional as F

import formula as fm

X, Z, H, C = 6, 3, 8, 4  # data, latent, hidden sizes; number of classes


class Gaussian(nn.Module):
    """Any number of inputs (concatenated, one-hot for integer labels) -> {"loc", "scale"}."""

    def __init__(self, n_in, n_out=Z):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, H), nn.Tanh())
        self.loc, self.scale = nn.Linear(H, n_out), nn.Linear(H, n_out)

    def forward(self, *args, **kwargs):
        h = self.body(_cat(list(args) + list(kwargs.values())))
        return {"loc": self.loc(h), "scale": F.softplus(self.scale(h)) + 1e-3}


class Logits(nn.Module):
    """Inputs -> {"logits"} (Bernoulli over n_out, or Categorical over n_out classes)."""

    def __init__(self, n_in, n_out=X):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, H), nn.Tanh(), nn.Linear(H, n_out))

    def forward(self, *args, **kwargs):
        return {"logits": self.net(_cat(list(args) + list(kwargs.values())))}


def _cat(values):
    parts = [F.one_hot(v, C).to(torch.get_default_dtype()) if not v.is_floating_point() else v for v in values]
    lead = torch.broadcast_shapes(*[p.shape[:-1] for p in parts])
    return torch.cat([p.expand(*lead, p.shape[-1]) for p in parts], -1)


def binary(n, d=X, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, d), 0.5), generator=g)


def vae():
    """q(z|x) Normal, p(x|z) Bernoulli, p(z) standard Normal."""
    torch.manual_seed(0)
    q = fm.Normal("q(z|x)", net=Gaussian(X))
    p = fm.Bernoulli("p(x|z)", net=Logits(Z))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))
    return q, p, prior
