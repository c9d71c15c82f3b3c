"""A neural spline flow (zuko's NSF, Durkan et al. 2019) on two moons, by maximum likelihood, against a Gaussian and
a Gaussian mixture.

    python examples/flow.py                      # 200 epochs of 16 steps: about a minute on one idle CPU core
    python examples/flow.py --smoke --out runs/ci-smoke

The objective is the data's expected log-likelihood under the flow, as papers write it, with the flow declared
from zuko (`fm.Flow("p(x)", zuko.flows.NSF(...))`): its log-density is zuko's exact one. The same density is also
written by the change of variables (Dinh et al. 2017, eq. 3) with a standard Normal base, the flow's transform
declared as `fm.Transform` and its log-determinant in the formula; the two are checked equal on held-out data.

Writes flow.png (the data, the flow's density, the flow's samples) into --out. Metric: the held-out mean
log-likelihood in nats per point of the flow, of a Gaussian mixture (scikit-learn, fitted by EM) and of one Gaussian.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch
import zuko

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figures  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402

import formula as fm  # noqa: E402

LIKELIHOOD = r"\mathbb{E}_{p_{\text{data}}(x)}\left[\log p_\theta(x)\right]"
LIKELIHOOD_ASCII = "E_{p_data(x)}[log p_theta(x)]"
# change of variables: log p(x) = log N(f(x) | 0, I) + log |det ∂f(x)/∂x|, with f the flow's map from data to
# noise; the 2-D standard Normal's log-density is written out (a density at a function's value, p_Z(f(x)), is not
# evaluated yet), and pi is an input
CHANGE_OF_VARIABLES = (r"\mathbb{E}_{p_{\text{data}}(x)}\left[-\frac{1}{2}\|f(x)\|^2 - \log(2\pi) + "
                       r"\log \left|\det \frac{\partial f(x)}{\partial x}\right|\right]")
CHANGE_OF_VARIABLES_ASCII = r"E_{p_data(x)}[-1/2 ||f(x)||^2 - log(2 pi) + log |det(\frac{\partial f(x)}{\partial x})|]"
NOISE, TRAIN, HELD_OUT = 0.05, 4096, 2048


def moons(n: int, seed: int) -> torch.Tensor:
    """`n` points of scikit-learn's two moons (noise 0.05), centred: `[n, 2]` float32."""
    from sklearn.datasets import make_moons

    x, _ = make_moons(n, noise=NOISE, random_state=seed)
    return torch.tensor(x - np.array([0.5, 0.25]), dtype=torch.float32)


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help=f"epochs over {TRAIN} points")
    parser.add_argument("--transforms", type=int, default=3, help="spline coupling layers of the NSF")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--components", type=int, default=8, help="of the Gaussian mixture baseline")
    args = parse_common(parser, argv, out="runs/flow")
    if args.lr == 1e-3:  # the shared default; a flow this small trains faster at 3e-3
        args.lr = 3e-3
    return args


def check_spellings() -> None:
    """The LaTeX and the ASCII spellings are the same formula."""
    for latex, ascii_ in ((LIKELIHOOD, LIKELIHOOD_ASCII), (CHANGE_OF_VARIABLES, CHANGE_OF_VARIABLES_ASCII)):
        if not fm.equivalent(latex, ascii_):
            raise SystemExit(f"not equivalent:\n  {latex}\n  {ascii_}")


def train_flow(args: argparse.Namespace, data: torch.Tensor) -> Tuple[zuko.flows.NSF, fm.Trainer]:
    torch.manual_seed(args.seed)
    nsf = zuko.flows.NSF(features=2, transforms=args.transforms, bins=args.bins,
                         hidden_features=(args.hidden, args.hidden))
    decls = [fm.Flow("p_theta(x)", nsf), fm.Data("p_data(x)")]
    objective = fm.compile(LIKELIHOOD, decls)
    print(objective, objective.explain(), sep="\n")
    steps = args.epochs * (TRAIN // args.batch_size)
    cosine = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, max(steps, 1))  # noqa: E731
    trainer = fm.Trainer(objective, lr=args.lr, device=args.device, batch_size=args.batch_size, seed=args.seed,
                         scheduler=cosine)
    trainer.fit({"x": data}, epochs=args.epochs)
    return nsf.cpu(), trainer


