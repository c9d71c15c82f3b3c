"""TD-VAE, a temporal-difference VAE (Gregor et al. 2019) on a bouncing 1-D sprite, written with the paper's loss.

    python examples/tdvae.py                      # about a minute and a half on one CPU core
    python examples/tdvae.py --smoke --out runs/ci-smoke

The paper's bound (eq. 8) with its two time indices: t_1 and a jump delta drawn per example, t_2 = t_1 + delta,
beliefs b_t from an LSTM over the whole sequence (declared as a function `b(x)`, gathered at t_1 and t_2), two
samplers in one subscript, one belief distribution p_B(z|b) used at both indices, and the jump length a condition
of the transition p_T(z_{t_2}|z_{t_1}, delta). The data: a 3-pixel sprite moving 1 or 2 pixels a step in a
16-pixel frame, bouncing off its edges. The metric is the jumpy prediction error: from the belief at t, draw
z_t ~ p_B(z|b_t), jump z_{t+delta} ~ p_T(z|z_t, delta) and decode, against the truth x_{t+delta} (mean squared
error per pixel, delta = 1..D), beside the baseline of copying the last frame x_t. Each step draws 4 pairs
(t_1, t_2) per sequence (`samples=4`). Writes rollouts.png (held-out sequences, the jumpy predictions from the
middle of each, and a chained one-step rollout) and metrics.json into --out.
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
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from common.spellings import check_spellings  # noqa: E402
from common.start import start  # noqa: E402

import formula as fm  # noqa: E402

# The paper's loss (section 3, eq. 8) as a bound to maximise: t_1 uniform, a jump of 1..D steps, and the
# expectation over z_{t_2} ~ p_B(z|b_{t_2}) then z_{t_1} ~ q_S(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2}), in that order.
TDVAE = (r"t_1 \sim \mathcal{U}\{1, \ldots, T - D\}" "\n" r"\delta \sim \mathcal{U}\{1, \ldots, D\}" "\n"
         r"t_2 = t_1 + \delta" "\n"
         r"\mathbb{E}_{t_1, \delta}\left[\mathbb{E}_{z_{t_2} \sim p_B(z \mid b_{t_2}),\, z_{t_1} \sim "
         r"q_S(z_{t_1} \mid z_{t_2}, b_{t_1}, b_{t_2})}\left[\log p_D(x_{t_2} \mid z_{t_2}) + \log p_B(z_{t_1} \mid "
         r"b_{t_1}) + \log p_T(z_{t_2} \mid z_{t_1}, \delta) - \log p_B(z_{t_2} \mid b_{t_2}) - \log q_S(z_{t_1} "
         r"\mid z_{t_2}, b_{t_1}, b_{t_2})\right]\right]")
TDVAE_ASCII = ("t_1 ~ \\mathcal{U}\\{1, ..., T - D\\}; delta ~ \\mathcal{U}\\{1, ..., D\\}; t_2 = t_1 + delta; "
               "E_{t_1, delta}[E_{z_{t_2} ~ p_B(z|b_{t_2}), z_{t_1} ~ q_S(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})}["
               "log p_D(x_{t_2}|z_{t_2}) + log p_B(z_{t_1}|b_{t_1}) + log p_T(z_{t_2}|z_{t_1}, delta) "
               "- log p_B(z_{t_2}|b_{t_2}) - log q_S(z_{t_1}|z_{t_2}, b_{t_1}, b_{t_2})]]")

WIDTH, SPRITE = 16, 3  # pixels in a frame, pixels of the sprite


def sprites(n: int, steps: int, seed: int) -> torch.Tensor:
    """`n` sequences `[n, steps, WIDTH]` of a SPRITE-pixel square moving 1 or 2 pixels a step, bouncing off the
    frame's edges (0/1 pixels)."""
    g = torch.Generator().manual_seed(seed)
    last = WIDTH - SPRITE
    pos = torch.randint(0, last + 1, (n,), generator=g)
    vel = torch.randint(1, 3, (n,), generator=g) * (torch.randint(0, 2, (n,), generator=g) * 2 - 1)
    frames, cols = [], torch.arange(WIDTH)
    for _ in range(steps):
        frames.append(((cols >= pos[:, None]) & (cols < pos[:, None] + SPRITE)).float())
        nxt = pos + vel
        bounce = (nxt < 0) | (nxt > last)
        vel = torch.where(bounce, -vel, vel)
        pos = torch.where(nxt < 0, -nxt, torch.where(nxt > last, 2 * last - nxt, nxt))
    return torch.stack(frames, 1)


