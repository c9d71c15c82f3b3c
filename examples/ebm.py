"""An energy-based model of a 2-D mixture, trained by the contrastive objective with short-run Langevin negatives
drawn from a replay buffer (Du & Mordatch 2019, "Implicit generation and generalization in energy-based models").

    python examples/ebm.py                      # 2,000 steps: 3 min 5 s on a loaded 2-core VM (load average
                                                # 6 to 15), 38 s of CPU time
    python examples/ebm.py --smoke --out runs/ci-smoke

p_theta(x) is proportional to exp(-E_theta(x)); the energy is written \\mathit{E}_\\theta(x), a plain name (`E_`
alone opens an expectation). Its draws run a declared sampler, `fm.Langevin` with a replay buffer:
each chain restarts from a stored sample (5% from uniform noise) and takes --langevin-steps steps
x <- x - eps grad E(x) + sqrt(2 eps) xi. The objective is the paper's maximum-likelihood objective with its L2
regulariser on the energies of both the data and the negatives, weight alpha:

    E_{p_data(x)}[E(x) + alpha E(x)^2] - E_{p_theta(x')}[E(x') - alpha E(x')^2]

minimised; the chain is detached, so its gradient is E_data[grad E] - E_model[grad E] (+ the regulariser's).
Writes ebm.png (the buffer's samples and fresh chains from noise beside held-out data, and the MMD^2 bar chart)
into --out. Metric: the unbiased MMD^2 to held-out data and the samples' NLL under the true mixture
(examples/common/mixture2d.py), for the replay buffer's samples.
"""

from __future__ import annotations

import argparse
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
from formula.samplers import UniformInit  # noqa: E402

CONTRASTIVE = (r"\mathbb{E}_{p_{\text{data}}(\mathbf{x})}[\mathit{E}_\theta(\mathbf{x})]"
               r" - \mathbb{E}_{p_\theta(\mathbf{x}')}[\mathit{E}_\theta(\mathbf{x}')]")
CONTRASTIVE_ASCII = r"E_{p_data(x)}[\mathit{E}_theta(x)] - E_{p_theta(x')}[\mathit{E}_theta(x')]"
REGULARISED = (r"\mathbb{E}_{p_{\text{data}}(\mathbf{x})}\left[\mathit{E}_\theta(\mathbf{x}) + \alpha\, "
               r"\mathit{E}_\theta(\mathbf{x})^2\right] - \mathbb{E}_{p_\theta(\mathbf{x}')}\left["
               r"\mathit{E}_\theta(\mathbf{x}') - \alpha\, \mathit{E}_\theta(\mathbf{x}')^2\right]")
REGULARISED_ASCII = (r"E_{p_data(x)}[\mathit{E}_theta(x) + alpha \mathit{E}_theta(x)^2]"
                     r" - E_{p_theta(x')}[\mathit{E}_theta(x') - alpha \mathit{E}_theta(x')^2]")

BOX = (-mixture2d.BOX, mixture2d.BOX)  # chains start uniformly in, and are clamped to, the plot's box
STEPS_PER_EPOCH, EVAL_SAMPLES = mixture2d.STEPS_PER_EPOCH, mixture2d.EVAL_SAMPLES


