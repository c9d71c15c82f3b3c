"""DDPM (Ho, Jain and Abbeel 2020) on a 2-D mixture: the simple loss of eq. 14 as the paper writes it, ancestral
sampling by the reverse process (algorithm 2).

    python examples/ddpm.py                     # 4,000 steps: 2 min 22 s on a loaded 2-core VM (load average
                                                # ~15), 25 s of CPU time
    python examples/ddpm.py --smoke --out runs/ci-smoke

The loss draws t uniformly from 1..T and epsilon from N(0, I) (the draw statements before it), takes x_0 from the
data, and regresses the noise; \\bar\\alpha_t is a declared schedule (`fm.Schedule("alpha_bar", ...)`) looked up
at the drawn t. The schedule is the paper's linear one, beta_t from 1e-4 to 0.1 over T = 100 steps (the paper's
0.02 over 1,000). Sampling: x_T ~ N(0, I), then x_{t-1} ~ p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), beta_t I)
for t = T..1 (`fm.DiffusionReverse`, `fm.Ancestral`), the last step without noise.

Writes ddpm.png (samples beside held-out data, and the MMD^2 bar chart) into --out. Metric: the unbiased MMD^2
to held-out data and the samples' NLL under the true mixture (examples/common/mixture2d.py).
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
from common import mixture2d  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from common.spellings import check_spellings  # noqa: E402
from common.start import start  # noqa: E402

import formula as fm  # noqa: E402
from formula.families.diffusion import linear_betas  # noqa: E402
from formula.families.schedule import Schedule  # noqa: E402

# eq. 14 of the paper, with its draws written as statements before it
SIMPLE = (r"t \sim \mathcal{U}\{1, \ldots, T\}" "\n"
          r"\epsilon \sim \mathcal{N}(0, \mathbf{I})" "\n"
          r"\mathbb{E}_{t, \mathbf{x}_0, \epsilon}\left[\left\| \epsilon - "
          r"\epsilon_\theta(\sqrt{\bar\alpha_t} \mathbf{x}_0 + \sqrt{1 - \bar\alpha_t} "
          r"\epsilon, t) \right\|^2\right]")
SIMPLE_ASCII = (r"t ~ \mathcal{U}\{1, ..., T\}; epsilon ~ \mathcal{N}(0, I); E_{t, x_0, epsilon}[||epsilon - "
                r"epsilon_theta(sqrt(\bar{alpha}_t) x_0 + sqrt(1 - \bar{alpha}_t) epsilon, t)||^2]")
STEPS_PER_EPOCH, EVAL_SAMPLES = mixture2d.STEPS_PER_EPOCH, mixture2d.EVAL_SAMPLES


class NoisePredictor(nn.Module):
    """(x_t, t) -> eps_theta(x_t, t): an MLP on x_t and sinusoidal features of t."""

    def __init__(self, hidden: int, steps: int, features: int = 16):
        super().__init__()
        self.steps = steps
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(steps), features // 2)))
        self.net = mixture2d.mlp(2 + features, hidden, 2, layers=3)

    def forward(self, x, t):
        angle = t.reshape(-1, 1).to(x.dtype) / self.steps * self.freqs.to(x.dtype)
        return self.net(torch.cat([x, angle.sin(), angle.cos()], -1))


def arguments(argv=None) -> argparse.Namespace:
    parser = mixture2d.parser(__doc__, epochs=40, batch_size=256)
    parser.add_argument("--steps", type=int, default=100, help="diffusion steps T")
    parser.add_argument("--beta-end", type=float, default=0.1, help="beta_T of the linear schedule (beta_1 = 1e-4)")
    return parse_common(parser, argv, out="runs/ddpm")


def build(args: argparse.Namespace) -> Tuple[fm.Objective, fm.DiffusionReverse]:
    """The simple loss over a fresh noise predictor, and the reverse process that samples with it."""
    betas = linear_betas(args.steps, 1e-4, args.beta_end)
    eps = fm.Function(r"\epsilon_\theta(x_t, t)", net=NoisePredictor(args.hidden, args.steps))
    schedule = Schedule("alpha_bar", torch.cumprod(1 - betas, 0).to(torch.get_default_dtype()))
    loss = fm.compile(SIMPLE, [eps, schedule, fm.Data("p_data(x_0)")])
    return loss, fm.DiffusionReverse("p_theta(x_{t-1}|x_t, t)", eps, betas)


def train(args: argparse.Namespace, data: torch.Tensor) -> Tuple[fm.DiffusionReverse, float, torch.device]:
    torch.manual_seed(args.seed)
    loss, reverse = build(args)
    trainer = fm.Trainer(loss, maximize=False, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         inputs={"T": args.steps}, seed=args.seed)
    history = trainer.fit({"x_0": data}, epochs=args.epochs)
    return reverse, history["loss"][-1], trainer.device


def sample(args: argparse.Namespace, reverse: fm.DiffusionReverse, device: torch.device) -> torch.Tensor:
    """Algorithm 2: x_T ~ N(0, I), then T reverse steps."""
    torch.manual_seed(args.seed + 1)
    reverse.to(device)
    x_T = torch.randn(EVAL_SAMPLES, 2, device=device)
    return fm.Ancestral(steps=args.steps, progress=True).run(x_T, reverse).cpu()


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    start(args)
    check_spellings((SIMPLE, SIMPLE_ASCII))
    print("the simple loss (eq. 14):", fm.pretty(SIMPLE), sep="\n", end="\n\n")
    train_data = mixture2d.sample(STEPS_PER_EPOCH * args.batch_size, args.seed)
    held_out = mixture2d.sample(EVAL_SAMPLES, args.seed + 100)
    began = time.perf_counter()
    reverse, last, device = train(args, train_data)
    seconds = time.perf_counter() - began
    samples = sample(args, reverse, device)
    score = mixture2d.quality(samples, held_out)
    base = mixture2d.baselines(train_data, held_out, EVAL_SAMPLES, args.seed + 200)
    mixture2d.save_figure(args.out / "ddpm.png", held_out, {"DDPM": samples}, {"DDPM": score, **base})
    print(f"trained {args.epochs * STEPS_PER_EPOCH} steps in {seconds:.1f} s (last epoch's loss {last:.4f}); "
          f"sampled {EVAL_SAMPLES} by {args.steps} reverse steps; wrote ddpm.png to {args.out}")
    write_results(args.out, model="DDPM", paper="Ho, Jain & Abbeel 2020", formula=SIMPLE,
                  metric="MMD^2 of samples to held-out data", value=score["mmd2"], nll=score["nll"])
    print(mixture2d.metric_line("DDPM", score, base))
    return score


if __name__ == "__main__":
    main()
