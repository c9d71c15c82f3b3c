"""A GAN on a 2-D ring of 8 Gaussians, written as Goodfellow et al. (2014, eq. 1) write its value function.

    python examples/gan.py                      # 2 x 12,000 steps: about 75 s of one idle CPU core
    python examples/gan.py --smoke --out runs/ci-smoke

Trains the generator twice: with the minimax loss (G descends V(D, G), one objective for both players) and with
the non-saturating loss (G ascends log D(G(z)), its own objective beside the critic's), alternating one critic
step with one generator step (`fm.Alternating`). Writes gan.png (real and generated samples of both) into --out.
Metric: the modes covered (a mode holds at least a quarter of its fair share, 1/32, of the samples within 3σ of
it) and the share of samples within 3σ of some mode, on 2,500 samples.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common.results import write_results  # noqa: E402

import formula as fm  # noqa: E402

# eq. 1 of the paper, as printed there: the players' prefix, the name of the value function, its definition
PREFIX = r"\min_G \max_D "
V = (r"\mathbb{E}_{\boldsymbol{x} \sim p_{\text{data}}(\boldsymbol{x})}[\log D(\boldsymbol{x})] + "
     r"\mathbb{E}_{\boldsymbol{z} \sim p_{\boldsymbol{z}}(\boldsymbol{z})}[\log(1 - D(G(\boldsymbol{z})))]")
EQUATION_1 = PREFIX + "V(D, G) = " + V
EQUATION_1_ASCII = "min_G max_D V(D, G) = E_{x ~ p_data(x)}[log D(x)] + E_{z ~ p_z(z)}[log(1 - D(G(z)))]"
# what is trained: the prefix over V's definition (a definition line `V(D, G) = ...` does not compile yet)
VALUE = PREFIX + r"\left(" + V + r"\right)"
VALUE_ASCII = "min_G max_D (E_{x ~ p_data(x)}[log D(x)] + E_{z ~ p_z(z)}[log(1 - D(G(z)))])"
NON_SATURATING = r"\max_G \mathbb{E}_{\boldsymbol{z} \sim p_{\boldsymbol{z}}(\boldsymbol{z})}[\log D(G(\boldsymbol{z}))]"
NON_SATURATING_ASCII = "max_G E_{z ~ p_z(z)}[log D(G(z))]"

MODES, RADIUS, SIGMA = 8, 2.0, 0.05  # the ring: 8 Gaussians of std SIGMA on a circle of radius RADIUS
EVAL_SAMPLES = 2500
STEPS_PER_EPOCH = 100  # the data set is 100 batches
EPS = 1e-6  # D's output stays in [EPS, 1 - EPS], so that log D and log(1 - D) stay finite


def centres(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 8 modes' centres, `[8, 2]`."""
    angles = torch.arange(MODES, dtype=dtype) * (2 * math.pi / MODES)
    return RADIUS * torch.stack([angles.cos(), angles.sin()], 1)


def ring(n: int, seed: int) -> torch.Tensor:
    """`n` points from the ring, each mode equally likely."""
    g = torch.Generator().manual_seed(seed)
    mode = torch.randint(MODES, (n,), generator=g)
    return centres()[mode] + SIGMA * torch.randn(n, 2, generator=g)


