"""The networks and data every contestant shares, so that a row compares frameworks and nothing else.

Each network returns a dict of torch.distributions parameters (the contract of `formula`'s `net=`); the
hand-written, Pixyz and Pyro versions call the very same modules, loaded from one initial state_dict.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, Tuple

import torch
from torch import nn
from torch.nn import functional as F

X_DIM = 784  # binarised-MNIST sized data, generated, never downloaded


@dataclass(frozen=True)
class Size:
    """One problem size: latent and hidden widths, batch, and the data's width."""

    z: int
    h: int
    batch: int
    x: int = X_DIM

    @property
    def label(self) -> str:
        return f"z={self.z},h={self.h},B={self.batch}"


SIZES: Tuple[Size, ...] = (Size(2, 16, 16), Size(64, 512, 128), Size(32, 1024, 128))


class Encoder(nn.Module):
    """q(z|x): one hidden ReLU layer, then a location head and a softplus scale head."""

    def __init__(self, x_dim: int, h_dim: int, z_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(x_dim, h_dim), nn.ReLU())
        self.loc = nn.Linear(h_dim, z_dim)
        self.scale = nn.Linear(h_dim, z_dim)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = self.body(x)
        return {"loc": self.loc(h), "scale": F.softplus(self.scale(h)) + 1e-4}


class Decoder(nn.Module):
    """p(x|z): one hidden ReLU layer to Bernoulli logits."""

    def __init__(self, z_dim: int, h_dim: int, x_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(z_dim, h_dim), nn.ReLU(), nn.Linear(h_dim, x_dim))

    def forward(self, z: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"logits": self.body(z)}


class Transition(nn.Module):
    """p(z_t|z_{t-1}) of the deep Markov model: a Normal whose parameters are a network of z_{t-1}."""

    def __init__(self, z_dim: int, h_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(z_dim, h_dim), nn.ReLU())
        self.loc = nn.Linear(h_dim, z_dim)
        self.scale = nn.Linear(h_dim, z_dim)

    def forward(self, z_prev: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = self.body(z_prev)
        return {"loc": self.loc(h), "scale": F.softplus(self.scale(h)) + 1e-4}


class Combiner(nn.Module):
    """q(z_t|z_{t-1},x_t) of the deep Markov model: a Normal from [z_{t-1}, x_t]."""

    def __init__(self, x_dim: int, h_dim: int, z_dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(z_dim + x_dim, h_dim), nn.ReLU())
        self.loc = nn.Linear(h_dim, z_dim)
        self.scale = nn.Linear(h_dim, z_dim)

    def forward(self, z_prev: torch.Tensor, x_t: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = self.body(torch.cat([z_prev, x_t], dim=-1))
        return {"loc": self.loc(h), "scale": F.softplus(self.scale(h)) + 1e-4}


@dataclass(frozen=True)
class VAENets:
    """Encoder and decoder of one size (IWAE uses the same pair)."""

    encoder: Encoder
    decoder: Decoder


@dataclass(frozen=True)
class DMMNets:
    """Combiner (posterior), transition (prior) and emission networks of the deep Markov model."""

    combiner: Combiner
    transition: Transition
    emitter: Decoder


@dataclass(frozen=True)
class GANNets:
    """Discriminator D(x) (a probability) and generator G(z) (pixel probabilities) of the GAN step."""

    discriminator: nn.Module
    generator: nn.Module


@dataclass(frozen=True)
class FlowNets:
    """One zuko masked autoregressive flow p(x) over FLOW_DIM continuous features, fitted by maximum likelihood."""

    flow: nn.Module


FLOW_DIM = 8  # features of the flow row's continuous data
FLOW_TRANSFORMS = 3


def vae_nets(size: Size, seed: int = 0) -> VAENets:
    """The row's reference networks; contestants take `fresh_copy` of them, never these."""
    torch.manual_seed(seed)
    return VAENets(Encoder(size.x, size.h, size.z), Decoder(size.z, size.h, size.x))


def dmm_nets(size: Size, seed: int = 0) -> DMMNets:
    """The deep Markov model's reference networks for one size."""
    torch.manual_seed(seed)
    return DMMNets(Combiner(size.x, size.h, size.z), Transition(size.z, size.h), Decoder(size.z, size.h, size.x))


def gan_nets(size: Size, seed: int = 0) -> GANNets:
    """The GAN row's networks: one hidden ReLU layer each, sigmoid outputs."""
    torch.manual_seed(seed)
    d = nn.Sequential(nn.Linear(size.x, size.h), nn.ReLU(), nn.Linear(size.h, 1), nn.Sigmoid())
    g = nn.Sequential(nn.Linear(size.z, size.h), nn.ReLU(), nn.Linear(size.h, size.x), nn.Sigmoid())
    return GANNets(d, g)


def flow_nets(size: Size, seed: int = 0) -> FlowNets:
    """The flow row's zuko MAF, its MADE hidden layers of width h (zuko is imported only for this row)."""
    import zuko

    torch.manual_seed(seed)
    return FlowNets(zuko.flows.MAF(FLOW_DIM, transforms=FLOW_TRANSFORMS, hidden_features=(size.h, size.h)))


def continuous_batches(size: Size, n: int = 4, seed: int = 1) -> Tuple[torch.Tensor, ...]:
    """`n` batches `[B, FLOW_DIM]` of correlated Gaussian data (a fixed random linear map of white noise)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(FLOW_DIM, FLOW_DIM, generator=g) / FLOW_DIM ** 0.5
    return tuple(torch.randn(size.batch, FLOW_DIM, generator=g) @ mix for _ in range(n))


def fresh_copy(nets):
    """An independent copy with the identical initial state (same weights, own parameters and grads)."""
    return copy.deepcopy(nets)


def binary_batches(size: Size, n: int = 4, steps: int = 0, seed: int = 1) -> Tuple[torch.Tensor, ...]:
    """`n` batches of binary data, `[B, x]` (or `[B, steps, x]` for sequences) with a fixed structure per pixel."""
    g = torch.Generator().manual_seed(seed)
    shape = (size.batch, steps, size.x) if steps else (size.batch, size.x)
    probs = torch.rand(size.x, generator=g) * 0.8 + 0.1  # pixel-wise rates, so the data is not pure noise
    return tuple(torch.bernoulli(probs.expand(shape), generator=g) for _ in range(n))


__all__ = ["Size", "SIZES", "X_DIM", "Encoder", "Decoder", "Transition", "Combiner", "VAENets", "DMMNets",
           "GANNets", "FlowNets", "FLOW_DIM", "vae_nets", "dmm_nets", "gan_nets", "flow_nets", "continuous_batches",
           "fresh_copy", "binary_batches"]
