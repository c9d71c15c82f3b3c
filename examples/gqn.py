"""A Generative Query Network (Eslami et al. 2018) on generated 2-D scenes seen from a varying number of viewpoints.

    python examples/gqn.py                      # about a minute on one CPU core
    python examples/gqn.py --smoke --out runs/ci-smoke

Each scene is a round room whose wall is painted in eight panels of random colours; a camera at its centre,
turned to one of 16 directions, sees a 1-D colour image (16 pixels, RGB, a 90-degree field of view, lit from one
side: a small version of the paper's mazes). The representation is the paper's sum over the context views,
r = sum_i f(x^i, v^i), written as a definition line: the views are `x` `[batch, 5, 48]` and `v` `[batch, 5, 2]`
(the camera's direction, cos and sin of its angle), and `N=` a `[batch]` tensor says how many views
each room has (1 to 5; the padding after them is masked out). The latent has the paper's prior p(z|r, v^q) and
posterior q(z|x^q, r, v^q), the query view a Normal p(x^q|z, r, v^q). Trains on 6000 rooms, predicts the query
view of held-out rooms from their context views alone (z at the prior's mean), and compares its error with
copying the nearest context view and with the mean image; writes views.png and metrics.json into --out.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Dict

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common.cli import parse_common  # noqa: E402
from common.figures import pyplot  # noqa: E402
from common.results import write_results  # noqa: E402
from common.spellings import check_spellings  # noqa: E402
from common.start import start  # noqa: E402

import formula as fm  # noqa: E402

# The paper's representation (a sum over the context views) and ELBO (its eq. 5 at one generation step), as
# printed: the superscript i of the views is the sum's index.
GQN = (r"\mathbf{r} = \sum_{i=1}^{N} f_\theta(\mathbf{x}^i, \mathbf{v}^i)" "\n"
       r"\mathcal{L} = \mathbb{E}_{q_\phi(\mathbf{z}|\mathbf{x}^q, \mathbf{r}, \mathbf{v}^q)}\left[\log "
       r"p_\theta(\mathbf{x}^q|\mathbf{z}, \mathbf{r}, \mathbf{v}^q)\right] - D_{KL}\left(q_\phi(\mathbf{z}|"
       r"\mathbf{x}^q, \mathbf{r}, \mathbf{v}^q) \,\|\, p_\theta(\mathbf{z}|\mathbf{r}, \mathbf{v}^q)\right)")
GQN_ASCII = ("r = sum_{i=1}^{N} f(x^i, v^i)\n"
             "L = E_{q(z|x^q, r, v^q)}[log p(x^q|z, r, v^q)] - KL(q(z|x^q, r, v^q) || p(z|r, v^q))")

PIXELS, PANELS, DIRECTIONS, FOV, MAX_VIEWS = 16, 8, 16, math.radians(90), 5
PALETTE = torch.tensor([[0.9, 0.15, 0.1], [0.15, 0.75, 0.2], [0.15, 0.3, 0.95], [0.95, 0.85, 0.1],
                        [0.85, 0.2, 0.85], [0.1, 0.85, 0.85]])
LIGHT = math.radians(60)  # where the room's light comes from: walls facing it are brighter


def render(panels: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """What a camera at the centre of a round room sees when turned to `angles` `[S, V]` (radians): `[S, V,
    PIXELS, 3]`. The wall is PANELS panels of the colours `panels` `[S, PANELS, 3]` (panel k spans the angles
    k..k+1 times 2 pi / PANELS), lit from LIGHT; the field of view is FOV, left to right."""
    offsets = torch.linspace(FOV / 2, -FOV / 2, 2 * PIXELS + 1)[1::2]  # each pixel's ray, left to right
    seen = (angles[..., None] + offsets) % (2 * math.pi)  # [S, V, P]
    which = (seen / (2 * math.pi / PANELS)).long().clamp(max=PANELS - 1)
    colour = panels[:, None].expand(-1, angles.shape[1], -1, -1).gather(2, which[..., None].expand(*which.shape, 3))
    return colour * (0.6 + 0.4 * torch.cos(seen - LIGHT))[..., None]


def scenes(n: int, seed: int) -> Dict[str, torch.Tensor]:
    """`n` rooms, each seen from MAX_VIEWS context directions and one query direction (of DIRECTIONS evenly
    spaced ones, at random): `x` `[n, 5, 48]`, `v` `[n, 5, 2]` (padding zeroed after each room's `N` views), `N`
    `[n]` in 1..5, the query `x^q` `[n, 48]` and `v^q` `[n, 2]`; and the rooms themselves for the figure."""
    g = torch.Generator().manual_seed(seed)
    panels = PALETTE[torch.randint(len(PALETTE), (n, PANELS), generator=g)]
    angles = torch.randint(DIRECTIONS, (n, MAX_VIEWS + 1), generator=g) * (2 * math.pi / DIRECTIONS)
    views = render(panels, angles).reshape(n, MAX_VIEWS + 1, PIXELS * 3)
    where = torch.stack([angles.cos(), angles.sin()], -1)
    counts = torch.randint(1, MAX_VIEWS + 1, (n,), generator=g)
    keep = (torch.arange(MAX_VIEWS)[None, :] < counts[:, None])[..., None]
    return {"x": views[:, :MAX_VIEWS] * keep, "v": where[:, :MAX_VIEWS] * keep, "N": counts,
            "x^q": views[:, MAX_VIEWS], "v^q": where[:, MAX_VIEWS], "panels": panels, "angles": angles}


def mlp(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class Representation(nn.Module):
    """f(x, v): one context view and its viewpoint -> its contribution to r (all views in one call)."""

    def __init__(self, rep: int, hidden: int):
        super().__init__()
        self.net = mlp(PIXELS * 3 + 2, rep, hidden)

    def forward(self, x, v):
        return self.net(torch.cat([x, v], -1))


class Gaussian(nn.Module):
    """A diagonal Normal over `n_out` from its concatenated conditions."""

    def __init__(self, n_in: int, n_out: int, hidden: int, floor: float = 1e-3):
        super().__init__()
        self.net, self.floor = mlp(n_in, 2 * n_out, hidden), floor

    def forward(self, *conditions):
        loc, scale = self.net(torch.cat(conditions, -1)).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + self.floor}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--scenes", type=int, default=6000, help="training rooms (500 more are held out)")
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--rep", type=int, default=64, help="size of the representation r")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parse_common(parser, argv, "runs/gqn", smoke_epochs=1)
    if args.smoke:
        args.scenes = min(args.scenes, 256)
    return args


def build(args):
    """The declarations (nets by name, for the prediction) and the compiled objective."""
    x, z, r, v = PIXELS * 3, args.latent, args.rep, 2
    nets = {"f": Representation(r, args.hidden), "q": Gaussian(x + r + v, z, args.hidden),
            "prior": Gaussian(r + v, z, args.hidden), "render": Gaussian(z + r + v, x, args.hidden, floor=0.01)}
    decls = [fm.Function("f_theta(x, v)", net=nets["f"]), fm.Normal("q_phi(z|x^q, r, v^q)", net=nets["q"]),
             fm.Normal("p_theta(z|r, v^q)", net=nets["prior"]), fm.Normal("p_theta(x^q|z, r, v^q)", net=nets["render"])]
    return nets, fm.compile(GQN, decls)


@torch.no_grad()
def predict(nets, data, seed=None) -> torch.Tensor:
    """The query view from the context views alone: r summed over each room's N views, z at the prior's mean (or,
    with a seed, drawn from the prior: one of the rooms the views allow), the renderer's mean."""
    x, v = data["x"].movedim(1, 0), data["v"].movedim(1, 0)
    mask = (torch.arange(MAX_VIEWS)[:, None] < data["N"][None, :])[..., None]
    r = torch.where(mask, nets["f"](x, v), 0.0).sum(0)
    prior = nets["prior"](r, data["v^q"])
    z = prior["loc"]
    if seed is not None:
        z = z + prior["scale"] * torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
    return nets["render"](z, r, data["v^q"])["loc"].clamp(0, 1)


def nearest_view(data) -> torch.Tensor:
    """The baseline: the context view whose camera is closest to the query's."""
    cosine = (data["v"] * data["v^q"][:, None]).sum(-1)
    cosine = torch.where(torch.arange(MAX_VIEWS)[None, :] < data["N"][:, None], cosine, -2.0)
    return data["x"][torch.arange(len(cosine)), cosine.argmax(1)]


def save_views(data, predicted, sampled, nearest, path: Path, rows: int = 6) -> None:
    plt = pyplot()
    from matplotlib.patches import Wedge

    fig, axes = plt.subplots(rows, 2, figsize=(9, 1.6 * rows), dpi=100, gridspec_kw={"width_ratios": [1, 3.2]})
    for row in range(rows):
        top, strips = axes[row]
        n = int(data["N"][row])
        for k, colour in enumerate(data["panels"][row]):
            top.add_patch(Wedge((0, 0), 1.0, k * 360 / PANELS, (k + 1) * 360 / PANELS, width=0.25,
                                color=colour.tolist()))
        for k in range(n + 1):
            a = float(data["angles"][row, k if k < n else MAX_VIEWS])
            top.annotate("", (0.7 * math.cos(a), 0.7 * math.sin(a)), (0, 0),
                         arrowprops=dict(arrowstyle="->", color="black" if k < n else "red", lw=1.5))
        top.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), aspect="equal", xticks=[], yticks=[])
        images = [data["x"][row, k] for k in range(n)] + [data["x^q"][row], predicted[row]] + [
            s[row] for s in sampled] + [nearest[row]]
        labels = [f"context {k + 1}" for k in range(n)] + ["query: truth", "GQN (prior mean)"] + [
            f"GQN (z drawn) {k + 1}" for k in range(len(sampled))] + ["nearest view"]
        picture = torch.ones(len(images) * 3, PIXELS, 3)
        for k, image in enumerate(images):
            picture[3 * k: 3 * k + 2] = image.reshape(PIXELS, 3)
        strips.imshow(picture.clamp(0, 1).numpy(), aspect="auto", interpolation="nearest")
        strips.set_yticks([3 * k + 0.5 for k in range(len(images))], labels, fontsize=7)
        strips.set_xticks([])
    axes[0, 0].set_title("room (black: context, red: query)", fontsize=9)
    axes[0, 1].set_title("1-D views (RGB, 16 pixels)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    start(args)
    check_spellings((GQN, GQN_ASCII))
    inputs = ("x", "v", "N", "x^q", "v^q")
    train = scenes(args.scenes, args.seed)
    held = scenes(500 if not args.smoke else 64, args.seed + 1)
    nets, elbo = build(args)
    print(elbo, end="\n\n")
    print(elbo.explain(), end="\n\n")
    trainer = fm.Trainer(elbo, maximize=True, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         seed=args.seed)
    began = time.perf_counter()
    trainer.fit({k: train[k] for k in inputs}, epochs=args.epochs)
    seconds = time.perf_counter() - began
    final = trainer.evaluate({k: held[k] for k in inputs})
    for m in nets.values():
        m.cpu().eval()
    predicted, nearest = predict(nets, held), nearest_view(held)
    mean_image = train["x^q"].mean(0, keepdim=True)
    error = {"gqn": ((predicted - held["x^q"]) ** 2).mean().item(),
             "nearest_view": ((nearest - held["x^q"]) ** 2).mean().item(),
             "mean_image": ((mean_image - held["x^q"]) ** 2).mean().item()}
    sampled = [predict(nets, held, seed=args.seed + k) for k in (1, 2)]
    save_views(held, predicted, sampled, nearest, args.out / "views.png")
    write_results(args.out, model="GQN", paper="Eslami et al. 2018", formula=GQN,
                  metric="held-out query-view MSE", value=error["gqn"], baseline_nearest_view=error["nearest_view"],
                  baseline_mean_image=error["mean_image"], held_out_elbo=final["objective"])
    print(f"trained {trainer.step} steps in {seconds:.1f} s on {trainer.device}; held-out ELBO "
          f"{final['objective']:.2f} nats per query view; wrote views.png and metrics.json to {args.out}")
    print(f"held-out query-view MSE: {error['gqn']:.4f} (nearest context view {error['nearest_view']:.4f}, "
          f"mean image {error['mean_image']:.4f})")  # the metric, last
    return {**final, **{f"mse/{k}": v for k, v in error.items()}}


if __name__ == "__main__":
    main()
