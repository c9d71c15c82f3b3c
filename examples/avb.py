"""Adversarial variational Bayes (Mescheder, Nowozin and Geiger, 2017) on scikit-learn's 8x8 digits, against the VAE
with a Gaussian encoder and the same decoder.

    python examples/avb.py                       # about 30 s of one idle CPU core (both models)
    python examples/avb.py --smoke --out runs/ci-smoke

AVB's encoder is implicit: z = z_φ(x, ε) with noise ε ~ p(ε), a network of x and ε with no density. Its KL to the
prior is replaced by an adversary T(x, z) that tells (x, z ~ q_φ(z|x)) from (x, z ~ p(z)); at its optimum
T(x, z) = log q_φ(z|x) - log p(z). The model ascends eq. 3.3 of the paper, E_{p_D(x)} E_{q_φ(z|x)}[-T(x, z) +
log p_θ(x|z)], and T its own objective (eq. 3.2), with the encoder written as the definition `z = z_φ(x, ε)` in a
where clause (in the adversary's second term `z` is drawn from p(z) instead). Writes reconstructions.png (held-out
digits, AVB's and the VAE's reconstructions) into --out.
Metric: held-out reconstruction E_q[log p(x|z)] and the KL term (the VAE's in closed form, AVB's as E_q[T]), per
image, for both models.
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
from common import digits  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from vae import Decoder, Encoder, grid, save_picture  # noqa: E402

import formula as fm  # noqa: E402

WHERE = r" \quad \text{where} \quad z = z_\phi(x, \epsilon)"
# eq. 3.3 and eq. 3.2 of the paper, the expectation over q_φ(z|x) written over the encoder's noise
MODEL = (r"\mathbb{E}_{p_{\mathcal{D}}(x)}\left[\mathbb{E}_{\epsilon \sim p(\epsilon)}"
         r"\left[-T(x, z) + \log p_\theta(x \mid z)\right]\right]" + WHERE)
MODEL_ASCII = "E_{p_D(x)}[E_{epsilon ~ p(epsilon)}[-T(x, z) + log p_theta(x|z)]] where z = z_phi(x, epsilon)"
ADVERSARY = (r"\mathbb{E}_{p_{\mathcal{D}}(x)}\left[\mathbb{E}_{\epsilon \sim p(\epsilon)}[\log \sigma(T(x, z))]\right]"
             r" + \mathbb{E}_{p_{\mathcal{D}}(x)}\left[\mathbb{E}_{z \sim p(z)}[\log(1 - \sigma(T(x, z)))]\right]" + WHERE)
ADVERSARY_ASCII = ("E_{p_D(x)}[E_{epsilon ~ p(epsilon)}[log sigmoid(T(x, z))]] + E_{p_D(x)}[E_{z ~ p(z)}"
                   "[log(1 - sigmoid(T(x, z)))]] where z = z_phi(x, epsilon)")
RECONSTRUCTION = r"\mathbb{E}_{p_{\mathcal{D}}(x)}[\mathbb{E}_{\epsilon \sim p(\epsilon)}[\log p_\theta(x|z)]]" + WHERE
KL_BY_T = r"\mathbb{E}_{p_{\mathcal{D}}(x)}[\mathbb{E}_{\epsilon \sim p(\epsilon)}[T(x, z)]]" + WHERE
VAE = r"\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x \mid z)] - \mathrm{KL}(q_\phi(z|x) \,\|\, p(z))"


class ImplicitEncoder(nn.Module):
    """(x, ε) -> z: the AVB encoder, a sample of q_φ(z|x) for each noise ε."""

    def __init__(self, latent: int, noise: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(digits.SIDE ** 2 + noise, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, latent))

    def forward(self, x, eps):
        return self.net(torch.cat([x, eps], -1))


class Adversary(nn.Module):
    """(x, z) -> T(x, z), a logit kept within ±15 by a scaled tanh (log σ(T) and log(1 - σ(T)) stay finite in
    float32, and no region has a zero gradient, as a clamp would)."""

    def __init__(self, latent: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(digits.SIDE ** 2 + latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x, z):
        return 15.0 * torch.tanh(self.net(torch.cat([x, z], -1)) / 15.0)


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="epochs of model updates, per model")
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--noise", type=int, default=8, help="dimension of the encoder's noise ε")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parse_common(parser, argv, out="runs/avb")
    if args.device == "auto":
        args.device = "cpu"
    return args


def avb(args):
    """AVB's declarations: data, implicit encoder, decoder, adversary, noise and prior."""
    return [fm.Data("p_D(x)"), fm.Function(r"z_\phi(x, \epsilon)", net=ImplicitEncoder(args.latent, args.noise,
                                                                                          args.hidden)),
            fm.Bernoulli(r"p_\theta(x|z)", net=Decoder(args.latent, args.hidden)),
            fm.Function("T(x, z)", net=Adversary(args.latent, args.hidden)),
            fm.Normal(r"p(\epsilon)", loc=0.0, scale=1.0, shape=(args.noise,)),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,))]


