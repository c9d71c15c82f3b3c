"""How many times each network runs per call: a use memoised within a call runs its net once (IWAE's encoder gives
the draws and their log q), and a time sum's steps cost one net call per step, never T^depth.

Counted with forward hooks on the networks, so the counts are exact and independent of the machine's load."""

import collections

import pytest
import torch

import formula as fm
from models import Gaussian, Logits, X, Z, binary

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
IWAE = (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} "
        r"\frac{p(x,z_k)}{q(z_k|x)}\right]")
DMM = (r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x_t)}[\log p(x_t|z_t)] "
       r"- D_{KL}(q(z_t|z_{t-1},x_t) \| p(z_t|z_{t-1}))")


def counted(**nets):
    """The nets with a shared counter of their forward calls, by name."""
    counts = collections.Counter()
    for name, net in nets.items():
        net.register_forward_hook(lambda module, args, out, name=name: counts.update([name]))
    return counts


def vae_decls():
    torch.manual_seed(0)
    enc, dec = Gaussian(X), Logits(Z)
    return enc, dec, [fm.Normal("q(z|x)", net=enc), fm.Bernoulli("p(x|z)", net=dec),
                      fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,))]


def test_vae_runs_each_net_once():
    enc, dec, decls = vae_decls()
    counts = counted(encoder=enc, decoder=dec)
    obj = fm.compile(VAE, decls)
    for _ in range(4):  # the validating first calls and the plain ones alike
        counts.clear()
        obj(x=binary(5)).sum().backward()
        assert counts == {"encoder": 1, "decoder": 1}


@pytest.mark.parametrize("k", [1, 5, 50])
def test_iwae_runs_the_encoder_once_for_the_draws_and_log_q(k):
    enc, dec, decls = vae_decls()
    counts = counted(encoder=enc, decoder=dec)
    obj = fm.compile(IWAE, decls)
    for _ in range(4):
        counts.clear()
        value = obj(x=binary(5), K=k)
        assert value.shape == (5,)
        assert counts == {"encoder": 1, "decoder": 1}  # the decoder once on all K draws [K, batch, z]


def test_samples_share_one_batched_call():
    enc, dec, decls = vae_decls()
    counts = counted(encoder=enc, decoder=dec)
    obj = fm.compile(VAE, decls, samples=7)
    for _ in range(2):
        counts.clear()
        assert obj(x=binary(5)).shape == (5,)
        assert counts == {"encoder": 1, "decoder": 1}


def test_iwae_with_samples_is_one_batched_call():
    enc, dec, decls = vae_decls()
    counts = counted(encoder=enc, decoder=dec)
    obj = fm.compile(IWAE, decls, samples=3)
    counts.clear()
    assert obj(x=binary(5), K=4).shape == (5,)
    assert counts == {"encoder": 1, "decoder": 1}


def dmm_decls():
    torch.manual_seed(0)
    comb, trans, emit = Gaussian(Z + X), Gaussian(Z), Logits(Z)
    return comb, trans, emit, [fm.Normal("q(z_t|z_{t-1},x_t)", net=comb), fm.Normal("p(z_t|z_{t-1})", net=trans),
                               fm.Bernoulli("p(x_t|z_t)", net=emit)]


@pytest.mark.parametrize("T", [1, 4, 9])
def test_dmm_costs_one_sequential_call_per_step(T):
    comb, trans, emit, decls = dmm_decls()
    counts = counted(combiner=comb, transition=trans, emitter=emit)
    obj = fm.compile(DMM, decls)
    x = torch.bernoulli(torch.full((3, T, X), 0.5))
    for _ in range(4):
        counts.clear()
        obj(x=x, z_0=torch.zeros(3, Z)).sum().backward()
        # the combiner draws z_t from z_{t-1}: one call per step; the rest never more than once per step
        assert counts["combiner"] == T
        assert counts["transition"] <= T and counts["emitter"] <= T
