"""A variational RNN (Chung et al. 2015) on a switching oscillator, written with the paper's bound and its state.

    python examples/vrnn.py                      # about a minute of one CPU core (both models)
    python examples/vrnn.py --smoke --out runs/ci-smoke

The data: a point going round a circle that reverses its direction at random steps (probability 0.15 a step),
observed with small noise. Given the past, the next position has two modes (go on, or turn back), which a
Gaussian emission of an RNN's state cannot represent, and a latent z_t drawn from VRNN's prior p(z_t|h_{t-1}) can.
The recurrent state is a definition line of the formula, `h_t = f(h_{t-1}, x_t, z_t)`, computed step by step
after z_t is drawn; its first value is declared (`fm.Initial("h_0", ...)`). For comparison, the same recurrence
without a latent, `h_t = g(h_{t-1}, x_t)` with the emission p(x_t|h_{t-1}) (an RNN, whose log-likelihood is
exact), is written and trained the same way. Prints both held-out values per sequence (the VRNN's is a lower
bound on its log-likelihood), writes sequences.png (real, VRNN-generated and RNN-generated sequences) and
metrics.json into --out.
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

# The paper's ELBO (eq. 11) with its conditionals written through the state h_{t-1} (its eqs. 5-7): the prior
# p(z_t|h_{t-1}), the posterior q(z_t|x_t, h_{t-1}), the emission p(x_t|z_t, h_{t-1}) and the recurrence (eq. 7).
ELBO = "\n".join([
    r"h_t = f_\theta(h_{t-1}, x_t, z_t)",
    r"\sum_{t=1}^{T} \mathbb{E}_{q_\phi(z_t \mid x_t, h_{t-1})}\left[\log p_\theta(x_t \mid z_t, h_{t-1})\right]"
    r" - D_{KL}\left(q_\phi(z_t \mid x_t, h_{t-1}) \,\|\, p_\theta(z_t \mid h_{t-1})\right)",
])
ELBO_ASCII = ("h_t = f(h_{t-1}, x_t, z_t)\n"
              "sum_{t=1}^{T} E_{q(z_t|x_t,h_{t-1})}[log p(x_t|z_t,h_{t-1})] - KL(q(z_t|x_t,h_{t-1}) || p(z_t|h_{t-1}))")
# The baseline: the same recurrence with no latent, an RNN whose emission reads the state (its exact log-likelihood).
RNN = "h_t = g(h_{t-1}, x_t)\n\\sum_{t=1}^{T} \\log p(x_t \\mid h_{t-1})"

OMEGA, SWITCH, NOISE = 0.6, 0.15, 0.05  # angular step (rad), chance of turning back per step, observation noise


def oscillator(n: int, steps: int, seed: int) -> torch.Tensor:
    """`n` sequences `[n, steps, 2]`: positions on the unit circle, turning back with probability SWITCH per step."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, generator=g) * 2 * math.pi
    direction = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    out = []
    for _ in range(steps):
        out.append(torch.stack([theta.cos(), theta.sin()], -1))
        direction = torch.where(torch.rand(n, generator=g) < SWITCH, -direction, direction)
        theta = theta + OMEGA * direction
    return torch.stack(out, 1) + NOISE * torch.randn(n, steps, 2, generator=g)


def mlp(n_in: int, n_out: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class Gaussian(nn.Module):
    """A diagonal Normal of the concatenated arguments."""

    def __init__(self, n_in: int, n_out: int, hidden: int, floor: float = 1e-3):
        super().__init__()
        self.net, self.floor = mlp(n_in, 2 * n_out, hidden), floor

    def forward(self, *args):
        loc, scale = self.net(torch.cat(args, -1)).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + self.floor}


class Step(nn.Module):
    """The recurrence: a GRU cell over features of its inputs (the paper's phi^x, phi^z), the state first."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.features, self.cell = mlp(n_in, hidden, hidden), nn.GRUCell(hidden, hidden)

    def forward(self, h, *inputs):
        return self.cell(torch.relu(self.features(torch.cat(inputs, -1))), h)


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sequences", type=int, default=1000, help="training sequences (300 more are held out)")
    parser.add_argument("--steps", type=int, default=20, help="steps per sequence")
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=25)
    args = parse_common(parser, argv, "runs/vrnn", smoke_epochs=1)
    args.lr = args.lr if args.lr != 1e-3 else 3e-3
    if args.smoke:
        args.sequences = min(args.sequences, 100)
    return args


def build_vrnn(args):
    """The VRNN's declarations (nets by name, for generating) and its compiled ELBO."""
    z, h = args.latent, args.hidden
    nets = {"f": Step(2 + z, h), "prior": Gaussian(h, z, h), "q": Gaussian(2 + h, z, h),
            "emit": Gaussian(z + h, 2, h)}
    decls = [fm.Function("f(h, x, z)", net=nets["f"]), fm.Initial("h_0", size=(h,)),
             fm.Normal("p_theta(z_t|h_{t-1})", net=nets["prior"]), fm.Normal("q_phi(z_t|x_t,h_{t-1})", net=nets["q"]),
             fm.Normal("p_theta(x_t|z_t,h_{t-1})", net=nets["emit"])]
    return nets, fm.compile(ELBO, decls)