class Critic(nn.Module):
    """x -> D(x), the probability that x came from the data."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x):
        return EPS + (1 - 2 * EPS) * torch.sigmoid(self.net(x))


class Generator(nn.Module):
    """z -> G(z), a point in the plane."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, z):
        return self.net(z)


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=120, help="epochs of each run (100 steps an epoch)")
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr-d", type=float, default=5e-4)
    parser.add_argument("--lr-g", type=float, default=5e-4)
    parser.add_argument("--critic-steps", type=int, default=1, help="critic steps per generator step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/gan"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (nets this small run fastest on one)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: 2 epochs, same outputs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = min(args.epochs, 2)
    return args


def check_spellings() -> None:
    """The paper's LaTeX and the ASCII spelling are the same formula."""
    for latex, ascii_ in ((EQUATION_1, EQUATION_1_ASCII), (VALUE, VALUE_ASCII),
                          (NON_SATURATING, NON_SATURATING_ASCII)):
        if not fm.equivalent(latex, ascii_):
            raise SystemExit(f"not equivalent:\n  {latex}\n  {ascii_}")


def build(args: argparse.Namespace, loss: str) -> Tuple[nn.Module, Generator]:
    """The objective (a formula for both players, or a Game of two) and the generator it trains."""
    critic, generator = Critic(args.hidden), Generator(args.latent, args.hidden)
    decls = [fm.Function("D(x)", net=critic), fm.Function("G(z)", net=generator), fm.Data("p_data(x)"),
             fm.Normal("p_z(z)", loc=0.0, scale=1.0, shape=(args.latent,))]
    value = fm.compile(VALUE, decls)
    if loss == "minimax":
        return value, generator
    # the generator's objective has no data input: it draws a batch of z by samples=
    return fm.Game({"D": value, "G": fm.compile(NON_SATURATING, decls, samples=args.batch_size)}), generator


def train(args: argparse.Namespace, loss: str, data: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
    """One run; returns generated samples and the last epoch's per-player means."""
    torch.manual_seed(args.seed)
    objective, generator = build(args, loss)
    adam = {"D": lambda p: torch.optim.Adam(p, lr=args.lr_d, betas=(0.5, 0.999)),
            "G": lambda p: torch.optim.Adam(p, lr=args.lr_g, betas=(0.5, 0.999))}
    k, total = args.critic_steps, args.epochs * STEPS_PER_EPOCH
    updates = {"D": total * k // (k + 1), "G": total // (k + 1)}
    decay = {name: lambda o, n=n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: max(0.1, 1 - 0.9 * t / n))
             for name, n in updates.items()}  # linearly to a tenth of the rate: the last samples settle
    rule = fm.Alternating(optimizer=adam, steps={"D": k, "G": 1}, order=["D", "G"], scheduler=decay)
    trainer = fm.Trainer(objective, update=rule, device=args.device, batch_size=args.batch_size, seed=args.seed)
    history = trainer.fit({"x": data}, epochs=args.epochs)
    with torch.no_grad():
        z = torch.randn(EVAL_SAMPLES, args.latent, generator=torch.Generator().manual_seed(args.seed + 1))
        samples = generator(z.to(trainer.device)).cpu()
    return samples, {k: v[-1] for k, v in history.items() if k.endswith("/loss")}


def coverage(samples: torch.Tensor) -> Tuple[int, float]:
    """(modes covered of 8, share of samples within 3σ of a mode)."""
    distance = torch.cdist(samples, centres(samples.dtype))
    nearest, mode = distance.min(1)
    good = nearest < 3 * SIGMA
    counts = torch.bincount(mode[good], minlength=MODES)
    covered = int((counts >= samples.shape[0] / (4 * MODES)).sum())
    return covered, float(good.float().mean())


def save_scatter(real: torch.Tensor, runs: Dict[str, torch.Tensor], metrics: Dict[str, Tuple[int, float]],
                 path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 5), dpi=100, squeeze=False)
    for ax, (loss, samples) in zip(axes[0], runs.items()):
        ax.scatter(real[:, 0], real[:, 1], s=3, alpha=0.3, label="real")
        ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.3, label="generated")
        covered, share = metrics[loss]
        ax.set_title(f"{loss}: {covered}/{MODES} modes, {share:.0%} within 3σ", fontsize=10)
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
        ax.legend(loc="upper right", fontsize=8, markerscale=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> Dict[str, Tuple[int, float]]:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    check_spellings()
    print("eq. 1:", fm.pretty(EQUATION_1), "trained:", fm.pretty(VALUE), "non-saturating generator:",
          fm.pretty(NON_SATURATING), sep="\n", end="\n\n")
    data = ring(STEPS_PER_EPOCH * args.batch_size, args.seed)
    runs: Dict[str, torch.Tensor] = {}
    metrics: Dict[str, Tuple[int, float]] = {}
    start = time.perf_counter()
    for loss in ("minimax", "non-saturating"):
        runs[loss], losses = train(args, loss, data)
        metrics[loss] = coverage(runs[loss])
        print(f"{loss}: last epoch's losses " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
              + f"; {metrics[loss][0]}/{MODES} modes, {metrics[loss][1]:.1%} within 3σ", flush=True)
    seconds = time.perf_counter() - start
    save_scatter(ring(EVAL_SAMPLES, args.seed + 2), runs, metrics, args.out / "gan.png")
    print(f"trained 2 x {args.epochs * STEPS_PER_EPOCH} steps in {seconds:.1f} s; wrote gan.png to {args.out}")
    write_results(args.out, model="GAN (non-saturating G)", paper="Goodfellow et al. 2014", formula=EQUATION_1,
                  metric="modes covered of 8", value=metrics["non-saturating"][0],
                  minimax_modes=metrics["minimax"][0], share_within_3_sigma=metrics["non-saturating"][1])
    print("modes covered of 8 (share within 3σ): "
          + ", ".join(f"{loss} {c}/{MODES} ({s:.1%})" for loss, (c, s) in metrics.items()))
    return metrics


if __name__ == "__main__":
    main()
