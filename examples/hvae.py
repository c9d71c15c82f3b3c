"""An NVAE-style hierarchical VAE (Vahdat & Kautz 2020) with three latent groups on scikit-learn's 8x8 digits.

    python examples/hvae.py                     # about two minutes on one CPU core
    python examples/hvae.py --smoke --out runs/ci-smoke

The objective is the paper's eq. 2 as written: the reconstruction under the whole hierarchy, the KL of the top
group, and the sum over the lower groups l = 2..L of the expected KL between each group's posterior
q(z_l|x, z_{<l}) and its top-down prior p(z_l|z_{<l}). Each group has its own networks (fm.PerIndex), and the
levels are drawn once per call, top-down, shared by every term. The same digits train a one-group VAE with as
many latent dimensions in all, for comparison. Prints the held-out ELBO of both and the KL of every group (how many
nats each group carries), and writes samples.png, reconstructions.png and metrics.json into --out. Pixels are
intensities in [0, 1] used as Bernoulli targets, as in examples/vae.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits, figures  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402

import formula as fm  # noqa: E402
from formula.families.per_index import PerIndex  # noqa: E402

# NVAE eq. 2, with the hierarchy z = (z_1, ..., z_L) written as the slice z_{\le L}.
ELBO = (r"\mathbb{E}_{q(z_{\le L}|x)}\left[\log p(x|z_{\le L})\right] - \mathrm{KL}(q(z_1|x) \| p(z_1)) - "
        r"\sum_{l=2}^{L} \mathbb{E}_{q(z_{<l}|x)}\left[\mathrm{KL}(q(z_l|x, z_{<l}) \| p(z_l|z_{<l}))\right]")
ELBO_ASCII = ("E_{q(z_{<=L}|x)}[log p(x|z_{<=L})] - KL(q(z_1|x) || p(z_1)) - "
              "sum_{l=2}^{L} E_{q(z_{<l}|x)}[KL(q(z_l|x,z_{<l}) || p(z_l|z_{<l}))]")
GROUP_KL = r"\mathbb{E}_{q(z_{<l}|x)}\left[\mathrm{KL}(q(z_l|x, z_{<l}) \| p(z_l|z_{<l}))\right]"  # one summand
VAE = r"\mathbb{E}_{q(z|x)}\left[\log p(x|z)\right] - \mathrm{KL}(q(z|x) \| p(z))"


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_out))


class Gaussian(nn.Module):
    """A diagonal Normal of its inputs; a slice of earlier groups `[batch, l-1, D]` is flattened first."""

    def __init__(self, n_in: int, latent: int, hidden: int):
        super().__init__()
        self.net = mlp(n_in, hidden, 2 * latent)

    def forward(self, *args):
        flat = [a.flatten(1) if a.dim() == 3 else a for a in args]
        loc, scale = self.net(torch.cat(flat, -1)).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-4}


class Decoder(nn.Module):
    """p(x|z): Bernoulli logits of the 64 pixels from the whole code (`[batch, L, D]` or `[batch, L*D]`)."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.net = mlp(n_in, hidden, digits.SIDE**2)

    def forward(self, z):
        return {"logits": self.net(z.flatten(1))}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--groups", type=int, default=3, help="latent groups L")
    parser.add_argument("--group-size", type=int, default=4, help="dimensions per group")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    return parse_common(parser, argv, "runs/hvae", smoke_epochs=1)


def hierarchy(args) -> Dict[str, object]:
    """The declarations of the hierarchy: one network per group for the posterior and for the prior."""
    L, D, H = args.groups, args.group_size, args.hidden
    q1 = Gaussian(digits.SIDE**2, D, H)
    q_rest = PerIndex([Gaussian(digits.SIDE**2 + (l - 1) * D, D, H) for l in range(2, L + 1)], first=2)
    p_rest = PerIndex([Gaussian((l - 1) * D, D, H) for l in range(2, L + 1)], first=2)
    decoder = Decoder(L * D, H)
    decls = [fm.Normal("q(z_1|x)", net=q1), fm.Normal("q(z_l|x,z_{<l})", net=q_rest),
             fm.Normal("p(z_1)", loc=0.0, scale=1.0, shape=(D,)), fm.Normal("p(z_l|z_{<l})", net=p_rest),
             fm.Bernoulli(r"p(x|z_{\le L})", net=decoder)]
    return {"q1": q1, "q": q_rest, "p": p_rest, "decoder": decoder, "decls": decls}


def one_group(args, size: int) -> Dict[str, object]:
    """The one-group VAE of the same total size: as many latent dimensions, and its two networks as wide as makes
    about `size` parameters."""
    total = args.groups * args.group_size

    def nets(hidden):
        return Gaussian(digits.SIDE**2, total, hidden), Decoder(total, hidden)

    hidden = min(range(8, 1024, 4), key=lambda h: abs(parameters(nets(h)) - size))
    torch.manual_seed(args.seed)
    encoder, decoder = nets(hidden)
    decls = [fm.Normal("q(z|x)", net=encoder), fm.Bernoulli("p(x|z)", net=decoder),
             fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(total,))]
    return {"encoder": encoder, "decoder": decoder, "decls": decls}


