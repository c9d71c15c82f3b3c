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
        # the combiner draws z_t from z_{t-1}: one call per step; the emission log p(x_t|z_t) and the KL's prior
        # p(z_t|z_{t-1}) read values kept from the steps: one batched call each over [T, batch]
        assert counts == {"combiner": T, "transition": 1, "emitter": 1}


def dmm_by_hand(comb, trans, emit, x, z0):
    """The DMM ELBO written out: a loop over t drawing z_t, adding log p(x_t|z_t) - KL(q || p(z_t|z_{t-1}))."""
    z, total = z0, 0.0
    for t in range(x.shape[1]):
        q, p = comb(z, x[:, t]), trans(z)
        q = torch.distributions.Normal(q["loc"], q["scale"])
        z_new = q.rsample()
        rec = torch.distributions.Bernoulli(logits=emit(z_new)["logits"]).log_prob(x[:, t]).sum(-1)
        total = total + rec - torch.distributions.kl_divergence(
            q, torch.distributions.Normal(p["loc"], p["scale"])).sum(-1)
        z = z_new
    return total


def test_dmm_batched_emission_matches_the_loop_by_hand():
    comb, trans, emit, decls = dmm_decls()
    obj = fm.compile(DMM, decls)
    x, z0 = torch.bernoulli(torch.full((4, 6, X), 0.5)), torch.zeros(4, Z)
    params = list(obj.parameters())
    for _ in range(2):  # the validating first call and a plain one
        torch.manual_seed(3)
        value = obj(x=x, z_0=z0)
        grads = torch.autograd.grad(value.sum(), params)
        torch.manual_seed(3)
        expected = dmm_by_hand(comb, trans, emit, x, z0)
        expected_grads = torch.autograd.grad(expected.sum(), params)
        torch.testing.assert_close(value, expected)
        for g, e in zip(grads, expected_grads):
            torch.testing.assert_close(g, e)


def test_dmm_plan_says_the_emission_and_the_kl_are_batched():
    *_, decls = dmm_decls()
    plan = fm.compile(DMM, decls).explain()
    assert "its body for every t at once after the draws" in plan
    assert "for every t at once after the loop" in plan


def test_kl_falls_back_to_per_step_when_the_left_side_does_not_stack():
    """A Bernoulli posterior is not registered as stackable: its KL is taken step by step from the kept values
    (the prior's net once per step), with the loop's value by hand."""
    torch.manual_seed(0)
    comb, trans, emit = Logits(Z + X, Z), Logits(Z, Z), Logits(Z)
    counts = counted(transition=trans)
    obj = fm.compile(r"\sum_{t=1}^{T} E_{q(z_t|z_{t-1},x_t)}[\log p(x_t|z_t)] - KL(q(z_t|z_{t-1},x_t) \| "
                     r"p(z_t|z_{t-1}))",
                     [fm.Bernoulli("q(z_t|z_{t-1},x_t)", net=comb), fm.Bernoulli("p(z_t|z_{t-1})", net=trans),
                      fm.Bernoulli("p(x_t|z_t)", net=emit)])
    x, z0 = torch.bernoulli(torch.full((3, 4, X), 0.5)), torch.zeros(3, Z)
    torch.manual_seed(1)
    value = obj(x=x, z_0=z0)
    assert counts == {"transition": 4}
    torch.manual_seed(1)
    z, expected = z0, 0.0
    for t in range(4):
        q = torch.distributions.Bernoulli(logits=comb(z, x[:, t])["logits"])
        p = torch.distributions.Bernoulli(logits=trans(z)["logits"])
        z = q.sample()
        rec = torch.distributions.Bernoulli(logits=emit(z)["logits"]).log_prob(x[:, t]).sum(-1)
        expected = expected + rec - torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(value, expected)


def test_a_body_reading_the_previous_step_stays_per_step():
    """log p(x_t|z_{t-1}) reads another step's draw: evaluated at each step, as before."""
    torch.manual_seed(0)
    comb, emit = Gaussian(Z + X), Logits(Z)
    counts = counted(combiner=comb, emitter=emit)
    obj = fm.compile(r"\sum_{t=1}^{T} E_{q(z_t|z_{t-1},x_t)}[\log p(x_t|z_{t-1})]",
                     [fm.Normal("q(z_t|z_{t-1},x_t)", net=comb), fm.Bernoulli("p(x_t|z_{t-1})", net=emit)])
    assert "at once" not in obj.explain()
    obj(x=torch.bernoulli(torch.full((3, 5, X), 0.5)), z_0=torch.zeros(3, Z))
    assert counts == {"combiner": 5, "emitter": 5}


def test_nested_step_sums_call_a_net_once_per_distinct_condition():
    """sum_t sum_{s<=t} log p(x_s|z): T(T+1)/2 log-densities, but p(x_s|z) is one distribution for every s (its
    net sees only z), so the decoder runs once, not once per s nor T^2 times; the value is the double loop's."""
    torch.manual_seed(0)
    enc, dec = Gaussian(X), Logits(Z)
    counts = counted(encoder=enc, decoder=dec)
    obj = fm.compile(r"E_{q(z|y)}[\sum_{t=1}^{T} \sum_{s=1}^{t} \log p(x_s|z)]",
                     [fm.Normal("q(z|y)", net=enc), fm.Bernoulli("p(x_s|z)", net=dec)])
    x = torch.bernoulli(torch.full((3, 6, X), 0.5))
    torch.manual_seed(2)
    value = obj(x=x, y=x[:, 0])
    assert counts == {"encoder": 1, "decoder": 1}
    torch.manual_seed(2)
    q = enc(x[:, 0])
    z = torch.distributions.Normal(q["loc"], q["scale"]).rsample()
    p = torch.distributions.Bernoulli(logits=dec(z)["logits"])
    expected = sum(p.log_prob(x[:, s]).sum(-1) for t in range(6) for s in range(t + 1))
    torch.testing.assert_close(value, expected)


@pytest.mark.parametrize("samples", [1, 2])
def test_a_batched_body_that_is_the_same_at_every_step_counts_every_step(samples):
    """`E_q[1]` and `E_q[beta]` under a step sum do not vary along the steps: T times the value, per example (the
    batched evaluation returned a number with no step dimension to sum: a crash the compile fuzz found)."""
    _, _, _, decls = dmm_decls()
    x = torch.bernoulli(torch.full((3, 4, X), 0.5))
    ones = fm.compile(r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x_t)}[1]", decls[:1], samples=samples)
    torch.testing.assert_close(ones(x=x, z_0=torch.zeros(3, Z)), torch.full((3,), 4.0))
    beta = fm.compile(r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x_t)}[\beta]", decls[:1], samples=samples)
    b = torch.tensor([0.5, 1.0, 2.0])
    torch.testing.assert_close(beta(x=x, z_0=torch.zeros(3, Z), beta=b), 4 * b)