def train(args, model: str, train_x: torch.Tensor):
    """One model; returns its declarations."""
    torch.manual_seed(args.seed)
    common = {"device": args.device, "batch_size": args.batch_size, "seed": args.seed, "progress": not args.smoke}
    if model == "AVB":
        decls = avb(args)
        game = fm.Game({"model": fm.compile(MODEL, decls), "T": fm.compile(ADVERSARY, decls)},
                       senses={"model": "max", "T": "max"})
        rule = fm.Alternating({"model": ["z_phi", "p_theta"], "T": ["T"]}, lr=args.lr)
        fm.Trainer(game, update=rule, **common).fit({"x": train_x}, epochs=2 * args.epochs)  # half are T's steps
    else:
        decls = [fm.Normal(r"q_\phi(z|x)", net=Encoder(args.latent, args.hidden)),
                 fm.Bernoulli(r"p_\theta(x|z)", net=Decoder(args.latent, args.hidden)),
                 fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,))]
        fm.Trainer(fm.compile(VAE, decls), maximize=True, lr=args.lr, **common).fit({"x": train_x}, epochs=args.epochs)
    return decls


def held_out(model: str, decls, x: torch.Tensor, seed: int) -> Dict[str, float]:
    """Held-out reconstruction and KL term per image, averaged over 10 draws."""
    if model == "AVB":
        terms = [fm.compile(RECONSTRUCTION, decls), fm.compile(KL_BY_T, decls)]
    else:
        terms = [fm.compile(r"\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)]", decls[:2]),
                 fm.compile(r"\mathrm{KL}(q_\phi(z|x) \| p(z))", [decls[0], decls[2]])]
    torch.manual_seed(seed)
    with torch.no_grad():
        rec, kl = (torch.stack([t(x=x).mean() for _ in range(10)]).mean().item() for t in terms)
    return {"reconstruction": rec, "KL": kl}


def reconstructions(models: Dict[str, list], x: torch.Tensor, path: Path) -> None:
    """Held-out digits, then AVB's and the VAE's reconstructions (noise 0, the posterior mean)."""
    rows = [x[:10]]
    with torch.no_grad():
        enc, dec = models["AVB"][1].net, models["AVB"][2].net
        noise = x.new_zeros(10, enc.net[0].in_features - x.shape[1])
        rows.append(torch.sigmoid(dec(enc(x[:10], noise))["logits"]))
        enc, dec = models["VAE"][0].net, models["VAE"][1].net
        rows.append(torch.sigmoid(dec(enc(x[:10])["loc"])["logits"]))
    save_picture(grid(torch.cat(rows), 3, 10), path, "held-out digits; AVB; VAE")


def main(argv=None) -> Dict[str, Dict[str, float]]:
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for latex, ascii_ in ((MODEL, MODEL_ASCII), (ADVERSARY, ADVERSARY_ASCII)):
        if not fm.equivalent(latex, ascii_):
            raise SystemExit(f"not equivalent:\n  {latex}\n  {ascii_}")
    print("model (eq. 3.3):", fm.pretty(MODEL), "adversary (eq. 3.2):", fm.pretty(ADVERSARY), sep="\n", end="\n\n")
    train_x, held_x = digits.load(seed=args.seed)
    results, models = {}, {}
    start = time.perf_counter()
    for model in ("AVB", "VAE"):
        models[model] = train(args, model, train_x)
        results[model] = held_out(model, models[model], held_x, args.seed)
    seconds = time.perf_counter() - start
    reconstructions(models, held_x, args.out / "reconstructions.png")
    print(f"trained both models ({args.epochs} epochs of model updates each) in {seconds:.1f} s; wrote "
          f"reconstructions.png to {args.out}")
    a, v = results["AVB"], results["VAE"]
    write_results(args.out, model="AVB", paper="Mescheder, Nowozin & Geiger 2017", formula=MODEL,
                  metric="held-out E_q[log p(x|z)] (nats/image)", value=a["reconstruction"],
                  vae_reconstruction=v["reconstruction"], kl_by_t=a["KL"], vae_kl=v["KL"])
    print(f"held-out per image: E_q[log p(x|z)] AVB {a['reconstruction']:.2f} vs VAE {v['reconstruction']:.2f}; "
          f"KL term (AVB: E_q[T]) AVB {a['KL']:.2f} vs VAE {v['KL']:.2f}")
    return results


if __name__ == "__main__":
    main()
