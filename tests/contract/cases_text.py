"""Contract cases for text (issue 12, item 5): the sentence VAE of Bowman et al. (2016), a GRU encoder and a
teacher-forced GRU decoder over Categorical tokens (`fm.SequenceDecoder`, one net call for the whole sum), with
sequences of different lengths (`T=` the lengths), against the hand-written PyTorch bound at the same draws."""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

import formula as fm
from contract.cases import B, Declarations, Inputs, case
from test_teacher_forcing import D, START, V, Decoder, Encoder

STEPS = 6
SENTENCE_VAE = r"E_{q(z|x)}[\sum_{t=1}^{T} \log p(x_t|z, x_{<t})] - \beta KL(q(z|x) \| p(z))"


def _sentences() -> Inputs:
    g = torch.Generator().manual_seed(8)
    lengths = torch.randint(1, STEPS + 1, (B,), generator=g)
    x = torch.randint(1, V, (B, STEPS), generator=g)
    x = torch.where(torch.arange(STEPS)[None] < lengths[:, None], x, torch.zeros_like(x))  # padded with 0
    return {"x": x, "T": lengths, "beta": 0.5}


def _sentence_vae() -> Declarations:
    torch.manual_seed(0)
    return (fm.Normal("q(z|x)", net=Encoder()), fm.SequenceDecoder("p(x_t|z, x_{<t})", net=Decoder(), start=START),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(D,)))


def _sentence_vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, _ = decls
    x, lengths = inputs["x"], inputs["T"]
    post = Independent(Normal(**q.net(x)), 1)
    z = post.rsample()
    x_in = torch.cat([torch.full((x.shape[0], 1), START, dtype=torch.long), x[:, :-1]], 1)
    log_p = Categorical(logits=p.net(z, x_in)).log_prob(x)  # [batch, T]
    mask = torch.arange(1, x.shape[1] + 1)[None] <= lengths[:, None]
    std = Independent(Normal(torch.zeros(D, dtype=z.dtype), torch.ones(D, dtype=z.dtype)), 1)
    return (log_p * mask).sum(1) - inputs["beta"] * kl_divergence(post, std)


case("sentence-vae", SENTENCE_VAE, inputs=_sentences, draws=["z"], reference=_sentence_vae_ref,
     skip={"fullgraph": "Dynamo does not capture nn.GRU in one graph (it breaks the graph at RNN modules)"})(
    _sentence_vae)