class Belief(nn.Module):
    """b(x): an LSTM over the frames, b_t summarising x_{\\le t}; [batch, T, hidden]."""

    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(WIDTH, hidden, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


class Gaussian(nn.Module):
    """Its inputs concatenated -> a diagonal Normal's {"loc", "scale"} through one hidden layer."""

    def __init__(self, n_in: int, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent))

    def forward(self, *args):
        loc, scale = self.net(torch.cat(args, -1)).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-3}


class Jump(nn.Module):
    """p_T(z_{t_2}|z_{t_1}, delta): the jump delta reaches the net as a [batch] integer tensor; it enters as the
    feature delta / D, and the mean is z_{t_1} plus a learned step."""

    def __init__(self, latent: int, hidden: int, most: int):
        super().__init__()
        self.gauss, self.most = Gaussian(latent + 1, latent, hidden), most

    def forward(self, z, delta):
        params = self.gauss(z, delta.to(z.dtype).reshape(-1, 1).expand(z.shape[0], 1) / self.most)
        return {"loc": z + params["loc"], "scale": params["scale"]}


class Decoder(nn.Module):
    """p_D(x|z): Bernoulli logits of the frame's pixels."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, WIDTH))

    def forward(self, z):
        return {"logits": self.net(z)}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--sequences", type=int, default=2000, help="training sequences (200 more are held out)")
    parser.add_argument("--steps", type=int, default=16, help="frames per sequence (T)")
    parser.add_argument("--jump", type=int, default=4, help="the longest jump D")
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=4, help="(t_1, t_2) pairs drawn per sequence and step "
                                                              "(compile's samples=)")
    args = parse_common(parser, argv, "runs/tdvae", smoke_epochs=1)
    args.lr = args.lr if args.lr != 1e-3 else 3e-3
    if args.smoke:
        args.sequences = min(args.sequences, 128)
    return args


def build(args):
    """The declarations (nets named for the metric and the figure) and the compiled bound."""
    nets = {"b": Belief(args.hidden), "p_B": Gaussian(args.hidden, args.latent, args.hidden),
            "q_S": Gaussian(args.latent + 2 * args.hidden, args.latent, args.hidden),
            "p_T": Jump(args.latent, args.hidden, args.jump), "p_D": Decoder(args.latent, args.hidden)}
    decls = [fm.Function("b(x)", net=nets["b"]), fm.Normal("p_B(z|b)", net=nets["p_B"]),
             fm.Normal("q_S(z_{t_1}|z_{t_2},b_{t_1},b_{t_2})", net=nets["q_S"]),
             fm.Normal(r"p_T(z_{t_2}|z_{t_1},\delta)", net=nets["p_T"]), fm.Bernoulli("p_D(x|z)", net=nets["p_D"])]
    return nets, fm.compile(TDVAE, decls, samples=args.pairs)


def _draw(params, g: torch.Generator) -> torch.Tensor:
    return params["loc"] + params["scale"] * torch.randn(params["loc"].shape, generator=g)


@torch.no_grad()
def jumpy_predictions(nets, x: torch.Tensor, t: int, most: int, seed: int, draws: int = 16) -> torch.Tensor:
    """The model's predictions of x_{t+1}..x_{t+D} from the belief at t, `[n, D, WIDTH]`: for each jump delta, the
    mean of `draws` decoded jumps z_t ~ p_B(z|b_t), z_{t+delta} ~ p_T(z|z_t, delta) (pixel probabilities)."""
    g = torch.Generator().manual_seed(seed)
    b = nets["b"](x)[:, t - 1]
    out = []
    for delta in range(1, most + 1):
        jump = torch.full((x.shape[0],), delta, dtype=torch.long)
        out.append(sum(torch.sigmoid(nets["p_D"](_draw(nets["p_T"](_draw(nets["p_B"](b), g), jump), g))["logits"])
                       for _ in range(draws)) / draws)
    return torch.stack(out, 1)


def jumpy_errors(nets, x: torch.Tensor, t: int, most: int, seed: int, draws: int = 16) -> Dict[str, list]:
    """Per jump delta = 1..D: the mean squared error per pixel of the model's prediction of x_{t+delta} from the
    belief at t (`jumpy_predictions`), and of copying the frame x_t."""
    predicted = jumpy_predictions(nets, x, t, most, seed, draws)
    truth = x[:, t:t + most]
    return {"model": ((predicted - truth) ** 2).mean((0, 2)).tolist(),
            "copy": ((x[:, t - 1:t] - truth) ** 2).mean((0, 2)).tolist()}


@torch.no_grad()
def rollout(nets, x: torch.Tensor, t: int, seed: int) -> torch.Tensor:
    """Frames t+1..T predicted from the belief at t by chained one-step jumps in latent space, z drawn from p_B
    then p_T at each step, each decoded to its pixel probabilities; the first t frames are the truth."""
    g = torch.Generator().manual_seed(seed)
    z = _draw(nets["p_B"](nets["b"](x)[:, t - 1]), g)
    one = torch.ones(x.shape[0], dtype=torch.long)
    frames = [x[:, :t]]
    for _ in range(x.shape[1] - t):
        z = _draw(nets["p_T"](z, one), g)
        frames.append(torch.sigmoid(nets["p_D"](z)["logits"])[:, None])
    return torch.cat(frames, 1)


def save_rollouts(truth: torch.Tensor, jumps: torch.Tensor, chained: torch.Tensor, t: int, path: Path) -> None:
    """Held-out sequences (frames over time), the jumpy predictions from the belief at t (truth up to t, blank past
    t + D) and a chained one-step rollout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, most = truth.shape[0], jumps.shape[1]
    jumped = torch.cat([truth[:, :t], jumps, torch.zeros_like(truth[:, t + most:])], 1)
    rows = (("truth (held out)", truth), (f"jumps 1..{most} from the belief at t = {t}", jumped),
            ("chained one-step rollout (sampled)", chained))
    fig, axes = plt.subplots(len(rows), n, figsize=(2.0 * n, 6.3), dpi=100, sharey=True)
    for i in range(n):
        for row, (title, data) in enumerate(rows):
            data = data[i]
            ax = axes[row, i]
            ax.imshow(data.T, cmap="gray_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            ax.axvline(t - 0.5, color="tab:red", lw=1)
            ax.set(xlabel="time step" if row == len(rows) - 1 else None, xticks=[], yticks=[])
            if i == 0:
                ax.set_title(title, loc="left")
    for row in range(len(rows)):
        axes[row, 0].set_ylabel("pixel")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    check_spellings((TDVAE, TDVAE_ASCII))
    start(args)
    train = sprites(args.sequences, args.steps, args.seed)
    held = sprites(200 if not args.smoke else 32, args.steps, args.seed + 1)
    nets, bound = build(args)
    print(bound, end="\n\n")
    print(bound.explain(), end="\n\n")
    constants = {"T": args.steps, "D": args.jump}
    trainer = fm.Trainer(bound, maximize=True, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         seed=args.seed, inputs=constants)
    began = time.perf_counter()
    trainer.fit({"x": train}, epochs=args.epochs)
    seconds = time.perf_counter() - began
    final = trainer.evaluate({"x": held})
    for m in nets.values():
        m.cpu().eval()
    t = args.steps // 2
    errors = jumpy_errors(nets, held, t, args.jump, args.seed + 2)
    model, copy = (sum(errors[k]) / len(errors[k]) for k in ("model", "copy"))
    shown = held[:6]
    save_rollouts(shown, jumpy_predictions(nets, shown, t, args.jump, args.seed + 2), rollout(nets, shown, t,
                  args.seed + 3), t, args.out / "rollouts.png")
    write_results(args.out, model="TD-VAE", paper="Gregor et al. 2019", formula=TDVAE,
                  metric="jumpy prediction MSE/pixel (copy last frame)", value=model, copy_last_frame=copy,
                  per_jump=errors, held_out_bound=final["objective"], steps=args.steps, jump=args.jump)
    print(f"trained {trainer.step} steps in {seconds:.1f} s on {trainer.device}; held-out bound "
          f"{final['objective']:.3f} nats; per jump 1..{args.jump}: model "
          f"{', '.join(f'{e:.4f}' for e in errors['model'])}, copy {', '.join(f'{e:.4f}' for e in errors['copy'])}; "
          f"wrote rollouts.png and metrics.json to {args.out}")
    print(f"jumpy prediction error: {model:.4f} MSE per pixel from t = {t}, jumps 1..{args.jump} "
          f"(copying the last frame: {copy:.4f})")  # the metric, last
    return {**final, "jumpy": model, "copy": copy}


if __name__ == "__main__":
    main()
