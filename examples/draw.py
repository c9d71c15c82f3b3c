"""A conditional DRAW (Gregor et al. 2015) that draws coloured shapes from their captions, on generated images.

    python examples/draw.py                     # about two minutes on one CPU core
    python examples/draw.py --smoke --out runs/ci-smoke

The data are 16x16 RGB images of a red, green or blue square, disc or triangle in one of the four corners (a
random size and a small jitter), each with its caption, e.g. "blue disc top left" (36 captions; the condition y
is the three words one-hot). The model is DRAW without attention, written as the paper writes it: the error image,
the read, the encoder and decoder RNNs and the canvas are state lines (h_t = f(h_{t-1}, ...), computed step by
step), and the loss is the paper's L^x + L^z, with the decoder reading the caption and the prior p(z_t|h^dec_{t-1})
conditioned on the decoder's state (as alignDRAW's is), so that images are drawn from a caption alone.
Trains on 3600 captioned images, then draws 10 images for every caption and scores them with a small classifier
trained on the real images: the fraction whose colour, shape and corner all match their caption (chance 1/36).
Writes drawings.png (captions and drawn images), canvas.png (the canvas at each of the T steps) and metrics.json.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common.cli import parse_common  # noqa: E402
from common.figures import pyplot  # noqa: E402
from common.results import write_results  # noqa: E402
from common.spellings import check_spellings  # noqa: E402
from common.start import start  # noqa: E402
from common.shapes import draw as draw_shape  # noqa: E402

import formula as fm  # noqa: E402

# DRAW's equations 3-8 as state lines, as printed (the encoder's input the concatenation [r_t, h^{dec}_{t-1}]) but
# for attention (read is [x, \hat x_t]); its loss L = L^x + L^z (eqs. 9-12)
# inside the expectation over the drawn z_1, ..., z_T, with the prior conditioned on h^{dec}_{t-1} (alignDRAW).
DRAW = "\n".join([
    r"\hat{x}_t = x - \sigma(c_{t-1})",
    r"r_t = \mathrm{read}(x, \hat{x}_t, h^{dec}_{t-1})",
    r"h^{enc}_t = \mathrm{RNN}^{enc}(h^{enc}_{t-1}, [r_t, h^{dec}_{t-1}])",
    r"h^{dec}_t = \mathrm{RNN}^{dec}(h^{dec}_{t-1}, z_t, y)",
    r"c_t = c_{t-1} + \mathrm{write}(h^{dec}_t)",
    r"\mathcal{L} = \mathbb{E}_{Q(z_{\le T}|x, y)}\left[-\log D(x|c_T) + \sum_{t=1}^{T} "
    r"D_{KL}\left(Q(z_t|h^{enc}_t) \,\|\, P(z_t|h^{dec}_{t-1})\right)\right]",
])
DRAW_ASCII = "\n".join([
    r"\hat{x}_t = x - sigmoid(c_{t-1})",  # the ASCII printer's own spelling of the hat
    r"r_t = read(x, \hat{x}_t, h^{dec}_{t-1})",
    "h^{enc}_t = RNN^{enc}(h^{enc}_{t-1}, [r_t, h^{dec}_{t-1}])",
    "h^{dec}_t = RNN^{dec}(h^{dec}_{t-1}, z_t, y)",
    "c_t = c_{t-1} + write(h^{dec}_t)",
    "L = E_{Q(z_{<=T}|x, y)}[-log D(x|c_T) + sum_{t=1}^{T} KL(Q(z_t|h^{enc}_t) || P(z_t|h^{dec}_{t-1}))]",
])

SIDE = 16
PIXELS = 3 * SIDE * SIDE
COLOURS = ("red", "green", "blue")
SHAPES = ("square", "disc", "triangle")
CORNERS = ("top left", "top right", "bottom left", "bottom right")
WORDS = (COLOURS, SHAPES, CORNERS)
CAPTION = sum(len(w) for w in WORDS)  # the one-hot caption's size
SIZES = (2.5, 3.0, 3.5)


def captions() -> List[tuple]:
    """Every caption as (colour, shape, corner) indices: 36."""
    return list(itertools.product(*(range(len(w)) for w in WORDS)))


def caption_text(words) -> str:
    return " ".join(WORDS[k][int(i)] for k, i in enumerate(words))


def one_hot(words: torch.Tensor) -> torch.Tensor:
    """`[n, 3]` word indices -> `[n, CAPTION]` (three one-hots side by side)."""
    return torch.cat([nn.functional.one_hot(words[:, k], len(w)).float() for k, w in enumerate(WORDS)], 1)


def render(words, size: float, dx: float, dy: float) -> torch.Tensor:
    """The image `[PIXELS]` (channels first) of a caption's shape in its colour at its corner, moved by (dx, dy)."""
    colour, shape, corner = (int(w) for w in words)
    cx = (4.5 if corner in (0, 2) else 11.5) + dx
    cy = (4.5 if corner in (0, 1) else 11.5) + dy
    image = torch.zeros(3, SIDE * SIDE)
    image[colour] = draw_shape(shape, size, cx, cy)
    return image.reshape(-1)


