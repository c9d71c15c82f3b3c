"""Hand-written objectives that keep the compiled-objective protocol, for testing the trainer on its own.

`GaussianVAE` samples (reparameterised) like a compiled ELBO; `Autoencoder` draws nothing, so that two runs
that see the same batches must reach the same parameters (the DDP and torch.compile equivalence tests).
Shared by the tests and by `ddp_worker.py`, which torchrun starts as a script.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

REC = "E_q(z|x)[log p(x|z)]"
KL = "KL(q(z|x)||p(z))"


class GaussianVAE(nn.Module):
    """E_q(z|x)[log p(x|z)] - beta KL(q(z|x)||p(z)) with a Normal encoder and a Bernoulli decoder."""

    def __init__(self, dim: int = 8, latent: int = 2, hidden: int = 16, beta: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, dim))
        self.inputs = ("beta", "x") if beta else ("x",)
        self.seen_beta: list = []

    def evaluate(self, x, beta=None):
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        q = Normal(loc, nn.functional.softplus(raw) + 1e-4, validate_args=False)
        z = q.rsample()
        rec = Bernoulli(logits=self.decoder(z), validate_args=False).log_prob(x).sum(-1)
        kl = kl_divergence(q, Normal(torch.zeros_like(loc), torch.ones_like(loc), validate_args=False)).sum(-1)
        if beta is None:
            return rec - kl, {REC: rec, KL: kl}
        self.seen_beta.append(float(beta))
        return rec - beta * kl, {REC: rec, "β·" + KL: beta * kl}

    def forward(self, **inputs):
        return self.evaluate(**inputs)[0]

    def __str__(self) -> str:
        return f"{REC} - {'β·' if 'beta' in self.inputs else ''}{KL}"

    def explain(self) -> str:
        return "sample z ~ q(z|x) (reparameterised, 1 draw); KL closed form (Normal, Normal)"


class Autoencoder(nn.Module):
    """log p(x|z) - 0.1 R(z) with z = f(x): a deterministic objective (nothing is sampled)."""

    inputs = ("x",)

    def __init__(self, dim: int = 8, latent: int = 3):
        super().__init__()
        self.encoder = nn.Linear(dim, latent)
        self.decoder = nn.Linear(latent, dim)

    def evaluate(self, x):
        z = torch.tanh(self.encoder(x))
        rec = -((self.decoder(z) - x) ** 2).sum(-1)
        reg = (z**2).sum(-1)
        return rec - 0.1 * reg, {"log p(x|z)": rec, "0.1·R(z)": 0.1 * reg}

    def forward(self, **inputs):
        return self.evaluate(**inputs)[0]

    def __str__(self) -> str:
        return "log p(x|z) - 0.1·R(z)"

    def explain(self) -> str:
        return "nothing is sampled"


def binary_data(n: int = 96, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """Two prototypes with a few flipped bits: data a tiny VAE can learn in a few steps."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.tensor([[1.0] * (dim // 2) + [0.0] * (dim - dim // 2), [0.0] * (dim // 2) + [1.0] * (dim - dim // 2)])
    x = protos[torch.randint(0, 2, (n,), generator=g)]
    flip = torch.rand(n, dim, generator=g) < 0.05
    return torch.where(flip, 1 - x, x)


def parameters_vector(module: nn.Module) -> torch.Tensor:
    """All parameters, flattened and concatenated (detached)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def compiled_vae(dim: int = 8, latent: int = 2, hidden: int = 16, text: str = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"):
    """The same model through the real front end: `formula.compile` over declared distributions."""
    import formula as fm

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))

        def forward(self, x):
            loc, raw = self.body(x).chunk(2, dim=-1)
            return {"loc": loc, "scale": nn.functional.softplus(raw) + 1e-4}

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, dim))

        def forward(self, z):
            return {"logits": self.body(z)}

    q = fm.Normal("q(z|x)", net=Encoder())
    p = fm.Bernoulli("p(x|z)", net=Decoder())
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(latent,))
    return fm.compile(text, [q, p, prior])
