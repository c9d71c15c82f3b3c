"""A VAE on scikit-learn's 8x8 digits, written as the paper writes its objective.

    python examples/vae.py                      # about a minute on 2 CPU cores
    python examples/vae.py --smoke --out runs/ci-smoke

Prints the formula and its plan, trains with a progress bar, prints the held-out value of every term, and writes
samples.png, reconstructions.png, loss.png and vae.ckpt into --out. Pixels are intensities in [0, 1] used as
Bernoulli targets (the usual continuous relaxation), so the ELBO is in nats of that cross-entropy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits  # noqa: E402
from common.cli import parse_common  # noqa: E402

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


def grid(images: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """`[rows*cols, 64]` images as one `[rows*9-1, cols*9-1]` picture with a 1-pixel gap."""
    side = digits.SIDE
    canvas = torch.zeros(rows * (side + 1) - 1, cols * (side + 1) - 1, dtype=images.dtype)  # white gaps
    for i, image in enumerate(images[: rows * cols].reshape(-1, side, side)):
        r, c = divmod(i, cols)
        canvas[r * (side + 1): r * (side + 1) + side, c * (side + 1): c * (side + 1) + side] = image
    return canvas


def save_picture(picture: torch.Tensor, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(picture.shape[1] / 14, picture.shape[0] / 14 + 0.5), dpi=100)
    ax.imshow(picture.numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_curves(history: dict, path: Path) -> None:
    """The loss (-ELBO) per epoch, train and held-out, and beside it every term of the formula."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    epochs = range(1, len(history["loss"]) + 1)
    for key, label in (("loss", "train"), ("eval/loss", "held-out")):
        if key in history:
            left.plot(epochs, history[key], label=label)
    if len(history["loss"]) > 2:  # the first epoch's loss would flatten the rest of the curve
        later = history["loss"][1:] + history.get("eval/loss", [])[1:]
        left.set_ylim(min(later) - 0.5, max(later) + 0.5)
    left.set(title="loss = -ELBO", xlabel="epoch", ylabel="nats per image")
    terms = [k for k in history if k.startswith("term/")]  # the history keeps each term under term/<name>
    for key in terms:
        name = key[len("term/"):]
        right.plot(epochs, history[key], label=f"train {name}")
        if "eval/" + key in history:
            right.plot(epochs, history["eval/" + key], "--", label=f"held-out {name}")
    right.set(title="terms of the formula", xlabel="epoch", ylabel="nats per image")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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

    with torch.no_grad():
        device = trainer.device
        z = torch.randn(100, args.latent, generator=torch.Generator().manual_seed(args.seed)).to(device)
        samples = torch.sigmoid(decoder(z)["logits"]).cpu()  # the mean of p(x|z) for z ~ p(z)
        originals = held[:50].to(device)
        recon = torch.sigmoid(decoder(encoder(originals)["loc"])["logits"]).cpu()
    save_picture(grid(samples, 10, 10), args.out / "samples.png", "samples: mean of p(x|z), z ~ p(z)")
    pairs = torch.stack([originals.cpu().reshape(5, 10, -1), recon.reshape(5, 10, -1)], 1).reshape(100, -1)
    save_picture(grid(pairs, 10, 10), args.out / "reconstructions.png", "held-out digits, each row above its reconstructions")
    save_curves(history, args.out / "loss.png")
    trainer.save(args.out / "vae.ckpt")
    print(f"wrote samples.png, reconstructions.png, loss.png and vae.ckpt to {args.out}")
    print(f"held-out ELBO: {final['objective']:.3f} nats per image")  # the metric, last
    return final


if __name__ == "__main__":
    main()
