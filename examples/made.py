"""A MADE (Germain et al. 2015) on binarised 8x8 digits: exact likelihood, written as maximum likelihood.

    python examples/made.py                      # about 20 s of one idle CPU core
    python examples/made.py --smoke --out runs/ci-smoke

`p(x) = \\prod_{d=1}^{64} p(x_d | x_{<d})`, each conditional a Bernoulli whose logit comes from one masked network
(`fm.MADE`) that computes all 64 at once; `fm.Autoregressive` makes it a distribution, so `log p(x)` is exact in
one pass and the objective is the data's expected log-likelihood. Pixels are binarised at half intensity. The
baseline is the best factorised model, independent Bernoulli pixels fitted by maximum likelihood (the training
frequencies, add-one smoothed). Writes samples.png (64 passes a sample) into --out. Metric: the held-out NLL in
nats per image of both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import digits  # noqa: E402
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from common.spellings import check_spellings  # noqa: E402
from common.start import start  # noqa: E402
from vae import grid, save_picture  # noqa: E402

import formula as fm  # noqa: E402

LIKELIHOOD = r"\mathbb{E}_{\boldsymbol{x} \sim p_{\text{data}}(\boldsymbol{x})}[\log p_\theta(\boldsymbol{x})]"
LIKELIHOOD_ASCII = "E_{x ~ p_data(x)}[log p(x)]"


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512], help="hidden layer sizes of the MADE")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="Adam's weight decay (a small data set)")
    return parse_common(parser, argv, out="runs/made")


def binarised(seed: int):
    """(train, held-out) binarised digits `[n, 64]`: a pixel is 1 where its intensity is at least one half."""
    train, held = digits.load(seed=seed)
    return (train >= 0.5).float(), (held >= 0.5).float()


def factorised_nll(train: torch.Tensor, held: torch.Tensor) -> float:
    """Held-out NLL (nats per image) of independent Bernoulli pixels at the smoothed training frequencies."""
    probs = (train.sum(0) + 1) / (train.shape[0] + 2)
    baseline = fm.Bernoulli("b(x)", probs=probs)
    return -float(baseline.log_prob(x=held).mean())


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    check_spellings((LIKELIHOOD, LIKELIHOOD_ASCII))
    start(args)
    train, held = binarised(args.seed)
    made = fm.MADE(digits.SIDE**2, hidden=tuple(args.hidden))
    model = fm.Autoregressive("p_theta(x)", net=made, family=fm.Bernoulli)
    objective = fm.compile(LIKELIHOOD, [model, fm.Data("p_data(x)")])
    print(fm.pretty(LIKELIHOOD), end="\n\n")
    print(objective.explain(), end="\n\n")
    print(f"{train.shape[0]} training and {held.shape[0]} held-out binarised digits, MADE hidden {args.hidden}, "
          f"{args.epochs} epochs", flush=True)
    adam = lambda params: torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)  # noqa: E731
    trainer = fm.Trainer(objective, maximize=True, optimizer=adam, device=args.device, batch_size=args.batch_size,
                         seed=args.seed)
    began = time.perf_counter()
    trainer.fit({"x": train}, epochs=args.epochs, eval_data={"x": held})
    seconds = time.perf_counter() - began
    made_nll = -trainer.evaluate({"x": held})["objective"]
    base_nll = factorised_nll(train, held)
    print(f"\ntrained {trainer.step} steps in {seconds:.1f} s on {trainer.device}")
    with torch.no_grad():
        torch.manual_seed(args.seed)
        samples = model.sample((100,))["x"].cpu()
    save_picture(grid(samples, 10, 10), args.out / "samples.png", "MADE samples, 64 passes each")
    print(f"wrote samples.png to {args.out}")
    write_results(args.out, model="MADE", paper="Germain et al. 2015", formula=LIKELIHOOD,
                  metric="held-out NLL (nats/image)", value=made_nll, factorised_nll=base_nll)
    print(f"held-out NLL (nats per image): MADE {made_nll:.2f}, factorised Bernoulli {base_nll:.2f}")
    return {"made": made_nll, "factorised": base_nll}


if __name__ == "__main__":
    main()
