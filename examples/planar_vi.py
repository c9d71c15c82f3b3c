"""Variational inference with planar flows (Rezende & Mohamed 2015, §6.1) on the paper's 2-D energies U1-U4.

    python examples/planar_vi.py                 # U1, K = 0, 2, 8, 32: about a minute of one idle CPU core
    python examples/planar_vi.py --targets U1 U2 U3 U4
    python examples/planar_vi.py --smoke --out runs/ci-smoke

The target is the unnormalised density exp(-U(z)). q_0 is a Gaussian with learned mean and scale, pushed through K
planar layers f = f_K o ... o f_1; what is minimised is the free energy of eq. 15, with log p(x, z_K) = -U(z_K):

    F = E_{q_0(z_0)}[log q_0(z_0) + U(f(z_0)) - log |det ∂f(z_0)/∂z_0|]

The paper writes the log-determinant as the sum over the layers, Σ_k log |1 + u_kᵀ ψ_k(z_{k-1})|. The formula
language has no recursion z_k = f_k(z_{k-1}), so the K layers are declared as one transform,
`fm.Transform("f(z_0)", fm.PlanarFlow(2, K))`, whose log-determinant is that sum. K = 0 is the identity (plain
Gaussian VI). -F is a lower bound on log Z = log ∫ exp(-U(z)) dz, which is computed on a grid for comparison.
U2-U4 do not decay along z_1 (their integral over the plane is infinite), so every target is restricted to the
box [-4, 4]^2 the paper shows them on, by a steep wall outside it.

Writes planar_vi.png (each target's true density and the flows' samples for every K) into --out. Metric: the bound
-F (nats, 20,000 draws) for each target and K, and log Z.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figures  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402

import formula as fm  # noqa: E402

FREE_ENERGY = (r"\mathcal{F} = \mathbb{E}_{q_0(z_0)}\left[\log q_0(z_0) + U(f(z_0)) - "
               r"\log \left|\det \frac{\partial f(z_0)}{\partial z_0}\right|\right]")
FREE_ENERGY_ASCII = r"F = E_{q_0(z_0)}[log q_0(z_0) + U(f(z_0)) - log |det(\frac{\partial f(z_0)}{\partial z_0})|]"
LAYERS = (0, 2, 8, 32)
EVAL_DRAWS = 20_000
BOX = 4.0  # the targets live on [-4, 4]^2 (see `boxed`)
WALL = 0.1  # the width of the wall outside the box


def _w1(z):
    return torch.sin(2 * math.pi * z[..., 0] / 4)


def _neg_log_two(a, b):
    """-log(e^a + e^b), stably."""
    return -torch.logaddexp(a, b)


def u1(z):
    ring = 0.5 * ((z.norm(dim=-1) - 2) / 0.4) ** 2
    return ring + _neg_log_two(-0.5 * ((z[..., 0] - 2) / 0.6) ** 2, -0.5 * ((z[..., 0] + 2) / 0.6) ** 2)


def u2(z):
    return 0.5 * ((z[..., 1] - _w1(z)) / 0.4) ** 2


def u3(z):
    w2 = 3 * torch.exp(-0.5 * ((z[..., 0] - 1) / 0.6) ** 2)
    d = z[..., 1] - _w1(z)
    return _neg_log_two(-0.5 * (d / 0.35) ** 2, -0.5 * ((d + w2) / 0.35) ** 2)


def u4(z):
    w3 = 3 * torch.sigmoid((z[..., 0] - 1) / 0.3)
    d = z[..., 1] - _w1(z)
    return _neg_log_two(-0.5 * (d / 0.4) ** 2, -0.5 * ((d + w3) / 0.35) ** 2)


def boxed(energy: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """`energy` inside [-4, 4]^2 and a steep quadratic wall outside (width WALL): U2-U4 do not decay along z_1, so
    exp(-U) has no finite integral on the plane; the paper shows them on the box, and so the target is the box."""

    def confined(z: torch.Tensor) -> torch.Tensor:
        return energy(z) + 0.5 * (torch.relu(z.abs() - BOX) / WALL).pow(2).sum(-1)

    confined.__name__ = energy.__name__
    return confined


ENERGIES: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    name: boxed(u) for name, u in (("U1", u1), ("U2", u2), ("U3", u3), ("U4", u4))}


def log_z(energy: Callable, points: int = 1201) -> float:
    """log ∫ exp(-U(z)) dz by the trapezoid rule on a grid over [-5, 5]^2, the wall included (float64)."""
    grid = torch.linspace(-BOX - 1, BOX + 1, points, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1)
    density = torch.exp(-energy(zz))
    return float(torch.trapezoid(torch.trapezoid(density, grid, dim=1), grid).log())


class Gaussian(nn.Module):
    """q_0: a diagonal Gaussian with learned mean and log-scale; `forward()` returns it (the zuko pattern)."""

    def __init__(self, features: int = 2):
        super().__init__()
        self.loc = nn.Parameter(0.1 * torch.randn(features))  # off the origin: U1's two modes are symmetric
        self.log_scale = nn.Parameter(torch.zeros(features))

    def forward(self) -> torch.distributions.Distribution:
        return torch.distributions.Independent(torch.distributions.Normal(self.loc, self.log_scale.exp()), 1)


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000, help="steps of each (target, K) run")
    parser.add_argument("--draws", type=int, default=256, help="draws of z_0 per step")
    parser.add_argument("--targets", nargs="+", default=["U1"], choices=list(ENERGIES),
                        help="the energies to fit (each costs about a minute)")
    args = parse_common(parser, argv, out="runs/planar_vi", smoke_epochs=20)
    if args.lr == 1e-3:  # the shared default; these small flows train faster at 5e-3
        args.lr = 5e-3
    return args


def build(energy: Callable, layers: int) -> Tuple[fm.Objective, List[nn.Module]]:
    """The free energy over q_0, the K-layer planar flow f and the energy U (a declared function), and those."""
    decls = [fm.LazyDistribution("q_0(z_0)", Gaussian()), fm.Transform("f(z_0)", fm.PlanarFlow(2, layers)),
             fm.Function("U(z)", net=energy)]
    return fm.compile(FREE_ENERGY, decls), decls


def fit(args: argparse.Namespace, energy: Callable, layers: int) -> Tuple[fm.Objective, List[nn.Module]]:
    """Minimise F with Adam and a cosine schedule; the formula has no data, so each step draws `--draws` z_0."""
    torch.manual_seed(args.seed)
    free_energy, decls = build(energy, layers)
    cosine = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, max(args.epochs, 1))  # noqa: E731
    trainer = fm.Trainer(free_energy, maximize=False, lr=args.lr, batch_size=args.draws, scheduler=cosine,
                         device=args.device, seed=args.seed, progress=False)
    trainer.fit(None, epochs=1, steps_per_epoch=max(args.epochs, 1))
    free_energy.cpu()  # evaluated and drawn on the CPU
    return free_energy, decls


def bound_and_samples(free_energy: fm.Objective, decls: List[nn.Module], seed: int):
    """(-F averaged over EVAL_DRAWS draws, draws of q_0 pushed through the flow)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        bound = -float(free_energy(batch_size=EVAL_DRAWS).mean())
        q0, f = decls[0], decls[1]
        samples = f(q0.sample((EVAL_DRAWS,))["z_0"])
    return bound, samples