def change_of_variables(nsf: zuko.flows.NSF, x: torch.Tensor) -> torch.Tensor:
    """The flow's log-density written as the change of variables, with its transform declared on its own."""
    decls = [fm.Transform("f(x)", nsf.transform), fm.Data("p_data(x)")]
    with torch.no_grad():
        return fm.compile(CHANGE_OF_VARIABLES, decls)(x=x, pi=math.pi)


def baselines(args: argparse.Namespace, train: torch.Tensor, test: torch.Tensor) -> Dict[str, float]:
    """Held-out mean log-likelihood of one Gaussian (maximum likelihood) and of a Gaussian mixture (EM)."""
    from sklearn.mixture import GaussianMixture

    mean, cov = train.double().mean(0), torch.cov(train.double().T)
    gaussian = torch.distributions.MultivariateNormal(mean, cov).log_prob(test.double()).mean()
    gmm = GaussianMixture(args.components, covariance_type="full", random_state=args.seed).fit(train.numpy())
    return {f"GMM({args.components})": float(gmm.score(test.numpy())), "Gaussian": float(gaussian)}


def save_figure(nsf: zuko.flows.NSF, data: torch.Tensor, path: Path, seed: int) -> None:
    plt = figures.pyplot()
    grid = torch.linspace(-2.0, 2.0, 200)
    xx, yy = torch.meshgrid(grid, grid * 0.75, indexing="xy")
    with torch.no_grad():
        density = nsf().log_prob(torch.stack([xx, yy], -1).reshape(-1, 2)).exp().reshape(xx.shape)
        torch.manual_seed(seed)
        samples = nsf().sample((2000,))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    axes[0].scatter(data[:2000, 0], data[:2000, 1], s=2, alpha=0.4)
    axes[0].set_title("held-out data")
    axes[1].pcolormesh(xx, yy, density, shading="auto", cmap="viridis")
    axes[1].set_title("flow density p(x)")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:orange")
    axes[2].set_title("flow samples")
    for ax in axes:
        ax.set(xlim=(-2, 2), ylim=(-1.5, 1.5), aspect="equal")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    check_spellings()
    print("objective:", fm.pretty(LIKELIHOOD), "change of variables:", fm.pretty(CHANGE_OF_VARIABLES), sep="\n")
    train, test = moons(TRAIN, args.seed), moons(HELD_OUT, args.seed + 1)
    start = time.perf_counter()
    nsf, trainer = train_flow(args, train)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        flow_ll = nsf().log_prob(test)
    by_change = change_of_variables(nsf, test)
    gap = float((by_change - flow_ll).abs().max())
    if gap > 1e-3:
        raise SystemExit(f"the change of variables differs from the flow's log-density by {gap:.2e}")
    print(f"change of variables = zuko's log-density on {HELD_OUT} held-out points (max difference {gap:.1e})")
    results = {"NSF flow": float(flow_ll.mean()), **baselines(args, train, test)}
    save_figure(nsf, test, args.out / "flow.png", args.seed)
    steps = args.epochs * (TRAIN // args.batch_size)
    print(f"trained {steps} steps in {seconds:.1f} s; wrote flow.png to {args.out}")
    write_results(args.out, model="Neural spline flow", paper="Durkan et al. 2019", formula=LIKELIHOOD,
                  metric="held-out log-likelihood (nats/point)", value=results["NSF flow"],
                  baselines={k: v for k, v in results.items() if k != "NSF flow"})
    print("held-out log-likelihood (nats per point): " + ", ".join(f"{k} {v:.3f}" for k, v in results.items()))
    return results


if __name__ == "__main__":
    main()