def build_rnn(args):
    """The baseline: the recurrence without a latent and a Normal emission of the state."""
    h = args.hidden
    nets = {"g": Step(2, h), "emit": Gaussian(h, 2, h)}
    decls = [fm.Function("g(h, x)", net=nets["g"]), fm.Initial("h_0", size=(h,)),
             fm.Normal("p(x_t|h_{t-1})", net=nets["emit"])]
    return nets, fm.compile(RNN, decls)


@torch.no_grad()
def generate_vrnn(nets, n: int, steps: int, hidden: int, g: torch.Generator) -> torch.Tensor:
    """z_t ~ p(z_t|h_{t-1}), x_t ~ p(x_t|z_t, h_{t-1}), h_t = f(h_{t-1}, x_t, z_t), from h_0 = 0."""
    h, out = torch.zeros(n, hidden), []
    for _ in range(steps):
        p = nets["prior"](h)
        z = p["loc"] + p["scale"] * torch.randn(p["loc"].shape, generator=g)
        e = nets["emit"](z, h)
        x = e["loc"] + e["scale"] * torch.randn(e["loc"].shape, generator=g)
        out.append(x)
        h = nets["f"](h, x, z)
    return torch.stack(out, 1)


@torch.no_grad()
def generate_rnn(nets, n: int, steps: int, hidden: int, g: torch.Generator) -> torch.Tensor:
    """x_t ~ p(x_t|h_{t-1}), h_t = g(h_{t-1}, x_t), from h_0 = 0."""
    h, out = torch.zeros(n, hidden), []
    for _ in range(steps):
        e = nets["emit"](h)
        x = e["loc"] + e["scale"] * torch.randn(e["loc"].shape, generator=g)
        out.append(x)
        h = nets["g"](h, x)
    return torch.stack(out, 1)


def radius_error(x: torch.Tensor) -> float:
    """How far generated positions are from the unit circle the data lie on (mean |‖x_t‖ - 1|)."""
    return float((x.norm(dim=-1) - 1).abs().mean())


def save_sequences(real, vrnn, rnn, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=100)
    panels = ((real, "real (held out)"), (vrnn, "generated by the VRNN"), (rnn, "generated by the RNN (no latent)"))
    for col, (data, title) in enumerate(panels):
        for seq in data[:4]:
            axes[0, col].plot(seq[:, 0], seq[:, 1], "-o", ms=2, lw=1)
            axes[1, col].plot(torch.atan2(seq[:, 1], seq[:, 0]), "-o", ms=2, lw=1)
        axes[0, col].set(title=title, xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), aspect="equal")
        axes[1, col].set(xlabel="step t", ylim=(-math.pi, math.pi))
    axes[0, 0].set_ylabel("position (x_t)")
    axes[1, 0].set_ylabel("angle atan2(x_t) (rad)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def train(objective, data, held, args) -> Dict[str, float]:
    trainer = fm.Trainer(objective, maximize=True, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         seed=args.seed)
    trainer.fit({"x": data}, epochs=args.epochs)
    final = trainer.evaluate({"x": held})
    return {"value": float(final["objective"]), "steps": trainer.step, "device": str(trainer.device)}


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if not fm.equivalent(ELBO, ELBO_ASCII):
        raise SystemExit(f"not equivalent:\n  {ELBO}\n  {ELBO_ASCII}")
    data = oscillator(args.sequences, args.steps, args.seed)
    held = oscillator(300 if not args.smoke else 50, args.steps, args.seed + 1)
    nets, elbo = build_vrnn(args)
    rnn_nets, rnn = build_rnn(args)
    print(elbo, end="\n\n")
    print(elbo.explain(), end="\n\n")
    start = time.perf_counter()
    vrnn_result = train(elbo, data, held, args)
    rnn_result = train(rnn, data, held, args)
    seconds = time.perf_counter() - start
    for m in list(nets.values()) + list(rnn_nets.values()):
        m.cpu()
    g = torch.Generator().manual_seed(args.seed + 2)
    fake = generate_vrnn(nets, 64, args.steps, args.hidden, g)
    fake_rnn = generate_rnn(rnn_nets, 64, args.steps, args.hidden, g)
    save_sequences(held[:4], fake, fake_rnn, args.out / "sequences.png")
    value = vrnn_result["value"]
    write_results(args.out, model="VRNN", paper="Chung et al. 2015", formula=ELBO,
                  metric="held-out ELBO (nats/sequence)", value=value, steps=args.steps,
                  rnn_log_likelihood=rnn_result["value"], vrnn_radius_error=radius_error(fake),
                  rnn_radius_error=radius_error(fake_rnn), train_seconds=round(seconds, 1))
    print(f"trained the VRNN ({vrnn_result['steps']} steps) and the RNN in {seconds:.1f} s on "
          f"{vrnn_result['device']}; wrote sequences.png and metrics.json to {args.out}")
    print(f"generated points off the unit circle (mean |‖x‖ - 1|): VRNN {radius_error(fake):.3f}, "
          f"RNN {radius_error(fake_rnn):.3f}, data {radius_error(held):.3f}")
    print(f"RNN without a latent, p(x_t|h_{{t-1}}): held-out log-likelihood {rnn_result['value']:.3f} nats per "
          "sequence")
    print(f"held-out ELBO: {value:.3f} nats per sequence of {args.steps} steps")  # the metric, last
    return {"objective": value, "rnn": rnn_result["value"]}


if __name__ == "__main__":
    main()