def save_figure(results: Dict[str, Dict[int, torch.Tensor]], path: Path) -> None:
    plt = figures.pyplot()
    rows = len(results)
    fig, axes = plt.subplots(rows, 1 + len(LAYERS), figsize=(3 * (1 + len(LAYERS)), 3 * rows), dpi=80,
                             squeeze=False)
    grid = torch.linspace(-BOX, BOX, 300)
    zz = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1)
    for row, (name, by_k) in zip(axes, results.items()):
        row[0].pcolormesh(zz[..., 0], zz[..., 1], torch.exp(-ENERGIES[name](zz)), shading="auto", cmap="magma")
        row[0].set_title(f"exp(-{name})", fontsize=10)
        for ax, (k, samples) in zip(row[1:], by_k.items()):
            ax.hist2d(samples[:, 0].numpy(), samples[:, 1].numpy(), bins=120, range=[[-BOX, BOX]] * 2, cmap="magma")
            ax.set_title(f"{name}, K = {k}", fontsize=10)
        for ax in row:
            ax.set(xlim=(-BOX, BOX), ylim=(-BOX, BOX), aspect="equal", xticks=[], yticks=[])
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> Dict[str, Dict[str, float]]:
    if not fm.equivalent(FREE_ENERGY, FREE_ENERGY_ASCII):
        raise SystemExit(f"not equivalent:\n  {FREE_ENERGY}\n  {FREE_ENERGY_ASCII}")
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(fm.pretty(FREE_ENERGY), build(u1, 2)[0].explain(), sep="\n")
    metrics: Dict[str, Dict[str, float]] = {}
    pictures: Dict[str, Dict[int, torch.Tensor]] = {}
    start = time.perf_counter()
    for name in args.targets:
        energy, metrics[name], pictures[name] = ENERGIES[name], {"log Z": log_z(ENERGIES[name])}, {}
        for k in LAYERS:
            metrics[name][f"K={k}"], pictures[name][k] = bound_and_samples(*fit(args, energy, k), args.seed + 1)
        print(f"{name}: " + ", ".join(f"{key} {value:.3f}" for key, value in metrics[name].items()), flush=True)
    seconds = time.perf_counter() - start
    save_figure(pictures, args.out / "planar_vi.png")
    print(f"trained {len(args.targets)} x {len(LAYERS)} runs of {args.epochs} steps in {seconds:.1f} s; wrote planar_vi.png to {args.out}")
    first = args.targets[0]
    write_results(args.out, model=f"planar flow, K = {LAYERS[-1]}", paper="Rezende & Mohamed 2015",
                  formula=FREE_ENERGY, metric=f"bound -F on log Z of {first} (nats)",
                  value=metrics[first][f"K={LAYERS[-1]}"], log_z=metrics[first]["log Z"])
    print("bound -F on log Z (nats), K = " + "/".join(map(str, LAYERS)) + ": " + ", ".join(
        f"{name} " + "/".join(f"{m[f'K={k}']:.3f}" for k in LAYERS) + f" (log Z {m['log Z']:.3f})"
        for name, m in metrics.items()))
    return metrics


if __name__ == "__main__":
    main()
