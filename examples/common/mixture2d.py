"""The 2-D mixture the diffusion, score-matching and energy-based examples fit, and how their samples are judged.

Six Gaussians of unequal weights and widths in the box [-3, 3]^2 (`sample`, `log_density`: the true density).
Sample quality is measured two ways against held-out data (`quality`):

- the unbiased estimate of the squared MMD (Gretton et al. 2012, eq. 3) with a sum of Gaussian kernels of
  bandwidths 0.1, 0.3 and 1 (fine and coarse structure), between the model's samples and held-out data: zero in
  expectation when they come from the same distribution, and can be slightly negative;
- the mean negative log-density of the samples under the true mixture (nats): low when samples sit where the data
  are, blind to missing modes (the MMD is not).

Both are reported with two baselines: another held-out draw of the data (what a perfect model scores) and one
Gaussian fitted to the training data (a model that knows nothing of the modes).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, Mapping, Sequence

import torch

from . import figures

CENTRES = ((-2.0, -1.5), (-2.0, 1.5), (0.0, 0.0), (2.0, 1.5), (2.0, -1.5), (0.0, 2.5))
STDS = (0.25, 0.35, 0.3, 0.25, 0.4, 0.2)
WEIGHTS = (0.2, 0.15, 0.25, 0.15, 0.15, 0.1)
BANDWIDTHS = (0.1, 0.3, 1.0)
BOX = 3.5  # plots show [-BOX, BOX]^2
STEPS_PER_EPOCH = 100  # the training set is 100 batches
EVAL_SAMPLES = 2000  # samples drawn to be judged, and held-out points


def parser(doc: str, epochs: int, batch_size: int) -> argparse.ArgumentParser:
    """The options every mixture example has (--epochs of STEPS_PER_EPOCH steps, --hidden, --batch-size); the
    example adds its own, then `common.cli.parse_common` the shared ones."""
    out = argparse.ArgumentParser(description=doc.splitlines()[0])
    out.add_argument("--epochs", type=int, default=epochs, help=f"{STEPS_PER_EPOCH} steps an epoch")
    out.add_argument("--hidden", type=int, default=128)
    out.add_argument("--batch-size", type=int, default=batch_size)
    return out


def mlp(inputs: int, hidden: int, outputs: int, layers: int) -> torch.nn.Sequential:
    """The examples' networks: `layers` hidden layers of `hidden` SiLU units (smooth: samplers follow gradients)."""
    sizes = [inputs] + [hidden] * layers
    body = [m for a, b in zip(sizes, sizes[1:]) for m in (torch.nn.Linear(a, b), torch.nn.SiLU())]
    return torch.nn.Sequential(*body, torch.nn.Linear(hidden, outputs))


def mixture(dtype: torch.dtype = torch.float32) -> torch.distributions.MixtureSameFamily:
    """The true density as a torch distribution."""
    centres = torch.tensor(CENTRES, dtype=dtype)
    scales = torch.tensor(STDS, dtype=dtype)[:, None].expand(-1, 2)
    components = torch.distributions.Independent(torch.distributions.Normal(centres, scales), 1)
    return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(torch.tensor(WEIGHTS, dtype=dtype)),
                                                 components)


def sample(n: int, seed: int) -> torch.Tensor:
    """`[n, 2]` points from the mixture, reproducibly from `seed`."""
    g = torch.Generator().manual_seed(seed)
    mode = torch.multinomial(torch.tensor(WEIGHTS), n, replacement=True, generator=g)
    return torch.tensor(CENTRES)[mode] + torch.tensor(STDS)[mode, None] * torch.randn(n, 2, generator=g)


def log_density(x: torch.Tensor) -> torch.Tensor:
    """log p(x) under the true mixture, `[n]`."""
    return mixture(x.dtype).log_prob(x)


def mmd2(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float] = BANDWIDTHS) -> float:
    """The unbiased squared MMD between sample sets `a` and `b` (diagonals left out of the within-set means)."""
    def mean_kernel(u: torch.Tensor, v: torch.Tensor, same: bool) -> torch.Tensor:
        d2 = torch.cdist(u, v) ** 2
        k = sum(torch.exp(-d2 / (2 * h ** 2)) for h in bandwidths)
        if not same:
            return k.mean()
        n = u.shape[0]
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    a, b = a.double(), b.double()
    return float(mean_kernel(a, a, True) + mean_kernel(b, b, True) - 2 * mean_kernel(a, b, False))


def quality(samples: torch.Tensor, held_out: torch.Tensor) -> Dict[str, float]:
    """{"mmd2": unbiased MMD^2 to the held-out data, "nll": mean -log p(sample) under the true mixture}; samples
    outside the plot's box count at their true density (nothing is clipped)."""
    samples = samples.detach().float().cpu()
    return {"mmd2": mmd2(samples, held_out), "nll": float(-log_density(samples).mean())}


def baselines(train: torch.Tensor, held_out: torch.Tensor, n: int, seed: int) -> Dict[str, Dict[str, float]]:
    """The quality of a fresh draw of the data and of one Gaussian fitted to `train`, on `n` samples each."""
    g = torch.Generator().manual_seed(seed)
    mean, cov = train.mean(0), torch.cov(train.T)
    gauss = mean + torch.randn(n, 2, generator=g) @ torch.linalg.cholesky(cov).T
    return {"data": quality(sample(n, seed + 7), held_out), "one Gaussian": quality(gauss, held_out)}


def metric_line(name: str, model: Mapping[str, float], base: Mapping[str, Mapping[str, float]]) -> str:
    """`<name>: MMD^2 0.0012 (data 0.0000, one Gaussian 0.0310); NLL of samples 1.23 nats (data 1.20, ...)`."""
    data, gauss = base["data"], base["one Gaussian"]
    return (f"{name}: MMD^2 to held-out data {model['mmd2']:.4f} (data {data['mmd2']:.4f}, one Gaussian "
            f"{gauss['mmd2']:.4f}); NLL of samples under the true mixture {model['nll']:.3f} nats (data "
            f"{data['nll']:.3f}, one Gaussian {gauss['nll']:.3f})")


def save_figure(path: Path, real: torch.Tensor, runs: Mapping[str, torch.Tensor],
                scores: Mapping[str, Mapping[str, float]]) -> None:
    """Samples beside the data, one panel per run (title: its MMD^2 and NLL), and a bar chart of the MMD^2 of
    every run and baseline in `scores` (the sample-quality figure)."""
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(4.5 * (len(runs) + 1), 4.5), dpi=100, squeeze=False)
    for ax, (name, samples) in zip(axes[0], runs.items()):
        ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.25, label="held-out data")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.35, label="samples")
        s = scores[name]
        ax.set_title(f"{name}: MMD² {s['mmd2']:.4f}, NLL {s['nll']:.2f}", fontsize=9)
        ax.set(xlim=(-BOX, BOX), ylim=(-BOX, BOX), aspect="equal")
        ax.legend(loc="lower left", fontsize=7, markerscale=4)
    bars = axes[0][-1]
    names = list(scores)
    bars.bar(range(len(names)), [max(scores[k]["mmd2"], 1e-5) for k in names], color="tab:blue")
    bars.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    bars.set_yscale("log")
    bars.set_title("MMD² to held-out data (lower: better; ≤ 0 at 1e-5)", fontsize=9)
    bars.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["parser", "mlp", "mixture", "sample", "log_density", "mmd2", "quality", "baselines", "metric_line", "save_figure"]
