"""FactorVAE (Kim and Mnih, 2018) on dSprites in miniature, against the plain VAE of the same size.

    python examples/factorvae.py                 # under a minute of one idle CPU core (both models)
    python examples/factorvae.py --smoke --out runs/ci-smoke

The data are 16x16 images of a square, a disc or a triangle drawn from four known independent factors (shape,
size, x, y: examples/common/shapes.py). The model's objective is eq. 2 of the paper, with the aggregate posterior
q(z) and the product of its marginals \\bar q(z) written as definitions, and the total correlation KL(q(z) ||
\\bar q(z)) estimated by the density-ratio trick with the discriminator D named in the subscript (KL_D); D has its
own objective (telling draws of q(z) from draws of \\bar q(z), a batch of them with each dimension permuted across
the batch), and `fm.Alternating` steps the VAE and D in turn. The plain VAE maximises the same ELBO without the
total-correlation term. Writes traversals.png (latent traversals of both models) into --out.
Metric: the FactorVAE disentanglement metric (majority-vote accuracy; 0.25 is chance) of each model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figures, shapes  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402

import formula as fm  # noqa: E402

DEFINITIONS = [r"q(z) = \mathbb{E}_{p_{data}(x)}[q(z|x)]", r"\bar q(z) = \prod_j q(z_j)"]
ELBO = (r"\mathbb{E}_{p_{data}(x)}\left[\mathbb{E}_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x) \,\|\, p(z))\right]")
ELBO_ASCII = "E_{p_data(x)}[E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z))]"
# eq. 2 of the paper (the mean over the data written as its expectation), the critic named in KL's subscript
FACTOR_VAE = "\n".join(DEFINITIONS + [ELBO + r" - \gamma \mathrm{KL}_D(q(z) \,\|\, \bar q(z))"])
FACTOR_VAE_ASCII = "\n".join(["q(z) = E_{p_data(x)}[q(z|x)]", r"\bar{q}(z) = prod_j q(z_j)",
                              ELBO_ASCII + r" - gamma KL_D(q(z) || \bar{q}(z))"])
DISCRIMINATOR = "\n".join(DEFINITIONS + [
    r"\mathbb{E}_{q(z)}[\log D(z)] + \mathbb{E}_{z' \sim \bar q(z)}[\log(1 - D(z'))]"])
DISCRIMINATOR_ASCII = "\n".join(["q(z) = E_{p_data(x)}[q(z|x)]", r"\bar{q}(z) = prod_j q(z_j)",
                                 r"E_{q(z)}[log D(z)] + E_{z' ~ \bar{q}(z)}[log(1 - D(z'))]"])
SIZES = {"latent": 6, "hidden": 128, "batch-size": 64}  # the models' sizes (command-line options)
EPS = 1e-4  # D's output stays in [EPS, 1 - EPS]: its logs stay finite


class Encoder(nn.Module):
    """x -> the parameters of q(z|x), a diagonal Normal (one head, split into mean and scale)."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(shapes.SIDE ** 2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent))

    def forward(self, x):
        loc, scale = self.net(x).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-4}


class Decoder(nn.Module):
    """z -> the logits of p(x|z), one Bernoulli per pixel."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, shapes.SIDE ** 2))

    def forward(self, z):
        return {"logits": self.net(z)}


class Discriminator(nn.Module):
    """z -> D(z), the probability that z is a draw of q(z) rather than of \\bar q(z)."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, z):
        return EPS + (1 - 2 * EPS) * torch.sigmoid(self.net(z))


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200,
                        help="epochs of the VAE over the 576 images (FactorVAE: twice as many, half of its steps "
                             "being the discriminator's, so that both models make as many VAE updates)")
    for size, default in SIZES.items():
        parser.add_argument(f"--{size}", type=int, default=default)
    parser.add_argument("--gamma", type=float, default=10.0, help="γ, the total correlation's weight")
    parser.add_argument("--votes", type=int, default=800, help="votes of the disentanglement metric")
    args = parse_common(parser, argv, out="runs/factorvae")
    if args.smoke:
        args.votes = min(args.votes, 100)
    if args.device == "auto":
        args.device = "cpu"
    return args


