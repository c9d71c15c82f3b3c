"""A VAE on scikit-learn's 8x8 digits, written as the paper writes its objective.

    python examples/vae.py                      # about a minute on 2 CPU cores
    python examples/vae.py --smoke --out runs/ci-smoke

Prints the formula and its plan, trains with a progress bar, prints the held-out value of every term, and writes
samples.png, reconstructions.png, traversals.png, latents.png (held-out codes by label), loss.png, metrics.json and
vae.ckpt into --out. Pixels are intensities in [0, 1] used as Bernoulli targets (the usual continuous relaxation),
so the ELBO is in nats of that cross-entropy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits, figures  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.figures import grid, save_picture  # noqa: E402,F401  (other examples take them from here)
from common.results import write_results  # noqa: E402

import formula as fm  # noqa: E402

ELBO = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"


class Encoder(nn.Module):
    """x -> the parameters of q(z|x), a diagonal Normal."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(digits.SIDE**2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.loc = nn.Linear(hidden, latent)
        self.scale = nn.Linear(hidden, latent)

    def forward(self, x):
        h = self.body(x)
        return {"loc": self.loc(h), "scale": nn.functional.softplus(self.scale(h)) + 1e-4}


class Decoder(nn.Module):
    """z -> the logits of p(x|z), one Bernoulli per pixel."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, digits.SIDE**2))

    def forward(self, z):
        return {"logits": self.net(z)}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    return parse_common(parser, argv, out="runs/vae")


def digit_labels(seed: int) -> torch.Tensor:
    """The held-out digits' labels (0-9), in the order `digits.load(seed=seed)` returns the held-out images."""
    from sklearn.datasets import load_digits

    target = torch.as_tensor(load_digits().target)
    order = torch.randperm(target.shape[0], generator=torch.Generator().manual_seed(seed))
    return target[order[: int(round(0.15 * target.shape[0]))]]


def save_figures(encoder, decoder, held, history, device, args) -> None:
    """Samples, reconstructions, latent traversals, the held-out codes by label and the loss curves."""
    def mean_image(z):
        return torch.sigmoid(decoder(z)["logits"])  # the mean of p(x|z)

    with torch.no_grad():
        z = torch.randn(100, args.latent, generator=torch.Generator().manual_seed(args.seed)).to(device)
        codes = encoder(held.to(device))["loc"]
        figures.samples(mean_image(z).cpu(), args.out / "samples.png", "samples: mean of p(x|z), z ~ p(z)")
        figures.reconstructions(held[:50], mean_image(codes[:50]).cpu(), args.out / "reconstructions.png")
        figures.latent_traversal(mean_image, codes[0], args.out / "traversals.png")
    figures.latent_scatter(codes, digit_labels(args.seed), args.out / "latents.png", "held-out digits' q(z|x) means")
    figures.loss_curves(history, args.out / "loss.png", "loss = -ELBO", "nats per image")


def main(argv=None) -> dict:
    args = arguments(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    train, held = digits.load(seed=args.seed)
    encoder, decoder = Encoder(args.latent, args.hidden), Decoder(args.latent, args.hidden)
    q = fm.Normal("q(z|x)", net=encoder)
    p = fm.Bernoulli("p(x|z)", net=decoder)
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,))
    elbo = fm.compile(ELBO, [q, p, prior])

    print(elbo, end="\n\n")
    print(elbo.explain(), end="\n\n")
    print(f"{train.shape[0]} training and {held.shape[0]} held-out digits, latent {args.latent}, "
          f"{args.epochs} epochs", flush=True)

    trainer = fm.Trainer(elbo, maximize=True, optimizer="adam", lr=args.lr, device=args.device,
                         batch_size=args.batch_size, seed=args.seed)
    start = time.perf_counter()
    history = trainer.fit({"x": train}, epochs=args.epochs, eval_data={"x": held})
    seconds = time.perf_counter() - start

    final = trainer.evaluate({"x": held})
    shown = {key.replace("term/", "", 1): value for key, value in final.items()}
    width = max(map(len, shown))
    print(f"\ntrained {trainer.step} steps in {seconds:.1f} s on {trainer.device}; held-out means per image:")
    for name, value in shown.items():
        print(f"  {name:<{width}}  {value:10.3f}")

    save_figures(encoder, decoder, held, history, trainer.device, args)
    trainer.save(args.out / "vae.ckpt")
    write_results(args.out, model="VAE", paper="Kingma & Welling 2014", formula=ELBO,
                  metric="held-out ELBO (nats/image)", value=final["objective"])
    print(f"wrote samples.png, reconstructions.png, traversals.png, latents.png, loss.png, metrics.json and vae.ckpt "
          f"to {args.out}")
    print(f"held-out ELBO: {final['objective']:.3f} nats per image")  # the metric, last
    return final


if __name__ == "__main__":
    main()