def parameters(module_list) -> int:
    return sum(p.numel() for m in module_list for p in m.parameters())


@torch.no_grad()
def sample(h, n: int, args) -> torch.Tensor:
    """Ancestral samples, top-down: z_1 ~ p(z_1), z_l ~ p(z_l|z_{<l}), then the mean of p(x|z)."""
    g = torch.Generator().manual_seed(args.seed)
    zs = [torch.randn(n, args.group_size, generator=g)]
    for l in range(2, args.groups + 1):
        params = h["p"].nets[l - 2](torch.stack(zs, 1))
        zs.append(params["loc"] + params["scale"] * torch.randn(n, args.group_size, generator=g))
    return torch.sigmoid(h["decoder"](torch.stack(zs, 1))["logits"])


@torch.no_grad()
def reconstruct(h, x: torch.Tensor, args) -> torch.Tensor:
    """The posterior means level by level (each group's mean given the means above it), decoded."""
    zs = [h["q1"](x)["loc"]]
    for l in range(2, args.groups + 1):
        zs.append(h["q"].nets[l - 2](x, torch.stack(zs, 1))["loc"])
    return torch.sigmoid(h["decoder"](torch.stack(zs, 1))["logits"])


def group_kls(elbo, group_kl, held: torch.Tensor, args, repeats: int = 10) -> List[float]:
    """Each group's held-out KL in nats per image: the top group's KL term of the ELBO, and one lower group's
    expected KL (the summand of eq. 2 at l, the same declarations) averaged over `repeats` draws of the groups
    above it."""
    torch.manual_seed(args.seed + 1)
    with torch.no_grad():
        kls = [float(elbo.terms(x=held, L=args.groups)[elbo.term_names[1]].mean())]
        for l in range(2, args.groups + 1):
            kls.append(sum(float(group_kl(x=held, l=l).mean()) for _ in range(repeats)) / repeats)
    return kls


def train(objective, data: torch.Tensor, held: torch.Tensor, args, inputs=None) -> Dict[str, float]:
    trainer = fm.Trainer(objective, maximize=True, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         seed=args.seed, inputs=inputs or {})
    start = time.perf_counter()
    trainer.fit({"x": data}, epochs=args.epochs)
    final = trainer.evaluate({"x": held})
    final["seconds"] = time.perf_counter() - start
    final["steps"] = trainer.step
    final["device"] = str(trainer.device)
    objective.cpu()  # the figures and the per-group KLs are computed here, on the CPU
    return final


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if not fm.equivalent(ELBO, ELBO_ASCII):
        raise SystemExit(f"not equivalent:\n  {ELBO}\n  {ELBO_ASCII}")
    train_x, held = digits.load(seed=args.seed)
    if args.smoke:
        train_x = train_x[:256]

    h = hierarchy(args)
    elbo = fm.compile(ELBO, h["decls"])
    group_kl = fm.compile(GROUP_KL, h["decls"])  # the same networks: one group's KL, at the level l passed
    print(elbo, end="\n\n")
    print(elbo.explain(), end="\n\n")
    ours = train(elbo, train_x, held, args, inputs={"L": args.groups})

    size = parameters([h["q1"], h["q"], h["p"], h["decoder"]])
    v = one_group(args, size)
    baseline = train(fm.compile(VAE, v["decls"]), train_x, held, args)

    kls = group_kls(elbo, group_kl, held, args)
    sizes = (size, parameters([v["encoder"], v["decoder"]]))
    print(f"trained the {args.groups}-group HVAE ({sizes[0]} parameters) for {ours['steps']} steps in "
          f"{ours['seconds']:.1f} s and the one-group VAE ({sizes[1]} parameters) in {baseline['seconds']:.1f} s on "
          f"{ours['device']}")
    for l, kl in enumerate(kls, 1):
        print(f"  KL of group z_{l} ({args.group_size} dims): {kl:7.3f} nats per image")

    figures.samples(sample(h, 100, args), args.out / "samples.png",
                    "HVAE samples: z_1 ~ p(z_1), z_l ~ p(z_l|z_{<l}), mean of p(x|z)")
    figures.reconstructions(held[:50], reconstruct(h, held[:50], args), args.out / "reconstructions.png")
    metrics = {f"kl_z{l}": kl for l, kl in enumerate(kls, 1)}
    shown = ", ".join(f"z_{l} {kl:.2f}" for l, kl in enumerate(kls, 1))
    write_results(args.out, model=f"NVAE-style hierarchy, {args.groups} groups", paper="Vahdat & Kautz 2020",
                  formula=ELBO, metric=f"held-out ELBO (nats/image; one-group VAE {baseline['objective']:.2f}; KL "
                  f"per group {shown})", value=ours["objective"], one_group_vae=baseline["objective"],
                  groups=args.groups, group_size=args.group_size, **metrics)
    print(f"wrote samples.png, reconstructions.png and metrics.json to {args.out}")
    print(f"held-out ELBO: HVAE {ours['objective']:.3f} vs one-group VAE {baseline['objective']:.3f} nats per image; "
          f"KL per group: {shown}")  # the metric, last
    return {"hvae": ours["objective"], "vae": baseline["objective"], "kls": kls}


if __name__ == "__main__":
    main()
