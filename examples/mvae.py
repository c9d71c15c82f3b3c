"""MVAE (Wu & Goodman 2018) on scikit-learn's 8x8 digits and their labels, with a product of Gaussian experts.

    python examples/mvae.py                      # about a minute of one idle CPU core
    python examples/mvae.py --smoke --out runs/ci-smoke

The posterior over z given any subset of the two modalities (the image x, the label y) is the product of the
prior and one Gaussian expert per modality present, `q(z|x,y) \\propto p(z) q~(z|x) q~(z|y)`
(`fm.ProductOfExperts`); the single-modality posteriors q(z|x) and q(z|y) are the same experts without the other
(`subset`). Trained with the paper's sub-sampled objective: the ELBO over the joint plus the ELBO over each
modality alone, the label's likelihood weighted by lambda. Then both ways: the label from the image alone
(q(z|x), then the mode of p(y|z)) and the image from the label alone (z ~ q(z|y), then the mean of p(x|z)),
judged by a logistic-regression classifier fitted to the training images. Writes from_label.png (ten images for
each label) into --out. Metric: the label accuracy from the image alone, and the share of the images generated
from a label that the judge gives that label.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from common.spellings import check_spellings  # noqa: E402
from common.start import start  # noqa: E402
from vae import grid, save_picture  # noqa: E402

import formula as fm  # noqa: E402

CLASSES = 10


def elbo(given: str, observed: str) -> str:
    """One ELBO of the paper's sum, over the modalities `given` (LaTeX); `observed` is its likelihood."""
    return (rf"\mathbb{{E}}_{{q_\phi(z|{given})}}[{observed}] - D_{{KL}}(q_\phi(z|{given}) \| p(z))")


IMAGE, LABEL = r"\log p_\theta(x|z)", r"\lambda \log p_\theta(y|z)"
SUBSAMPLED = " + ".join([elbo("x,y", f"{IMAGE} + {LABEL}"), elbo("x", IMAGE), elbo("y", LABEL)])
SUBSAMPLED_ASCII = ("E_{q(z|x,y)}[log p(x|z) + lambda log p(y|z)] - KL(q(z|x,y) || p(z)) "
                    "+ E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z)) + E_{q(z|y)}[lambda log p(y|z)] - KL(q(z|y) || p(z))")


class Expert(nn.Module):
    """A modality -> the loc and scale of its Gaussian expert over z; integer labels are one-hot encoded."""

    def __init__(self, n_in: int, latent: int, hidden: int, labels: bool = False):
        super().__init__()
        self.labels = labels
        self.body = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.loc, self.scale = nn.Linear(hidden, latent), nn.Linear(hidden, latent)

    def forward(self, v):
        if self.labels:
            v = F.one_hot(v, CLASSES).to(self.loc.weight.dtype)
        h = self.body(v)
        return {"loc": self.loc(h), "scale": F.softplus(self.scale(h)) + 1e-3}


class Decoder(nn.Module):
    """z -> the logits of a modality: 64 Bernoulli pixels, or the 10 classes of the label."""

    def __init__(self, latent: int, hidden: int, n_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_out))

    def forward(self, z):
        return {"logits": self.net(z)}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lam", type=float, default=20.0, help="lambda: the weight of the label's likelihood")
    return parse_common(parser, argv, out="runs/mvae")


