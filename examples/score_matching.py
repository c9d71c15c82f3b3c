"""Denoising score matching on a 2-D mixture: NCSN's objective over several noise levels (Song & Ermon 2019,
eqs. 5-6, built on Vincent 2011) as the paper writes it, and annealed Langevin sampling from the learned score.

    python examples/score_matching.py           # 3,000 steps: 2 min 33 s on a loaded 2-core VM (load average
                                                # ~15), 45 s of CPU time
    python examples/score_matching.py --smoke --out runs/ci-smoke

The noise levels sigma_1 > ... > sigma_L are geometric from --sigma-max to --sigma-min, a declared schedule
(`fm.Schedule("sigma", ...)`) that `\\sigma_i` looks up at each step of the sum; lambda(sigma_i) = sigma_i^2 as in
the paper. The score network is noise-conditional, s_theta(x, sigma) = net(x, log sigma) / sigma. Sampling is
their algorithm 1 (`fm.AnnealedLangevin`): --langevin-steps steps at each level with step size
eps * sigma_i^2 / sigma_L^2, from uniform noise in the plot's box.

Writes score_matching.png (samples beside held-out data, and the MMD^2 bar chart) into --out. Metric: the unbiased
MMD^2 to held-out data and the samples' NLL under the true mixture (examples/common/mixture2d.py).
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
from formula.families.schedule import Schedule  # noqa: E402

# Vincent's denoising score matching at one noise level (NCSN's eq. 5 without its 1/2) ...
DSM = (r"\mathbb{E}_{p_{\text{data}}(\mathbf{x})} \mathbb{E}_{\tilde{\mathbf{x}} \sim \mathcal{N}(\mathbf{x}, "
       r"\sigma^2 \mathbf{I})}\left[\left\| \mathbf{s}_\theta(\tilde{\mathbf{x}}) + \frac{\tilde{\mathbf{x}} - "
       r"\mathbf{x}}{\sigma^2} \right\|_2^2\right]")
DSM_ASCII = r"E_{p_data(x)} E_{\tilde{x} ~ \mathcal{N}(x, sigma^2 I)}[||s_theta(\tilde{x}) + (\tilde{x} - x) / sigma^2||^2]"
# ... and NCSN's objective (eq. 6 with eq. 5 and lambda(sigma) = sigma^2 written in), which is trained
NCSN = (r"\frac{1}{L} \sum_{i=1}^{L} \frac{1}{2} \sigma_i^2 \mathbb{E}_{p_{\text{data}}(\mathbf{x})} "
        r"\mathbb{E}_{\tilde{\mathbf{x}} \sim \mathcal{N}(\mathbf{x}, \sigma_i^2 \mathbf{I})}\left[\left\| "
        r"\mathbf{s}_\theta(\tilde{\mathbf{x}}, \sigma_i) + \frac{\tilde{\mathbf{x}} - \mathbf{x}}{\sigma_i^2} "
        r"\right\|_2^2\right]")
NCSN_ASCII = (r"1/L sum_{i=1}^{L} 1/2 sigma_i^2 E_{p_data(x)} E_{\tilde{x} ~ \mathcal{N}(x, sigma_i^2 I)}"
              r"[||s_theta(\tilde{x}, sigma_i) + (\tilde{x} - x) / sigma_i^2||^2]")
STEPS_PER_EPOCH, EVAL_SAMPLES = mixture2d.STEPS_PER_EPOCH, mixture2d.EVAL_SAMPLES


class NoiseConditionalScore(nn.Module):
    """(x, sigma) -> net([x, log sigma]) / sigma; sigma a number, a 0-d tensor or one per example."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = mixture2d.mlp(3, hidden, 2, layers=3)

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, sigma.log()], -1)) / sigma


def arguments(argv=None) -> argparse.Namespace:
    parser = mixture2d.parser(__doc__, epochs=30, batch_size=128)
    parser.add_argument("--levels", type=int, default=10, help="noise levels L")
    parser.add_argument("--sigma-max", type=float, default=3.0)
    parser.add_argument("--sigma-min", type=float, default=0.05)
    parser.add_argument("--langevin-steps", type=int, default=50, help="annealed Langevin steps per level")
    parser.add_argument("--step-size", type=float, default=5e-4, help="annealed Langevin's eps (alpha_L)")
    return parse_common(parser, argv, out="runs/score_matching")


def noise_levels(args: argparse.Namespace) -> torch.Tensor:
    """sigma_1 > ... > sigma_L, geometric."""
    return torch.exp(torch.linspace(math.log(args.sigma_max), math.log(args.sigma_min), args.levels))


def train(args: argparse.Namespace, data: torch.Tensor) -> Tuple[NoiseConditionalScore, float]:
    torch.manual_seed(args.seed)
    score = NoiseConditionalScore(args.hidden)
    decls = [fm.Function(r"s_\theta(\tilde x, \sigma)", net=score), fm.Data("p_data(x)"),
             Schedule("sigma", noise_levels(args))]
    objective = fm.compile(NCSN, decls)
    trainer = fm.Trainer(objective, maximize=False, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         inputs={"L": args.levels}, seed=args.seed)
    history = trainer.fit({"x": data}, epochs=args.epochs)
    return score.to(trainer.device), history["loss"][-1]


def sample(args: argparse.Namespace, score: NoiseConditionalScore) -> torch.Tensor:
    """Algorithm 1 of the paper from uniform noise in the plot's box."""
    torch.manual_seed(args.seed + 1)
    device = next(score.parameters()).device
    start = (torch.rand(EVAL_SAMPLES, 2, device=device) * 2 - 1) * mixture2d.BOX
    sampler = fm.AnnealedLangevin(noise_levels(args).tolist(), steps=args.langevin_steps, step_size=args.step_size,
                                  progress=True)
    with torch.no_grad():
        return sampler.run(start, score=score).cpu()


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    start(args)
    check_spellings((DSM, DSM_ASCII), (NCSN, NCSN_ASCII))
    print("denoising score matching at one sigma:", fm.pretty(DSM), "NCSN's objective, trained:", fm.pretty(NCSN),
          sep="\n", end="\n\n")
    train_data = mixture2d.sample(STEPS_PER_EPOCH * args.batch_size, args.seed)
    held_out = mixture2d.sample(EVAL_SAMPLES, args.seed + 100)
    began = time.perf_counter()
    score, last = train(args, train_data)
    seconds = time.perf_counter() - began
    samples = sample(args, score)
    quality = mixture2d.quality(samples, held_out)
    base = mixture2d.baselines(train_data, held_out, EVAL_SAMPLES, args.seed + 200)
    mixture2d.save_figure(args.out / "score_matching.png", held_out, {"NCSN": samples}, {"NCSN": quality, **base})
    print(f"trained {args.epochs * STEPS_PER_EPOCH} steps over {args.levels} noise levels in {seconds:.1f} s (last "
          f"epoch's loss {last:.4f}); sampled {EVAL_SAMPLES} by annealed Langevin; wrote score_matching.png to "
          f"{args.out}")
    write_results(args.out, model="NCSN", paper="Song & Ermon 2019", formula=NCSN,
                  metric="MMD^2 of samples to held-out data", value=quality["mmd2"],
                  nll=quality["nll"])
    print(mixture2d.metric_line("NCSN", quality, base))
    return quality


if __name__ == "__main__":
    main()