class Energy(nn.Module):
    """x -> E(x), a smooth MLP (SiLU: Langevin follows its gradient)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = mixture2d.mlp(2, hidden, 1, layers=2)

    def forward(self, x):
        return self.net(x)


def arguments(argv=None) -> argparse.Namespace:
    parser = mixture2d.parser(__doc__, epochs=20, batch_size=128)
    parser.add_argument("--langevin-steps", type=int, default=20, help="Langevin steps per negative sample")
    parser.add_argument("--step-size", type=float, default=0.03, help="Langevin's eps")
    parser.add_argument("--buffer", type=int, default=10000, help="replay buffer size")
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the energies' L2 regulariser")
    parser.add_argument("--eval-steps", type=int, default=500, help="steps of the fresh chains from noise")
    return parse_common(parser, argv, out="runs/ebm")


def build(args: argparse.Namespace) -> Tuple[fm.Objective, fm.EnergyBased]:
    """The regularised contrastive objective over a fresh energy network, and the EBM whose draws it makes."""
    energy = fm.Function(r"\mathit{E}_\theta(x)", net=Energy(args.hidden))
    sampler = fm.Langevin(steps=args.langevin_steps, step_size=args.step_size, buffer=args.buffer,
                          init=UniformInit(*BOX), clip=BOX)
    model = fm.EnergyBased("p_theta(x)", energy=energy, shape=(2,), sampler=sampler)
    return fm.compile(REGULARISED, [energy, model, fm.Data("p_data(x)")]), model


def train(args: argparse.Namespace, data: torch.Tensor) -> Tuple[fm.EnergyBased, Dict[str, float]]:
    torch.manual_seed(args.seed)
    objective, model = build(args)
    trainer = fm.Trainer(objective, maximize=False, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         inputs={"alpha": args.alpha}, seed=args.seed)
    history = trainer.fit({"x": data}, epochs=args.epochs)
    return model, {k: v[-1] for k, v in history.items() if k == "loss" or k.startswith("term/")}


def samples(args: argparse.Namespace, model: fm.EnergyBased) -> Dict[str, torch.Tensor]:
    """The replay buffer's samples, and fresh chains of --eval-steps steps from uniform noise."""
    torch.manual_seed(args.seed + 1)
    buffered = model.replay.samples[torch.randperm(model.replay.capacity)[:EVAL_SAMPLES]]
    fresh = fm.Langevin(steps=args.eval_steps, step_size=args.step_size, init=UniformInit(*BOX), clip=BOX,
                        progress=True)
    chains = fresh.sample(EVAL_SAMPLES, buffered, (2,), energy=model.energy_of)
    return {"EBM (replay buffer)": buffered.cpu(), f"EBM ({args.eval_steps}-step chains)": chains.cpu()}


def main(argv=None) -> Dict[str, Dict[str, float]]:
    args = arguments(argv)
    start(args)
    check_spellings((CONTRASTIVE, CONTRASTIVE_ASCII), (REGULARISED, REGULARISED_ASCII))
    print("the contrastive objective:", fm.pretty(CONTRASTIVE), "trained, with the regulariser:",
          fm.pretty(REGULARISED), sep="\n", end="\n\n")
    train_data = mixture2d.sample(STEPS_PER_EPOCH * args.batch_size, args.seed)
    held_out = mixture2d.sample(EVAL_SAMPLES, args.seed + 100)
    began = time.perf_counter()
    model, last = train(args, train_data)
    seconds = time.perf_counter() - began
    print("last epoch: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()))
    runs = samples(args, model)
    scores = {name: mixture2d.quality(x, held_out) for name, x in runs.items()}
    base = mixture2d.baselines(train_data, held_out, EVAL_SAMPLES, args.seed + 200)
    mixture2d.save_figure(args.out / "ebm.png", held_out, runs, {**scores, **base})
    name = f"EBM ({args.eval_steps}-step chains)"
    print(mixture2d.metric_line(name, scores[name], base))
    print(f"trained {args.epochs * STEPS_PER_EPOCH} steps ({args.langevin_steps} Langevin steps each) in "
          f"{seconds:.1f} s; wrote ebm.png to {args.out}")
    buffered = scores["EBM (replay buffer)"]
    write_results(args.out, model="EBM (replay buffer)", paper="Du & Mordatch 2019", formula=REGULARISED,
                  metric="MMD^2 of samples to held-out data", value=buffered["mmd2"], nll=buffered["nll"])
    print(mixture2d.metric_line("EBM (replay buffer)", scores["EBM (replay buffer)"], base))
    return scores


if __name__ == "__main__":
    main()
