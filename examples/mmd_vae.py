"""InfoVAE / MMD-VAE (Zhao, Song and Ermon, 2017) on scikit-learn's 8x8 digits, against the plain VAE of the same size.

    python examples/mmd_vae.py                   # about a minute on 2 CPU cores (both models)
    python examples/mmd_vae.py --smoke --out runs/ci-smoke

The objective is InfoVAE's (eq. 6 of the paper) as the paper writes it, with alpha and lambda as inputs:

    E_{p_D(x)} E_{q(z|x)}[log p(x|z)] - (1 - alpha) E_{p_D(x)} KL(q(z|x) || p(z)) - (alpha + lambda - 1) D(q(z) || p(z))

with D the MMD. alpha = 1 is the MMD-VAE (no per-example KL; the aggregate posterior is pulled to the prior with
weight lambda); alpha = 0, lambda = 1 is the plain VAE's ELBO (the MMD's weight is zero), so both models are the same
compiled formula with different inputs. The paper's q_phi(z) is the aggregate posterior: the MMD is written over the
declared encoder q_phi(z|x), whose draws for a batch (one per example) are draws from q_phi(z).

Prints the formula and its plan, trains both models, prints for each the held-out reconstruction E_q[log p(x|z)]
(nats per image), the held-out KL and the held-out MMD^2 between the aggregate posterior and the prior (inverse
multiquadratic kernel with fixed C = 2 * latent, so that both models are measured with the same kernel), and writes
samples.png, reconstructions.png and loss.png into --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits  # noqa: E402
from common import figures  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from vae import Decoder, Encoder, grid, save_picture  # noqa: E402

import formula as fm  # noqa: E402

INFOVAE = (r"\mathbb{E}_{p_{\mathcal{D}}(x)}\left[\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)]\right]"
           r" - (1 - \alpha)\, \mathbb{E}_{p_{\mathcal{D}}(x)}\left[D_{KL}(q_\phi(z|x) \,\|\, p(z))\right]"
           r" - (\alpha + \lambda - 1)\, \mathrm{MMD}(q_\phi(z|x) \,\|\, p(z))")
INFOVAE_ASCII = ("E_p_D(x)[E_q_phi(z|x)[log p_theta(x|z)]] - (1 - alpha) E_p_D(x)[KL(q_phi(z|x) || p(z))]"
                 " - (alpha + lambda - 1) MMD(q_phi(z|x) || p(z))")
HELD_OUT_MMD = r"\mathrm{MMD}_{imq}(q_\phi(z|x) \| p(z))"  # fixed-scale kernel: comparable across models
RECONSTRUCTION, KL = "E_{p_D(x)}[E_{q_{phi}(z|x)}[log p_{theta}(x|z)]]", "KL(q_{phi}(z|x) || p(z))"
MODELS = {"VAE": {"alpha": 0.0, "lambda": 1.0}, "MMD-VAE": {"alpha": 1.0}}  # MMD-VAE's lambda: --lam


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="per model")
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128, help="also the size of the MMD's sample sets")
    parser.add_argument("--lam", type=float, default=100.0, help="the MMD-VAE's lambda (weight of the MMD)")
    parser.add_argument("--kernel", default="rbf", help="the training MMD's kernel, a subscript: rbf, imq")
    return parse_common(parser, argv, out="runs/mmd_vae")


def infovae(kernel: str) -> str:
    """The InfoVAE formula with the MMD's kernel named in its subscript (none for the default RBF)."""
    return INFOVAE if kernel == "rbf" else INFOVAE.replace(r"\mathrm{MMD}(", rf"\mathrm{{MMD}}_{{{kernel}}}(")


def declarations(args):
    """The data, encoder, decoder and prior of one model (fresh networks)."""
    data = fm.Data("p_D(x)")
    q = fm.Normal("q_phi(z|x)", net=Encoder(args.latent, args.hidden))
    p = fm.Bernoulli("p_theta(x|z)", net=Decoder(args.latent, args.hidden))
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,))
    return data, q, p, prior


def train(name: str, settings: dict, args, train_x, held_x):
    """Train one model; return its trainer, declarations and history."""
    torch.manual_seed(args.seed)
    decls = declarations(args)
    objective = fm.compile(infovae(args.kernel), decls)
    trainer = fm.Trainer(objective, maximize=True, optimizer="adam", lr=args.lr, device=args.device,
                         batch_size=args.batch_size, seed=args.seed, inputs=settings)
    print(f"\n{name}: alpha = {settings['alpha']:g}, lambda = {settings['lambda']:g}", flush=True)
    history = trainer.fit({"x": train_x}, epochs=args.epochs, eval_data={"x": held_x})
    return trainer, decls, history


