"""Contract cases for models of scenes (issue 12, item 10): GQN, whose representation is a sum over a varying
number of context views (`[batch, N_max, ...]` with `N=` the counts), against a hand-written masked sum and ELBO;
and a conditional DRAW (examples/draw.py's formula: state lines over T canvas steps, the caption read by the
decoder, the prior on h^{dec}_{t-1}), against a hand-written DRAW loop."""

from __future__ import annotations

import torch
from torch.distributions import kl_divergence

import formula as fm
from contract.cases import Declarations, Inputs, case
from example_loader import load_example
from test_set_sums import GQN, Gauss, Rep, R, V, X, Z, data, normal


def _gqn() -> Declarations:
    torch.manual_seed(0)
    return (fm.Function("f(x, v)", net=Rep()), fm.Normal("q(z|x^q, r, v^q)", net=Gauss(X + R + V)),
            fm.Normal("p(z|r, v^q)", net=Gauss(R + V)), fm.Normal("p(x^q|z, r, v^q)", net=Gauss(Z + R + V, X)))


def _gqn_inputs() -> Inputs:
    x, v, counts, xq, vq = data(seed=8)
    return {"x": x, "v": v, "N": counts, "x^q": xq, "v^q": vq}


def _gqn_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    f, q, p, dec = (d.net for d in decls)
    x, v, counts, xq, vq = (inputs[k] for k in ("x", "v", "N", "x^q", "v^q"))
    rows = []
    for b in range(x.shape[0]):  # each example's own views, one by one
        r = torch.zeros(R, dtype=x.dtype, device=x.device)
        for i in range(int(counts[b])):
            r = r + torch.tanh(f.lin(torch.cat([x[b, i], v[b, i]], -1)))
        rows.append(r)
    r = torch.stack(rows)
    post = normal(q(xq, r, vq))
    return normal(dec(post.rsample(), r, vq)).log_prob(xq) - kl_divergence(post, normal(p(r, vq)))


case("gqn", GQN, inputs=_gqn_inputs, draws=["z"], reference=_gqn_ref)(_gqn)


# --- conditional DRAW: recurrent states (formula.check.recurrent) over T canvas steps, a prior on h^{dec}_{t-1} ----

DRAW = load_example("draw").DRAW  # the example's formula, as the paper writes it
D, Y, ZD, H, STEPS = 6, 3, 2, 5, 3


class _Cell(torch.nn.Module):
    """An RNN step: a GRU cell over the concatenated inputs, the previous state first."""

    def __init__(self, n_in: int):
        super().__init__()
        self.cell = torch.nn.GRUCell(n_in, H)

    def forward(self, h, *inputs):
        return self.cell(torch.cat(inputs, -1), h)


def _read(x, error, h_dec):
    return torch.cat([x, error], -1)


def _draw() -> Declarations:
    torch.manual_seed(0)
    return (fm.Function("read(x, e, h)", net=_read), fm.Function("RNN^{enc}(h, v)", net=_Cell(2 * D + H)),
            fm.Function("RNN^{dec}(h, z, y)", net=_Cell(ZD + Y)), fm.Function("write(h)", net=torch.nn.Linear(H, D)),
            fm.Initial("h^{enc}_0", size=(H,)), fm.Initial("h^{dec}_0", size=(H,)), fm.Initial("c_0", size=(D,)),
            fm.Normal("Q(z_t|h^{enc}_t)", net=Gauss(H, ZD)), fm.Normal("P(z_t|h^{dec}_{t-1})", net=Gauss(H, ZD)),
            fm.Bernoulli("D(x|c)", net=lambda c: {"logits": c}))


def _draw_inputs() -> Inputs:
    g = torch.Generator().manual_seed(9)
    return {"x": torch.rand(5, D, generator=g).round(), "y": torch.eye(Y)[torch.randint(Y, (5,), generator=g)],
            "T": STEPS}


def _draw_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    """DRAW's loop (Gregor et al. 2015, eqs. 3-12) with the caption read by the decoder: the error image, read,
    encode, z_t ~ Q(z_t|h^enc_t), the KL to P(z_t|h^dec_{t-1}), decode, write; then -log D(x|c_T)."""
    enc, dec, write, q, prior = decls[1].net, decls[2].net, decls[3].net, decls[7].net, decls[8].net
    x, y = inputs["x"], inputs["y"]
    h_enc, h_dec, c = (torch.zeros(x.shape[0], n, dtype=x.dtype, device=x.device) for n in (H, H, D))
    kl = 0.0
    for _ in range(inputs["T"]):
        h_enc = enc(h_enc, _read(x, x - torch.sigmoid(c), h_dec), h_dec)
        post = normal(q(h_enc))
        z = post.rsample()
        kl = kl + kl_divergence(post, normal(prior(h_dec)))
        h_dec = dec(h_dec, z, y)
        c = c + write(h_dec)
    return -torch.distributions.Bernoulli(logits=c).log_prob(x).sum(-1) + kl


case("draw", DRAW, inputs=_draw_inputs, draws=["z_t"], reference=_draw_ref)(_draw)
