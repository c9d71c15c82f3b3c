"""A deep Markov model (Krishnan et al. 2017) on a simulated pendulum, written with the paper's ELBO.

    python examples/dmm.py                      # about a minute on one CPU core
    python examples/dmm.py --smoke --out runs/ci-smoke

The inference network is the paper's structured one: a backward GRU summarises x_{t:T} at every step (declared as
a function `h(x)` over the whole sequence and used per step as h_t, computed once per call) and the combiner mixes
it with z_{t-1}. Trains on noisy 2-D bob positions of a damped pendulum, prints the held-out ELBO per sequence, and
writes trajectories.png (the angle of real and generated sequences over time) and metrics.json into --out.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Dict

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402

import formula as fm  # noqa: E402

# The paper's ELBO (eq. 6, the KL inside the sum over steps), with the backward RNN's state h_t standing for
# x_{t:T} in q's conditions: the only change is declaring what h is.
ELBO = (r"\sum_{t=1}^{T} \mathbb{E}_{q_\phi(z_t \mid z_{t-1}, h_t)}\left[\log p_\theta(x_t \mid z_t)\right] - "
        r"D_{KL}\left(q_\phi(z_t \mid z_{t-1}, h_t) \,\|\, p_\theta(z_t \mid z_{t-1})\right)")
ELBO_ASCII = "sum_{t=1}^{T} E_{q(z_t|z_{t-1},h_t)}[log p(x_t|z_t)] - KL(q(z_t|z_{t-1},h_t) || p(z_t|z_{t-1}))"

DT, GRAVITY, DAMPING, NOISE = 0.1, 9.81, 0.1, 0.05  # the pendulum: time step, g/l, friction, observation noise


def pendulum(n: int, steps: int, seed: int) -> Dict[str, torch.Tensor]:
    """`n` noisy sequences of the bob's position (sin θ, -cos θ), `[n, steps, 2]`, and their angles θ."""
    g = torch.Generator().manual_seed(seed)
    theta = (torch.rand(n, generator=g) * 2 - 1) * 2.0
    omega = torch.randn(n, generator=g)
    angles = []
    for _ in range(steps):
        angles.append(theta)
        omega = omega - DT * (GRAVITY * torch.sin(theta) + DAMPING * omega)
        theta = theta + DT * omega
    theta = torch.stack(angles, 1)
    x = torch.stack([theta.sin(), -theta.cos()], -1) + NOISE * torch.randn(n, steps, 2, generator=g)
    return {"x": x, "theta": theta}


class Backward(nn.Module):
    """h(x): a GRU run from the last step back, so that h_t summarises x_{t:T}; [batch, T, hidden]."""

    def __init__(self, hidden: int):
        super().__init__()
        self.gru = nn.GRU(2, hidden, batch_first=True)

    def forward(self, x):
        out, _ = self.gru(x.flip(1))
        return out.flip(1)


class Combiner(nn.Module):
    """Krishnan et al.'s combiner: h_comb = (tanh(W z_{t-1} + b) + h_t) / 2, then the Normal q(z_t|z_{t-1}, h_t)."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.z_to_h, self.loc, self.scale = nn.Linear(latent, hidden), nn.Linear(hidden, latent), nn.Linear(hidden, latent)

    def forward(self, z_prev, h):
        c = 0.5 * (torch.tanh(self.z_to_h(z_prev)) + h)
        return {"loc": self.loc(c), "scale": nn.functional.softplus(self.scale(c)) + 1e-4}


class Transition(nn.Module):
    """p(z_t|z_{t-1}): a residual step z_{t-1} + f(z_{t-1}) with a learned spread."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))

    def forward(self, z_prev):
        step, scale = self.net(z_prev).chunk(2, -1)
        return {"loc": z_prev + step, "scale": nn.functional.softplus(scale) + 1e-4}


