"""The figures people expect from an example, in one place: image grids (samples, reconstructions), latent
traversals, a 2-D latent scatter coloured by label and the loss curves of every term; matplotlib, headless (Agg).

Every function writes one PNG and returns nothing; images are `[n, side*side]` intensities in [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch

TERM, EVAL = "term/", "eval/"  # the trainer's history keys (formula.train.updates)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(fig, axes, path: Path) -> None:
    """Grid and legend on each of `axes`, then write `fig` to `path` and close it."""
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)


def grid(images: torch.Tensor, rows: int, cols: int, side: int = 8) -> torch.Tensor:
    """`[rows*cols, side*side]` images as one `[rows*(side+1)-1, cols*(side+1)-1]` picture with 1-pixel gaps."""
    canvas = torch.zeros(rows * (side + 1) - 1, cols * (side + 1) - 1, dtype=images.dtype)
    for i, image in enumerate(images[: rows * cols].reshape(-1, side, side)):
        r, c = divmod(i, cols)
        canvas[r * (side + 1): r * (side + 1) + side, c * (side + 1): c * (side + 1) + side] = image
    return canvas


def save_picture(picture: torch.Tensor, path: Path, title: str) -> None:
    """A grey-scale picture (intensities in [0, 1], dark is 1) with a title."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(picture.shape[1] / 14, picture.shape[0] / 14 + 0.5), dpi=100)
    ax.imshow(picture.detach().cpu().numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def samples(images: torch.Tensor, path: Path, title: str = "samples", side: int = 8) -> None:
    """A 10x10 grid of generated images."""
    save_picture(grid(images, 10, 10, side), path, title)


def reconstructions(originals: torch.Tensor, recon: torch.Tensor, path: Path, side: int = 8,
                    title: str = "held-out images, each row above its reconstructions") -> None:
    """50 originals and their reconstructions, in pairs of rows (10 images a row)."""
    pairs = torch.stack([originals[:50].cpu().reshape(5, 10, -1), recon[:50].cpu().reshape(5, 10, -1)], 1)
    save_picture(grid(pairs.reshape(100, -1), 10, 10, side), path, title)


def latent_traversal(decode: Callable[[torch.Tensor], torch.Tensor], center: torch.Tensor, path: Path,
                     span: float = 2.5, steps: int = 9, side: int = 8) -> None:
    """One row per latent dimension: `decode(z)` as that coordinate of `center` sweeps -span..span."""
    latent = center.shape[-1]
    values = torch.linspace(-span, span, steps, dtype=center.dtype, device=center.device)
    z = center.reshape(1, 1, latent).repeat(latent, steps, 1)
    z[torch.arange(latent), :, torch.arange(latent)] = values
    with torch.no_grad():
        images = decode(z.reshape(latent * steps, latent)).cpu()
    save_picture(grid(images, latent, steps, side), path,
                 f"latent traversals: row k sweeps z_k over [-{span:g}, {span:g}]")


def latent_scatter(z: torch.Tensor, labels: torch.Tensor, path: Path, title: str = "latent means by label") -> None:
    """Each point's code in 2-D (its two coordinates, or its two principal components for a wider code),
    coloured by its label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    z, labels = z.detach().cpu().float(), labels.detach().cpu()
    axes = ("z_1", "z_2")
    if z.shape[1] > 2:
        centred = z - z.mean(0)
        z = centred @ torch.linalg.svd(centred, full_matrices=False).Vh[:2].T
        axes = ("principal component 1", "principal component 2")
    points = ax.scatter(z[:, 0].numpy(), z[:, 1].numpy(), c=labels.numpy(), cmap="tab10", s=8, alpha=0.8)
    fig.colorbar(points, ax=ax, label="label")
    ax.set(title=title, xlabel=axes[0], ylabel=axes[1])
    finish(fig, [ax], path)


def loss_curves(history: Mapping[str, Sequence[float]], path: Path, loss_title: str = "loss",
                unit: Optional[str] = None) -> None:
    """The loss per epoch (train and held-out) and beside it every term of the formula (`term/<name>`)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    epochs = range(1, len(history["loss"]) + 1)
    for key, label in (("loss", "train"), (EVAL + "loss", "held-out")):
        if key in history:
            left.plot(epochs, history[key], label=label)
    if len(history["loss"]) > 2:  # the first epoch's loss would flatten the rest of the curve
        later = list(history["loss"][1:]) + list(history.get(EVAL + "loss", [])[1:])
        left.set_ylim(min(later) - 0.5, max(later) + 0.5)
    left.set(title=loss_title, xlabel="epoch", ylabel=unit or "")
    for key in [k for k in history if k.startswith(TERM)]:
        name = key[len(TERM):]
        right.plot(epochs, history[key], label=f"train {name}")
        if EVAL + key in history:
            right.plot(epochs, history[EVAL + key], "--", label=f"held-out {name}")
    right.set(title="terms of the formula", xlabel="epoch", ylabel=unit or "")
    finish(fig, [left, right], path)