def held_out_metrics(trainer, decls, held_x, seed: int) -> dict:
    """Held-out reconstruction and KL (means per image) and MMD^2 of the whole held-out set's aggregate posterior
    against the prior (IMQ kernel), averaged over 10 sets of draws."""
    final = trainer.evaluate({"x": held_x})
    _, q, _, prior = decls
    mmd = fm.compile(HELD_OUT_MMD, [q, prior])
    x = held_x.to(trainer.device)
    torch.manual_seed(seed)
    with torch.no_grad():
        mmd2 = torch.stack([mmd(x=x).mean() for _ in range(10)]).mean().item()
    kl = fm.compile("KL(q_phi(z|x) || p(z))", [q, prior])
    with torch.no_grad():
        kl_mean = kl(x=x).mean().item()
    return {"reconstruction": final[f"term/{RECONSTRUCTION}"], "KL": kl_mean, "MMD": mmd2}


def save_comparison(decoders, encoders, held_x, latent: int, seed: int, out: Path) -> None:
    """samples.png and reconstructions.png: the two models side by side."""
    z = torch.randn(50, latent, generator=torch.Generator().manual_seed(seed))
    originals = held_x[:25]
    samples, recons = [], [originals]
    with torch.no_grad():
        for name in MODELS:
            dec, enc = decoders[name], encoders[name]
            device = next(dec.parameters()).device
            samples.append(torch.sigmoid(dec(z.to(device))["logits"]).cpu())
            recons.append(torch.sigmoid(dec(enc(originals.to(device))["loc"])["logits"]).cpu())
    names = " | ".join(MODELS)
    save_picture(grid(torch.cat(samples), 10, 10), out / "samples.png",
                 f"mean of p(x|z), z ~ p(z): {names} (5 rows each)")
    rows = torch.stack([r.reshape(5, 5, -1) for r in recons], 1).reshape(75, -1)
    save_picture(grid(rows, 15, 5), out / "reconstructions.png", "held-out digits; below: " + names)


def save_curves(histories: dict, path: Path) -> None:
    """The held-out reconstruction term per epoch of each model."""
    fig, ax = figures.pyplot().subplots(figsize=(6, 4), dpi=100)
    for name, history in histories.items():
        for key, style in ((f"term/{RECONSTRUCTION}", "-"), (f"eval/term/{RECONSTRUCTION}", "--")):
            values = history[key]
            ax.plot(range(1, len(values) + 1), values, style, label=f"{name} {'held-out' if 'eval' in key else 'train'}")
    ax.set(title="E_q[log p(x|z)]", xlabel="epoch", ylabel="nats per image")
    figures.finish(fig, [ax], path)


def main(argv=None) -> dict:
    if not fm.equivalent(INFOVAE, INFOVAE_ASCII):
        raise SystemExit("the LaTeX and the ASCII spellings of InfoVAE must be the same formula")
    args = arguments(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(fm.pretty(INFOVAE), end="\n\n")
    print(fm.compile(infovae(args.kernel), declarations(args)).explain())

    train_x, held_x = digits.load(seed=args.seed)
    print(f"\n{train_x.shape[0]} training and {held_x.shape[0]} held-out digits, latent {args.latent}, "
          f"{args.epochs} epochs per model")
    results, histories, decoders, encoders = {}, {}, {}, {}
    start = time.perf_counter()
    for name, settings in MODELS.items():
        settings = {"lambda": args.lam, **settings}
        trainer, decls, histories[name] = train(name, settings, args, train_x, held_x)
        results[name] = held_out_metrics(trainer, decls, held_x, args.seed)
        encoders[name], decoders[name] = decls[1].net, decls[2].net
    seconds = time.perf_counter() - start

    print(f"\ntrained both models in {seconds:.1f} s; held-out, per image:")
    print(f"  {'model':<8} {'E_q[log p(x|z)]':>16} {'KL(q(z|x)||p(z))':>17} {'MMD^2_imq(q(z)||p(z))':>22}")
    for name, r in results.items():
        print(f"  {name:<8} {r['reconstruction']:16.3f} {r['KL']:17.3f} {r['MMD']:22.5f}")
    save_comparison(decoders, encoders, held_x, args.latent, args.seed, args.out)
    save_curves(histories, args.out / "loss.png")
    print(f"wrote samples.png, reconstructions.png and loss.png to {args.out}")
    vae, mmd = results["VAE"], results["MMD-VAE"]
    write_results(args.out, model="InfoVAE / MMD-VAE", paper="Zhao, Song & Ermon 2017", formula=INFOVAE,
                  metric="held-out E_q[log p(x|z)] (nats/image)", value=mmd["reconstruction"],
                  vae_reconstruction=vae["reconstruction"], mmd=mmd["MMD"], vae_mmd=vae["MMD"])
    print(f"held-out reconstruction: MMD-VAE {mmd['reconstruction']:.2f} vs VAE {vae['reconstruction']:.2f} nats "
          f"per image; MMD^2(q(z) || p(z)): MMD-VAE {mmd['MMD']:.4f} vs VAE {vae['MMD']:.4f}")
    return results


if __name__ == "__main__":
    main()
