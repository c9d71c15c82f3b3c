"""WGAN-GP on the 2-D ring of 8 Gaussians, with the critic's loss as Gulrajani et al. (2017, eq. 3) write it.

    python examples/wgan_gp.py                  # about a minute of one idle CPU core (8,000 steps)
    python examples/wgan_gp.py --smoke --out runs/ci-smoke

The critic minimises L, the paper's loss with its interpolate and ε written in a where clause; the generator
ascends E_{z ~ p(z)}[D(G(z))] (Algorithm 1 descends its negative), 5 critic steps per generator step
(`fm.Alternating`). `\\mathbb{P}_r` is the data's distribution (declared, `fm.Data`); `\\mathbb{P}_g` names the
distribution of the defined `\\tilde x = G(z)` and `\\mathbb{P}_{\\hat x}` that of the defined interpolate, so
they need no declaration (the parser does not read `\\mathbb{P}` yet: `paper_spelling` writes `P` until it does).
λ is 0.1, the paper's choice for its toy data sets (its code, gan_toy.py; λ = 10 for images): with λ = 10 this
ring's tight modes were covered by one seed of two. Writes wgan_gp.png (real and generated samples) into --out.
Metric (as examples/gan.py): the modes covered (of 8) and the share of samples within 3σ of a mode, on 2,500
samples.
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
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from gan import EVAL_SAMPLES, MODES, STEPS_PER_EPOCH, Generator, coverage, ring, save_scatter  # noqa: E402

import formula as fm  # noqa: E402

# eq. 3 of the paper, as printed there (P_r, P_g: see the module docstring), with the definitions it gives in words
CRITIC_LOSS = (r"L = \mathbb{E}_{\tilde x \sim \mathbb{P}_g}[D(\tilde x)] - \mathbb{E}_{x \sim \mathbb{P}_r}[D(x)]"
               r" + \lambda \mathbb{E}_{\hat x \sim \mathbb{P}_{\hat x}}[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2]"
               r" \quad \text{where} \quad \hat x = \epsilon x + (1 - \epsilon) \tilde x, \; \tilde x = G(z), \;"
               r" \epsilon \sim \mathcal{U}[0, 1]")
CRITIC_LOSS_ASCII = (r"L = E_{\tilde{x} ~ P_g}[D(\tilde{x})] - E_{x ~ P_r}[D(x)]"
                     r" + lambda E_{\hat{x} ~ P_{\hat{x}}}[(||\nabla_{\hat{x}} D(\hat{x})||_2 - 1)^2]"
                     r" where \hat{x} = epsilon x + (1 - epsilon) \tilde{x}, \tilde{x} = G(z), epsilon ~ U[0, 1]")
GENERATOR_LOSS = r"\max_G \mathbb{E}_{z \sim p(z)}[D(G(z))]"  # Algorithm 1 descends its negative
GENERATOR_LOSS_ASCII = "max_G E_{z ~ p(z)}[D(G(z))]"


def paper_spelling(text: str) -> str:
    """The formula with the paper's `\\mathbb{P}` where this parser reads it, else with plain `P` (same meaning)."""
    try:
        fm.parse(text)
        return text
    except fm.FormulaError:
        return text.replace(r"\mathbb{P}", "P")


class Critic(nn.Module):
    """x -> D(x), a real number (a critic, not a probability)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80, help="epochs (100 steps of either player an epoch)")
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--critic-steps", type=int, default=5, help="critic steps per generator step")
    parser.add_argument("--penalty", type=float, default=0.1,
                        help="λ, the gradient penalty's weight (0.1, as the paper's code for its toy data; 10 for images)")
    args = parse_common(parser, argv, out="runs/wgan_gp")
    if args.device == "auto":
        args.device = "cpu"
    return args


def build(args: argparse.Namespace) -> Tuple[fm.Game, Generator]:
    """The game of the critic's loss (descended) and the generator's objective (ascended)."""
    critic, generator = Critic(args.hidden), Generator(args.latent, args.hidden)
    decls = [fm.Function("D(x)", net=critic), fm.Function("G(z)", net=generator), fm.Data(paper_spelling(
        r"\mathbb{P}_r(x)")), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,))]
    critic_loss = fm.compile(paper_spelling(CRITIC_LOSS), decls)
    generator_loss = fm.compile(GENERATOR_LOSS, decls, samples=args.batch_size)
    return fm.Game({"D": critic_loss, "G": generator_loss}, senses={"D": "min"}), generator


def train(args: argparse.Namespace, data: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float], fm.Game]:
    torch.manual_seed(args.seed)
    game, generator = build(args)
    k, total = args.critic_steps, args.epochs * STEPS_PER_EPOCH
    adam = {name: (lambda p, lr=lr: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.9)))
            for name, lr in (("D", args.lr), ("G", args.lr))}
    updates = {"D": total * k // (k + 1), "G": total // (k + 1)}
    decay = {name: lambda o, n=n: torch.optim.lr_scheduler.LambdaLR(o, lambda t: max(0.05, 1 - t / n))
             for name, n in updates.items()}
    rule = fm.Alternating(optimizer=adam, steps={"D": k, "G": 1}, order=["D", "G"], scheduler=decay)
    trainer = fm.Trainer(game, update=rule, device=args.device, batch_size=args.batch_size, seed=args.seed,
                         inputs={"lambda": args.penalty})
    history = trainer.fit({"x": data}, epochs=args.epochs)
    with torch.no_grad():
        z = torch.randn(EVAL_SAMPLES, args.latent, generator=torch.Generator().manual_seed(args.seed + 1))
        samples = generator(z.to(trainer.device)).cpu()
    return samples, {k: v[-1] for k, v in history.items() if k.endswith("/loss")}, game


def check_spellings() -> None:
    """The paper's LaTeX and the ASCII spelling are the same formula."""
    for latex, ascii_ in ((paper_spelling(CRITIC_LOSS), CRITIC_LOSS_ASCII), (GENERATOR_LOSS, GENERATOR_LOSS_ASCII)):
        if not fm.equivalent(latex, ascii_):
            raise SystemExit(f"not equivalent:\n  {latex}\n  {ascii_}")


def main(argv=None) -> Tuple[int, float]:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    check_spellings()
    print("critic (eq. 3):", fm.pretty(paper_spelling(CRITIC_LOSS)), "generator:", fm.pretty(GENERATOR_LOSS),
          sep="\n", end="\n\n")
    data = ring(STEPS_PER_EPOCH * args.batch_size, args.seed)
    start = time.perf_counter()
    samples, losses, game = train(args, data)
    seconds = time.perf_counter() - start
    print(game.objectives["D"].explain(), end="\n\n")
    covered, share = coverage(samples)
    save_scatter(ring(EVAL_SAMPLES, args.seed + 2), {"WGAN-GP": samples}, {"WGAN-GP": (covered, share)},
                 args.out / "wgan_gp.png")
    print("last epoch's losses: " + ", ".join(f"{k} {v:.3f}" for k, v in losses.items()))
    print(f"trained {args.epochs * STEPS_PER_EPOCH} steps ({args.critic_steps} critic steps per generator step) in "
          f"{seconds:.1f} s; wrote wgan_gp.png to {args.out}")
    write_results(args.out, model="WGAN-GP", paper="Gulrajani et al. 2017",
                  formula=paper_spelling(CRITIC_LOSS), metric=f"modes covered of {MODES}", value=covered,
                  share_within_3_sigma=share)
    print(f"modes covered of {MODES} (share within 3σ): WGAN-GP {covered}/{MODES} ({share:.1%})")
    return covered, share


if __name__ == "__main__":
    main()