def dataset(per_caption: int, seed: int) -> Dict[str, torch.Tensor]:
    """`per_caption` images of every caption: `x` `[n, 768]` in {0, 1}, `y` `[n, 10]`, and the word indices."""
    g = torch.Generator().manual_seed(seed)
    words = torch.tensor(captions()).repeat(per_caption, 1)
    images = []
    for w in words:
        size = SIZES[int(torch.randint(len(SIZES), (1,), generator=g))]
        dx, dy = ((torch.rand(2, generator=g) * 2 - 1) * 1.0).tolist()
        images.append(render(w, size, dx, dy))
    return {"x": torch.stack(images), "y": one_hot(words), "words": words}


class Read(nn.Module):
    """read(x, \\hat x_t, h^dec_{t-1}) without attention: the image and the error image side by side."""

    def forward(self, x, error, h_dec):
        return torch.cat([x, error], -1)


class Cell(nn.Module):
    """An RNN step: a GRU cell over the concatenated inputs, the previous state first."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.cell = nn.GRUCell(n_in, hidden)

    def forward(self, h, *inputs):
        return self.cell(torch.cat(inputs, -1), h)


class Gaussian(nn.Module):
    def __init__(self, n_in: int, latent: int):
        super().__init__()
        self.net = nn.Linear(n_in, 2 * latent)

    def forward(self, h):
        loc, scale = self.net(h).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-3}


class CanvasLogits(nn.Module):
    """D(x|c_T): independent Bernoulli pixels with the canvas as their logits."""

    def forward(self, c):
        return {"logits": c}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--per-caption", type=int, default=100, help="training images per caption")
    parser.add_argument("--steps", type=int, default=6, help="T, the number of canvas steps")
    parser.add_argument("--latent", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parse_common(parser, argv, "runs/draw", smoke_epochs=1)
    args.lr = args.lr if args.lr != 1e-3 else 2e-3
    if args.smoke:
        args.per_caption, args.steps = min(args.per_caption, 4), min(args.steps, 3)
    return args


def build(args):
    """The declarations (nets by name, for drawing from captions) and the compiled loss."""
    h, z = args.hidden, args.latent
    nets = {"read": Read(), "enc": Cell(2 * PIXELS + h, h), "dec": Cell(z + CAPTION, h),
            "write": nn.Linear(h, PIXELS), "q": Gaussian(h, z), "prior": Gaussian(h, z), "image": CanvasLogits()}
    decls = [fm.Function("read(x, e, h)", net=nets["read"]), fm.Function("RNN^{enc}(h, v)", net=nets["enc"]),
             fm.Function("RNN^{dec}(h, z, y)", net=nets["dec"]), fm.Function("write(h)", net=nets["write"]),
             fm.Initial("h^{enc}_0", size=(h,)), fm.Initial("h^{dec}_0", size=(h,)), fm.Initial("c_0", size=(PIXELS,)),
             fm.Normal("Q(z_t|h^{enc}_t)", net=nets["q"]), fm.Normal("P(z_t|h^{dec}_{t-1})", net=nets["prior"]),
             fm.Bernoulli("D(x|c)", net=nets["image"])]
    return nets, fm.compile(DRAW, decls)


@torch.no_grad()
def generate(nets, y: torch.Tensor, steps: int, hidden: int, seed: int) -> torch.Tensor:
    """Images drawn from captions alone: z_t ~ P(z_t|h^dec_{t-1}), the decoder's step, the canvas; returns every
    step's sigma(c_t), `[steps, n, PIXELS]`."""
    g = torch.Generator().manual_seed(seed)
    h = torch.zeros(len(y), hidden)
    c = torch.zeros(len(y), PIXELS)
    canvases = []
    for _ in range(steps):
        prior = nets["prior"](h)
        z = prior["loc"] + prior["scale"] * torch.randn(prior["loc"].shape, generator=g)
        h = nets["dec"](h, z, y)
        c = c + nets["write"](h)
        canvases.append(torch.sigmoid(c))
    return torch.stack(canvases)