def declarations(args):
    encoder, decoder = Encoder(args.latent, args.hidden), Decoder(args.latent, args.hidden)
    discriminator = Discriminator(args.latent, args.hidden)
    decls = [fm.Normal("q(z|x)", net=encoder), fm.Bernoulli("p(x|z)", net=decoder),
             fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,)), fm.Data("p_data(x)"),
             fm.Function("D(z)", net=discriminator)]
    return decls, encoder, decoder


def train(args, data: torch.Tensor, model: str):
    """One model; returns its encoder (posterior means), decoder and the last epoch's means."""
    torch.manual_seed(args.seed)
    decls, encoder, decoder = declarations(args)
    adam = {"vae": lambda p: torch.optim.Adam(p, lr=args.lr), "D": lambda p: torch.optim.Adam(p, lr=args.lr,
                                                                                               betas=(0.5, 0.9))}
    if model == "FactorVAE":
        game = fm.Game({"vae": fm.compile(FACTOR_VAE, decls), "D": fm.compile(DISCRIMINATOR, decls)},
                       senses={"vae": "max", "D": "max"})
        rule = fm.Alternating({"vae": ["q", "p"], "D": ["D"]}, optimizer=adam)
        trainer = fm.Trainer(game, update=rule, inputs={"gamma": args.gamma}, **_common(args))
    else:
        elbo = fm.compile(ELBO, decls[:4])
        trainer = fm.Trainer(elbo, maximize=True, lr=args.lr, **_common(args))
    history = trainer.fit({"x": data}, epochs=args.epochs * (2 if model == "FactorVAE" else 1))
    return encoder, decoder, {k: v[-1] for k, v in history.items() if "loss" in k}


def _common(args) -> Dict:
    return {"device": args.device, "batch_size": args.batch_size, "seed": args.seed, "progress": not args.smoke}


def check_spellings() -> None:
    """The paper's LaTeX and the ASCII spelling are the same formula."""
    for latex, ascii_ in ((FACTOR_VAE, FACTOR_VAE_ASCII), (DISCRIMINATOR, DISCRIMINATOR_ASCII), (ELBO, ELBO_ASCII)):
        if not fm.equivalent(latex, ascii_):
            raise SystemExit(f"not equivalent:\n  {latex}\n  {ascii_}")


def save_traversals(decoders: Dict[str, nn.Module], encoders: Dict[str, nn.Module], x: torch.Tensor,
                    out: Path) -> None:
    for name, decoder in decoders.items():
        with torch.no_grad():
            centre = encoders[name](x[:1])["loc"][0]
        figures.latent_traversal(lambda z: torch.sigmoid(decoder(z)["logits"]), centre,
                                 out / f"traversals_{name.lower()}.png", side=shapes.SIDE)


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    check_spellings()
    print("FactorVAE (eq. 2):", fm.pretty(FACTOR_VAE), "discriminator:", fm.pretty(DISCRIMINATOR), sep="\n",
          end="\n\n")
    data, _ = shapes.dataset()
    scores: Dict[str, float] = {}
    encoders, decoders = {}, {}
    start = time.perf_counter()
    for model in ("FactorVAE", "VAE"):
        encoder, decoder, last = train(args, data, model)
        encoders[model], decoders[model] = encoder, decoder
        scores[model] = shapes.factor_vae_metric(lambda im: encoder(im)["loc"], votes=args.votes, seed=args.seed)
        print(f"{model}: last epoch " + ", ".join(f"{k} {v:.3f}" for k, v in last.items())
              + f"; disentanglement {scores[model]:.3f}", flush=True)
    seconds = time.perf_counter() - start
    save_traversals(decoders, encoders, data, args.out)
    print(f"trained both models ({args.epochs} epochs of VAE updates each) in {seconds:.1f} s; wrote "
          f"traversals_*.png to {args.out}")
    write_results(args.out, model="FactorVAE", paper="Kim & Mnih 2018", formula=FACTOR_VAE,
                  metric="disentanglement metric (0.25 is chance)", value=scores["FactorVAE"],
                  vae=scores["VAE"])
    print("FactorVAE disentanglement metric (0.25 is chance): "
          + ", ".join(f"{m} {s:.3f}" for m, s in scores.items()))
    return scores


if __name__ == "__main__":
    main()