class Emission(nn.Module):
    """p(x_t|z_t): a Normal over the 2-D position."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, 4))

    def forward(self, z):
        loc, scale = self.net(z).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-3}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--sequences", type=int, default=800, help="training sequences (200 more are held out)")
    parser.add_argument("--steps", type=int, default=20, help="steps per sequence (0.1 s each)")
    parser.add_argument("--latent", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parse_common(parser, argv, "runs/dmm", smoke_epochs=1)
    args.lr = args.lr if args.lr != 1e-3 else 3e-3
    if args.smoke:
        args.sequences = min(args.sequences, 100)
    return args


def build(args):
    """The declarations (nets named for the figures) and the compiled ELBO."""
    nets = {"h": Backward(args.hidden), "q": Combiner(args.latent, args.hidden),
            "trans": Transition(args.latent, args.hidden), "emit": Emission(args.latent, args.hidden)}
    decls = [fm.Function("h(x)", net=nets["h"]), fm.Normal("q_phi(z_t|z_{t-1},h_t)", net=nets["q"]),
             fm.Normal("p_theta(z_t|z_{t-1})", net=nets["trans"]), fm.Normal("p_theta(x_t|z_t)", net=nets["emit"]),
             fm.Normal("p(z_0)", loc=0.0, scale=1.0, shape=(args.latent,))]
    return nets, fm.compile(ELBO, decls)


@torch.no_grad()
def generate(nets, n: int, steps: int, latent: int, seed: int) -> torch.Tensor:
    """`n` sequences from the model: z_0 ~ N(0, I), z_t ~ p(z_t|z_{t-1}), the mean position of p(x_t|z_t)."""
    g = torch.Generator().manual_seed(seed)
    z, out = torch.randn(n, latent, generator=g), []
    for _ in range(steps):
        params = nets["trans"](z)
        z = params["loc"] + params["scale"] * torch.randn(n, latent, generator=g)
        out.append(nets["emit"](z)["loc"])
    return torch.stack(out, 1)


def angle(x: torch.Tensor) -> torch.Tensor:
    """θ from the position (sin θ, -cos θ)."""
    return torch.atan2(x[..., 0], -x[..., 1])


def save_trajectories(real: torch.Tensor, fake: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100, sharey=True)
    time_axis = torch.arange(real.shape[1]) * DT
    for ax, data, title in ((axes[0], real, "real (held out)"), (axes[1], fake, "generated by the DMM")):
        for seq in angle(data):
            ax.plot(time_axis, seq, lw=1)
        ax.set(title=title, xlabel="time (s)", ylim=(-math.pi, math.pi))
    axes[0].set_ylabel("angle θ (rad)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if not fm.equivalent(ELBO, ELBO_ASCII):
        raise SystemExit(f"not equivalent:\n  {ELBO}\n  {ELBO_ASCII}")
    train = pendulum(args.sequences, args.steps, args.seed)
    held = pendulum(200 if not args.smoke else 50, args.steps, args.seed + 1)
    nets, elbo = build(args)
    print(elbo, end="\n\n")
    print(elbo.explain(), end="\n\n")
    trainer = fm.Trainer(elbo, maximize=True, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         seed=args.seed)
    start = time.perf_counter()
    trainer.fit({"x": train["x"]}, epochs=args.epochs)
    seconds = time.perf_counter() - start
    final = trainer.evaluate({"x": held["x"]})
    for m in nets.values():
        m.cpu()
    fake = generate(nets, 8, args.steps, args.latent, args.seed + 2)
    save_trajectories(held["x"][:8], fake, args.out / "trajectories.png")
    value = final["objective"]
    write_results(args.out, model="DMM", paper="Krishnan et al. 2017", formula=ELBO,
                  metric="held-out ELBO (nats/sequence)", value=value, steps=args.steps)
    print(f"trained {trainer.step} steps in {seconds:.1f} s on {trainer.device}; wrote trajectories.png and "
          f"metrics.json to {args.out}")
    print(f"held-out ELBO: {value:.3f} nats per sequence of {args.steps} steps")  # the metric, last
    return final


if __name__ == "__main__":
    main()