def labelled_digits(seed: int) -> Tuple[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
    """((train images, labels), (held-out images, labels)), split as `digits.load` splits the images."""
    from sklearn.datasets import load_digits

    labels = torch.as_tensor(load_digits().target, dtype=torch.long)
    train_x, held_x = digits.load(seed=seed)
    n_held = held_x.shape[0]
    order = torch.randperm(labels.shape[0], generator=torch.Generator().manual_seed(seed))
    return (train_x, labels[order[n_held:]]), (held_x, labels[order[:n_held]])


def declarations(args) -> Dict[str, fm.Declaration]:
    """The product of experts and its two single-modality subsets, both decoders, the prior."""
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,))
    image = fm.Normal("q_x(z|x)", net=Expert(digits.SIDE**2, args.latent, args.hidden))
    label = fm.Normal("q_y(z|y)", net=Expert(CLASSES, args.latent, args.hidden // 4, labels=True))
    joint = fm.ProductOfExperts("q_phi(z|x,y)", experts=[prior, image, label])
    return {"q(z|x,y)": joint, "q(z|x)": joint.subset("x"), "q(z|y)": joint.subset("y"),
            "p(x|z)": fm.Bernoulli("p_theta(x|z)", net=Decoder(args.latent, args.hidden, digits.SIDE**2)),
            "p(y|z)": fm.Categorical("p_theta(y|z)", net=Decoder(args.latent, args.hidden // 4, CLASSES)),
            "p(z)": prior}


def judge(train: Tuple[torch.Tensor, torch.Tensor]):
    """A logistic-regression classifier of the training images: an independent judge of generated images."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000).fit(train[0].numpy(), train[1].numpy())


@torch.no_grad()
def both_ways(decls, held: Tuple[torch.Tensor, torch.Tensor], classifier, per_label: int, seed: int, device):
    """(label accuracy from the image alone, judged accuracy of images from the label alone, those images)."""
    x, y = held[0].to(device), held[1].to(device)
    z = decls["q(z|x)"].condition(x).mean
    from_image = float((decls["p(y|z)"].condition(z).probs.argmax(-1) == y).float().mean())
    torch.manual_seed(seed)
    wanted = torch.arange(CLASSES, device=device).repeat_interleave(per_label)
    z = decls["q(z|y)"].condition(wanted).sample()
    images = decls["p(x|z)"].condition(z).mean.cpu()
    judged = classifier.predict(images.numpy())
    from_label = float((torch.as_tensor(judged) == wanted.cpu()).float().mean())
    return from_image, from_label, images


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    check_spellings((SUBSAMPLED, SUBSAMPLED_ASCII))
    start(args)
    train, held = labelled_digits(args.seed)
    decls = declarations(args)
    objective = fm.compile(SUBSAMPLED, list(decls.values()))
    print(fm.pretty(SUBSAMPLED), end="\n\n")
    print(objective.explain(), end="\n\n")
    print(f"{train[0].shape[0]} training and {held[0].shape[0]} held-out digits with labels, latent {args.latent}, "
          f"lambda {args.lam:g}, {args.epochs} epochs", flush=True)
    trainer = fm.Trainer(objective, maximize=True, optimizer="adam", lr=args.lr, device=args.device,
                         batch_size=args.batch_size, seed=args.seed, inputs={"lambda": args.lam})
    began = time.perf_counter()
    trainer.fit({"x": train[0], "y": train[1]}, epochs=args.epochs)
    seconds = time.perf_counter() - began
    final = trainer.evaluate({"x": held[0], "y": held[1]})
    print(f"\ntrained {trainer.step} steps in {seconds:.1f} s on {trainer.device}; held-out objective "
          f"{final['objective']:.2f} nats per example (the sum of the three ELBOs)")
    classifier = judge(train)
    print(f"the judge (logistic regression on the training images) labels held-out digits with accuracy "
          f"{classifier.score(held[0].numpy(), held[1].numpy()):.3f}")
    from_image, from_label, images = both_ways(decls, held, classifier, 10, args.seed, trainer.device)
    save_picture(grid(images, CLASSES, 10), args.out / "from_label.png",
                 "mean of p(x|z), z ~ q(z|y): one row per label 0-9")
    print(f"wrote from_label.png to {args.out}")
    write_results(args.out, model="MVAE", paper="Wu & Goodman 2018", formula=SUBSAMPLED,
                  metric="label accuracy from the image alone", value=from_image, from_label=from_label,
                  objective=final["objective"])
    print(f"label accuracy from the image alone: {from_image:.3f}; images from the label alone judged right: "
          f"{from_label:.3f}")
    return {"objective": final["objective"], "from_image": from_image, "from_label": from_label}


if __name__ == "__main__":
    main()
