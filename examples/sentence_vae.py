"""A sentence VAE (Bowman et al. 2016) on a small committed corpus, written with the paper's bound.

    python examples/sentence_vae.py                      # about two minutes on one CPU core
    python examples/sentence_vae.py --smoke --out runs/ci-smoke

A GRU encoder gives q(z|x); a GRU decoder p(x_t|z, x_{<t}) over Categorical word tokens, declared as an
`fm.SequenceDecoder`, scores every word of a sentence in one call with teacher forcing (the sentence shifted right
behind <s>, z the GRU's initial state and an input at every step), with word dropout inside the net (training
only: a share of the words it reads become <unk>). The KL is annealed (β from 0 to 1, a schedule given to the
trainer), sentences of different lengths are padded and masked by their lengths (`T=`). The corpus is
examples/data/sentences.txt (Aesop's morals and short sentences in their manner, public domain).

Both models keep the epoch that is best on validation sentences; test sentences are scored at the end. Prints
reconstructions of test sentences (greedy decoding from the posterior mean), sentences sampled from the prior,
and a homotopy (decoding points on the line between the codes of two test sentences); writes curves.png
(validation reconstruction and KL per epoch) and metrics.json into --out. The last line is the test bound per
word (</s> included), against a unigram model and the same decoder trained without z (a GRU language model,
without word dropout).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common.cli import parse_common  # noqa: E402
from common.results import write_results  # noqa: E402
from common.spellings import check_spellings  # noqa: E402
from common.start import start  # noqa: E402

import formula as fm  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "data" / "sentences.txt"

# Bowman et al. (2016), eq. (2) with the decoder's product over words written out, and the KL weight β of their
# annealing (β = 1 is the bound itself).
BOUND = (r"\mathbb{E}_{q_\phi(z \mid x)}\left[\sum_{t=1}^{T} \log p_\theta(x_t \mid z, x_{<t})\right] - "
         r"\beta \, D_{KL}\left(q_\phi(z \mid x) \,\|\, p(z)\right)")
BOUND_ASCII = "E_{q(z|x)}[sum_{t=1}^{T} log p(x_t|z, x_{<t})] - beta KL(q(z|x) || p(z))"
LANGUAGE_MODEL = r"\sum_{t=1}^{T} \log p_\theta(x_t \mid x_{<t})"  # the baseline: the decoder without z

PAD, START, END, UNK = "<pad>", "<s>", "</s>", "<unk>"


# --- the corpus -------------------------------------------------------------------------------------------------


def read_corpus(path: Path = CORPUS) -> List[List[str]]:
    """The sentences of `path`, each a list of words (comment lines skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


class Vocabulary:
    """Word <-> id: <pad> 0, <s> 1, </s> 2, <unk> 3, then the training words by frequency."""

    def __init__(self, sentences: Sequence[Sequence[str]]):
        counts = Counter(w for s in sentences for w in s)
        self.words = [PAD, START, END, UNK] + sorted(counts, key=lambda w: (-counts[w], w))
        self.ids = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentences: Sequence[Sequence[str]], steps: int) -> Dict[str, torch.Tensor]:
        """`x` [n, steps]: each sentence's ids then </s>, padded with <pad>; `T` [n]: its length with </s>."""
        x = torch.full((len(sentences), steps), self.ids[PAD], dtype=torch.long)
        lengths = torch.zeros(len(sentences), dtype=torch.long)
        for i, s in enumerate(sentences):
            ids = [self.ids.get(w, self.ids[UNK]) for w in s][:steps - 1] + [self.ids[END]]
            x[i, :len(ids)] = torch.tensor(ids)
            lengths[i] = len(ids)
        return {"x": x, "T": lengths}

    def decode(self, ids: Sequence[int]) -> str:
        """The words up to </s> (or the end)."""
        words = []
        for i in ids:
            if int(i) == self.ids[END]:
                break
            words.append(self.words[int(i)])
        return " ".join(words)


def split(sentences: List[List[str]], held: int, seed: int) -> Tuple[List[List[str]], ...]:
    """(train, validation, test): `held` sentences each for validation and test, the rest for training."""
    order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(seed)).tolist()
    pick = lambda idx: [sentences[i] for i in idx]  # noqa: E731
    return pick(order[2 * held:]), pick(order[held:2 * held]), pick(order[:held])