class Judge(nn.Module):
    """The classifier that reads a caption off an image: colour, shape and corner logits."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU(), nn.Linear(hidden, CAPTION))

    def forward(self, x):
        return self.net(x).split([len(w) for w in WORDS], -1)

    def words(self, x):
        with torch.no_grad():
            return torch.stack([logits.argmax(-1) for logits in self(x)], 1)


def train_judge(data, seed: int, steps: int = 1500) -> Judge:
    torch.manual_seed(seed)
    judge = Judge()
    opt = torch.optim.Adam(judge.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(data["x"]), (128,), generator=g)
        x = (data["x"][idx] + 0.1 * torch.randn(128, PIXELS, generator=g)).clamp(0, 1)  # a little robust to blur
        loss = sum(nn.functional.cross_entropy(logits, data["words"][idx, k]) for k, logits in enumerate(judge(x)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return judge


def caption_accuracy(judge: Judge, images: torch.Tensor, words: torch.Tensor) -> float:
    """The fraction of images whose colour, shape and corner, as the judge reads them, are the caption's."""
    return (judge.words(images) == words).all(1).float().mean().item()


def as_picture(image: torch.Tensor):
    return image.reshape(3, SIDE, SIDE).permute(1, 2, 0).clamp(0, 1).numpy()


def save_drawings(words, images, real, path: Path, per_row: int = 6) -> None:
    plt = pyplot()

    rows = len(words)
    fig, axes = plt.subplots(rows, per_row + 1, figsize=(1.1 * (per_row + 1) + 1.6, 1.1 * rows), dpi=100)
    for r in range(rows):
        for k in range(per_row):
            axes[r, k].imshow(as_picture(images[r, k]), interpolation="nearest")
        axes[r, per_row].imshow(as_picture(real[r]), interpolation="nearest")
        axes[r, 0].set_ylabel(caption_text(words[r]), rotation=0, ha="right", va="center", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, per_row].set_title("a real one", fontsize=8)
    axes[0, per_row // 2].set_title("drawn by DRAW from the caption", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_canvas(words, canvases, path: Path) -> None:
    plt = pyplot()

    steps, rows = canvases.shape[0], canvases.shape[1]
    fig, axes = plt.subplots(rows, steps, figsize=(1.1 * steps + 1.6, 1.2 * rows), dpi=100, squeeze=False)
    for r in range(rows):
        for t in range(steps):
            axes[r, t].imshow(as_picture(canvases[t, r]), interpolation="nearest")
            axes[r, t].set_xticks([])
            axes[r, t].set_yticks([])
            if r == 0:
                axes[r, t].set_title(f"t = {t + 1}", fontsize=8)
        axes[r, 0].set_ylabel(caption_text(words[r]), rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    start(args)
    check_spellings((DRAW, DRAW_ASCII))
    train = dataset(args.per_caption, args.seed)
    held = dataset(20 if not args.smoke else 2, args.seed + 1)
    nets, loss = build(args)
    print(loss, end="\n\n")
    print(loss.explain(), end="\n\n")
    trainer = fm.Trainer(loss, maximize=False, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         seed=args.seed, inputs={"T": args.steps})
    began = time.perf_counter()
    trainer.fit({"x": train["x"], "y": train["y"]}, epochs=args.epochs)
    seconds = time.perf_counter() - began
    final = trainer.evaluate({"x": held["x"], "y": held["y"]})
    for m in nets.values():
        m.cpu().eval()
    words = torch.tensor(captions())
    samples = 10
    asked = words.repeat_interleave(samples, 0)
    canvases = generate(nets, one_hot(asked), args.steps, args.hidden, args.seed + 2)
    drawn = canvases[-1]
    judge = train_judge(train, args.seed, steps=100 if args.smoke else 1500)
    accuracy = caption_accuracy(judge, drawn, asked)
    real_accuracy = caption_accuracy(judge, held["x"], held["words"])
    shown = torch.arange(0, len(words), 3)  # 12 of the 36 captions
    real = torch.stack([held["x"][(held["words"] == words[i]).all(1)][0] for i in shown])
    save_drawings(words[shown], drawn.reshape(len(words), samples, PIXELS)[shown], real, args.out / "drawings.png")
    first = shown[:3] * samples  # the first drawing of three captions, step by step
    save_canvas(words[shown[:3]], canvases[:, first], args.out / "canvas.png")
    write_results(args.out, model="conditional DRAW", paper="Gregor et al. 2015", formula=DRAW,
                  metric="caption accuracy of drawn images (chance 1/36)", value=accuracy,
                  real_image_accuracy=real_accuracy, held_out_loss=final["objective"], steps=args.steps)
    print(f"trained {trainer.step} steps in {seconds:.1f} s on {trainer.device}; held-out loss L^x + L^z "
          f"{final['objective']:.2f} nats per image; the judge reads {real_accuracy:.3f} of real held-out captions "
          f"right; wrote drawings.png, canvas.png and metrics.json to {args.out}")
    print(f"caption accuracy of drawn images: {accuracy:.3f} (chance {1 / len(words):.3f}, real images "
          f"{real_accuracy:.3f})")  # the metric, last
    return {**final, "caption_accuracy": accuracy, "real_accuracy": real_accuracy}


if __name__ == "__main__":
    main()