# --- the networks -----------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """q(z|x): a GRU over the words; its state at each sentence's last token (</s>) gives the Normal's mean and
    scale."""

    def __init__(self, vocab: int, embed: int, hidden: int, latent: int):
        super().__init__()
        self.embed, self.gru = nn.Embedding(vocab, embed), nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2 * latent)

    def forward(self, x):
        states, _ = self.gru(self.embed(x))
        last = (x != 0).sum(1).clamp_min(1) - 1  # </s>: the last token that is not <pad>
        h = states[torch.arange(x.shape[0], device=x.device), last]
        loc, scale = self.head(h).chunk(2, -1)
        return {"loc": loc, "scale": nn.functional.softplus(scale) + 1e-4}


class Decoder(nn.Module):
    """p(x_t|z, x_{<t}) for every t at once: a GRU over the shifted words [<s>, x_1, ..., x_{T-1}] started from
    a state computed from z, with z also an input at every step; logits [batch, T, V]. Word dropout: while
    training, each word it reads (not <s>) is <unk> with probability `word_dropout`. Without z (`latent=0`) it is
    the GRU language model p(x_t|x_{<t})."""

    def __init__(self, vocab: int, embed: int, hidden: int, latent: int, word_dropout: float):
        super().__init__()
        self.latent, self.word_dropout = latent, word_dropout
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed + latent, hidden, batch_first=True)
        self.start = nn.Linear(latent, hidden) if latent else None
        self.head = nn.Linear(hidden, vocab)

    def forward(self, *args):
        z, x_in = args if self.latent else (None, args[0])
        if self.training and self.word_dropout > 0:
            drop = torch.rand(x_in.shape, device=x_in.device) < self.word_dropout
            drop[:, 0] = False  # the start token stays
            x_in = torch.where(drop, torch.full_like(x_in, 3), x_in)  # 3 is <unk>
        e = self.embed(x_in)
        h0 = None
        if z is not None:
            e = torch.cat([e, z[:, None].expand(-1, x_in.shape[1], -1)], -1)
            h0 = torch.tanh(self.start(z))[None].contiguous()
        out, _ = self.gru(e, h0)
        return self.head(out)


# --- the run ----------------------------------------------------------------------------------------------------


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--held-out", type=int, default=40,
                        help="sentences held out for validation, and as many for the test (the rest train)")
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--word-dropout", type=float, default=0.5)
    parser.add_argument("--warmup", type=float, default=0.5, help="share of the steps over which beta goes 0 -> 1")
    args = parse_common(parser, argv, "runs/sentence_vae", smoke_epochs=2)
    args.lr = args.lr if args.lr != 1e-3 else 3e-3
    return args


def build(args, vocab: int):
    """The declarations of the VAE and of the baseline language model, and their compiled bounds."""
    encoder = Encoder(vocab, args.embed, args.hidden, args.latent)
    decoder = Decoder(vocab, args.embed, args.hidden, args.latent, args.word_dropout)
    p = fm.SequenceDecoder(r"p_theta(x_t|z, x_{<t})", net=decoder, start=1)
    vae = fm.compile(BOUND, [fm.Normal("q_phi(z|x)", net=encoder), p,
                             fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(args.latent,))])
    lm = fm.SequenceDecoder(r"p_theta(x_t|x_{<t})", net=Decoder(vocab, args.embed, args.hidden, 0, 0.0), start=1)
    return {"encoder": encoder, "p": p, "lm": lm}, vae, fm.compile(LANGUAGE_MODEL, [lm])


def beta_schedule(total_steps: int, warmup: float):
    """KL annealing: β rises linearly from 0 to 1 over the first `warmup` share of the steps, then stays 1."""
    ramp = max(1, int(total_steps * warmup))
    return lambda step: min(1.0, step / ramp)


@torch.no_grad()
def held_out(vae, data: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """The held-out bound at β = 1: per sentence, per word (with </s>), and its reconstruction and KL terms."""
    vae.eval()
    total, terms = vae.evaluate(**data, beta=1.0)
    recon, kl = (v for v in terms.values())
    words = float(data["T"].sum())
    return {"elbo": float(total.mean()), "nll_per_word": -float(total.sum()) / words,
            "recon": float(recon.mean()), "kl": float(kl.mean())}


class Best:
    """The weights of the epoch with the lowest validation value (model selection for the VAE and the baseline
    alike; the test sentences are only scored at the end)."""

    def __init__(self):
        self.value, self.state, self.epoch, self.epochs = math.inf, None, 0, 0

    def offer(self, value: float, module: nn.Module) -> None:
        self.epochs += 1
        if value < self.value:
            self.value, self.epoch = value, self.epochs
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def restore(self, module: nn.Module) -> None:
        module.load_state_dict({k: v.to("cpu") for k, v in self.state.items()})


@torch.no_grad()
def language_model_nll(lm, data: Dict[str, torch.Tensor]) -> float:
    lm.eval()
    return -float(lm(**data).sum()) / float(data["T"].sum())


def unigram_nll(train: Dict[str, torch.Tensor], held: Dict[str, torch.Tensor], vocab: int) -> float:
    """Held-out NLL per word of add-one-smoothed training word frequencies (</s> included)."""
    mask = torch.arange(train["x"].shape[1])[None] < train["T"][:, None]
    counts = torch.bincount(train["x"][mask], minlength=vocab).double() + 1.0
    log_p = (counts / counts.sum()).log()
    hmask = torch.arange(held["x"].shape[1])[None] < held["T"][:, None]
    return -float(log_p[held["x"][hmask]].sum()) / float(held["T"].sum())


@torch.no_grad()
def codes(encoder, x: torch.Tensor) -> torch.Tensor:
    """The posterior means of q(z|x)."""
    encoder.eval()
    return encoder(x)["loc"]


def save_curves(history: List[Dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), dpi=100)
    axes[0].plot(epochs, [-h["recon"] for h in history], label="reconstruction -E[log p(x|z)]")
    axes[0].set(title="validation reconstruction (nats/sentence)", xlabel="epoch")
    axes[1].plot(epochs, [h["kl"] for h in history], color="C1")
    axes[1].set(title="validation KL(q(z|x) || p(z)) (nats)", xlabel="epoch")
    axes[2].plot(epochs, [h["beta"] for h in history], color="C2")
    axes[2].set(title="KL weight β (annealed)", xlabel="epoch", ylim=(-0.05, 1.05))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> Dict[str, float]:
    args = arguments(argv)
    check_spellings((BOUND, BOUND_ASCII))
    start(args)
    sentences = read_corpus()
    train_words, valid_words, test_words = split(sentences, args.held_out, args.seed)
    vocab = Vocabulary(train_words)
    steps = max(len(s) for s in sentences) + 1
    train, valid, held = (vocab.encode(w, steps) for w in (train_words, valid_words, test_words))
    if args.smoke:
        train = {k: v[:64] for k, v in train.items()}
    nets, vae, lm = build(args, len(vocab))
    print(vae, end="\n\n")
    print(vae.explain(), end="\n\n")
    per_epoch = math.ceil(train["x"].shape[0] / args.batch_size)
    beta = beta_schedule(per_epoch * args.epochs, args.warmup)
    trainer = fm.Trainer(vae, maximize=True, lr=args.lr, device=args.device, batch_size=args.batch_size,
                         seed=args.seed, inputs={"beta": beta}, progress=False, clip_grad_norm=5.0)
    valid_there = {k: v.to(trainer.device) for k, v in valid.items()}
    began = time.perf_counter()
    history, best = [], Best()
    for _ in range(args.epochs):
        trainer.fit(train, epochs=1)
        history.append({**held_out(vae, valid_there), "beta": beta(trainer.step)})
        best.offer(history[-1]["nll_per_word"], vae)
    vae_seconds = time.perf_counter() - began
    lm_trainer = fm.Trainer(lm, maximize=True, lr=args.lr, device=trainer.device, batch_size=args.batch_size,
                            seed=args.seed, progress=False, clip_grad_norm=5.0)
    lm_best = Best()
    for _ in range(args.epochs):
        lm_trainer.fit(train, epochs=1)
        lm_best.offer(language_model_nll(lm, valid_there), lm)
    seconds = time.perf_counter() - began
    best.restore(vae.cpu())
    lm_best.restore(lm.cpu())
    final = held_out(vae, held)
    lm_nll, unigram = language_model_nll(lm, held), unigram_nll(train, held, len(vocab))

    p, encoder = nets["p"], nets["encoder"]
    p.eval()
    torch.manual_seed(args.seed + 1)
    show = held["x"][:5]
    print("reconstructions of test sentences (greedy, from the posterior mean):")
    for x, out in zip(show, p.generate(z=codes(encoder, show), steps=steps, greedy=True, stop=2)):
        print(f"  {vocab.decode(x):45s} -> {vocab.decode(out)}")
    print("sentences from the prior (z ~ N(0, I), words drawn one by one):")
    for out in p.generate(z=torch.randn(5, args.latent), steps=steps, stop=2):
        print(f"  {vocab.decode(out)}")
    ends = codes(encoder, held["x"][5:7])
    path = torch.stack([(1 - a) * ends[0] + a * ends[1] for a in torch.linspace(0, 1, 5).tolist()])
    print(f"homotopy from '{vocab.decode(held['x'][5])}' to '{vocab.decode(held['x'][6])}' (greedy):")
    for a, out in zip(torch.linspace(0, 1, 5).tolist(), p.generate(z=path, steps=steps, greedy=True, stop=2)):
        print(f"  {a:4.2f}  {vocab.decode(out)}")

    save_curves(history, args.out / "curves.png")
    value = final["nll_per_word"]
    write_results(args.out, model="Sentence VAE", paper="Bowman et al. 2016", formula=BOUND,
                  metric="held-out -ELBO (nats/word)", value=value, kl=final["kl"], elbo=final["elbo"],
                  language_model=lm_nll, unigram=unigram, sentences=len(sentences), vocabulary=len(vocab),
                  epoch=best.epoch, language_model_epoch=lm_best.epoch, recon=final["recon"])
    print(f"trained the VAE ({trainer.step} steps) in {vae_seconds:.1f} s and the baseline language model in "
          f"{seconds - vae_seconds:.1f} s on {trainer.device}; kept the epochs best on the validation sentences "
          f"({best.epoch} and {lm_best.epoch} of {args.epochs}); wrote curves.png and metrics.json to {args.out}")
    print(f"held-out -ELBO: {value:.3f} nats per word (KL {final['kl']:.2f} nats per sentence), against a GRU "
          f"language model without z {lm_nll:.3f} and a unigram model {unigram:.3f}")  # the metric, last
    return final


if __name__ == "__main__":
    main()
