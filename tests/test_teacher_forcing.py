"""Autoregressive sequence decoders with teacher forcing (issue 12, item 5): `\\sum_{t=1}^{T} \\log p(x_t|z, x_{<t})`
of a `fm.SequenceDecoder` is ONE call of its net on x shifted right behind the start token, equal to the same net
run on every prefix by hand; lengths (`T=` a `[batch]` tensor) and padding mask the steps past the end; generation
runs token by token like a hand-written loop at the same seed; misuses are errors with a caret."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal, kl_divergence

import formula as fm

B, T, V, D, START, PAD = 4, 6, 7, 3, 0, 6
SUM = r"\sum_{t=1}^{T} \log p(x_t|z, x_{<t})"
VAE = r"E_{q(z|x)}[\sum_{t=1}^{T} \log p(x_t|z, x_{<t})] - KL(q(z|x) \| p(z))"


class Decoder(nn.Module):
    """A GRU over the shifted tokens with z at every step (causal); counts its calls and records the shapes."""

    def __init__(self, vocab=V, latent=D, hidden=8):
        super().__init__()
        self.emb, self.gru = nn.Embedding(vocab, 5), nn.GRU(5 + latent, hidden, batch_first=True)
        self.out, self.calls, self.seen = nn.Linear(hidden, vocab), 0, []

    def forward(self, z, x_in):
        self.calls += 1
        self.seen.append((tuple(z.shape), tuple(x_in.shape)))
        e = torch.cat([self.emb(x_in), z[:, None].expand(-1, x_in.shape[1], -1)], -1)
        return self.out(self.gru(e)[0])


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.gru, self.lin = nn.Embedding(V, 5), nn.GRU(5, 8, batch_first=True), nn.Linear(8, 2 * D)

    def forward(self, x):
        h = self.lin(self.gru(self.emb(x))[1][-1])
        return {"loc": h[:, :D], "scale": nn.functional.softplus(h[:, D:]) + 1e-3}


def decoder(**options):
    torch.manual_seed(0)
    return fm.SequenceDecoder("p(x_t|z, x_{<t})", net=Decoder(), start=START, **options)


def tokens(seed=1):
    return torch.randint(1, V - 1, (B, T), generator=torch.Generator().manual_seed(seed))


def latent(seed=2):
    return torch.randn(B, D, generator=torch.Generator().manual_seed(seed))


def step_by_step(net, z, x, upto=None):
    """`log p(x_t | z, x_{<t})` for t = 1..T by hand: the net run on [start, x_1..x_{t-1}] for every t, its last
    row: [batch, T]."""
    out = []
    for t in range(1, x.shape[1] + 1):
        prefix = torch.cat([torch.full((x.shape[0], 1), START, dtype=torch.long), x[:, :t - 1]], 1)
        out.append(Categorical(logits=net(z, prefix)[:, -1]).log_prob(x[:, t - 1]))
    return torch.stack(out, 1)


def test_the_teacher_forced_sum_equals_the_net_run_on_every_prefix_by_hand():
    p = decoder()
    obj = fm.compile(SUM, [p], validate=False)
    x, z = tokens(), latent()
    value = obj(x=x, z=z)
    assert p.net.seen == [((B, D), (B, T))]  # one call, on the whole shifted sequence
    torch.testing.assert_close(value, step_by_step(p.net, z, x).sum(1))


def test_it_equals_the_per_step_declaration_over_prefix_slices_with_its_gradients():
    """The same net declared per step (fm.Categorical on x_{<t}, T calls) gives the same value and gradients."""
    p = decoder()
    per_step = fm.Categorical("p(x_t|z, x_{<t})", net=lambda z, prefix: {"logits": p.net(
        z, torch.cat([torch.full((prefix.shape[0], 1), START, dtype=torch.long), prefix.long()], 1))[:, -1]})
    x, z = tokens(), latent()
    grads = []
    for decl in (p, per_step):
        p.net.zero_grad()
        fm.compile(SUM, [decl])(x=x, z=z).sum().backward()
        grads.append([w.grad.clone() for w in p.net.parameters()])
    p.net.calls = 0
    a, b = fm.compile(SUM, [p], validate=False)(x=x, z=z), fm.compile(SUM, [per_step], validate=False)(x=x, z=z)
    torch.testing.assert_close(a, b)
    assert p.net.calls == 1 + T
    for g, h in zip(*grads):
        torch.testing.assert_close(g, h)


@pytest.mark.parametrize("validate", [False, True])
def test_the_net_is_called_once_per_objective_call(validate):
    """Once per call; a validating call (the first three, then one in a hundred) runs it once more to check
    that it is causal."""
    p = decoder()
    obj = fm.compile(VAE, [fm.Normal("q(z|x)", net=Encoder()), p, fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(D,))],
                     validate=validate)
    x, counts = tokens(), []
    for _ in range(6):
        before = p.net.calls
        obj(x=x)
        counts.append(p.net.calls - before)
    assert counts == ([2, 2, 2, 1, 1, 1] if validate else [1] * 6)


class Bidirectional(Decoder):
    """Reads the whole shifted sequence in both directions: row t-1 sees tokens after x_{t-1}, not causal."""

    def forward(self, z, x_in):
        return super().forward(z, x_in) + super().forward(z, x_in.flip(1)).flip(1)


class WordDropout(Decoder):
    """Causal, with word dropout drawn from torch's generator: every token it reads is 0 with probability 1/2."""

    def forward(self, z, x_in):
        return super().forward(z, torch.where(torch.rand(x_in.shape) < 0.5, torch.zeros_like(x_in), x_in))


def test_a_net_that_reads_later_tokens_is_an_input_error_on_a_validating_call():
    torch.manual_seed(0)
    leaky = fm.SequenceDecoder("p(x_t|z, x_{<t})", net=Bidirectional())
    with pytest.raises(fm.FormulaInputError, match="not causal"):
        fm.compile(SUM, [leaky])(x=tokens(), z=latent())
    assert fm.compile(SUM, [leaky], validate=False)(x=tokens(), z=latent()).shape == (B,)  # not checked then


def test_the_causality_check_draws_what_the_net_drew_and_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    p = fm.SequenceDecoder("p(x_t|z, x_{<t})", net=WordDropout())
    x, z = tokens(), latent()
    torch.manual_seed(1)
    checked = fm.compile(SUM, [p])(x=x, z=z)  # validating: word dropout drawn again from the same state
    after = torch.rand(3)
    torch.manual_seed(1)
    plain = fm.compile(SUM, [p], validate=False)(x=x, z=z)
    torch.testing.assert_close(checked, plain)
    assert torch.equal(after, torch.rand(3))


def test_lengths_mask_the_steps_past_each_sequence_end():
    p = decoder()
    obj = fm.compile(SUM, [p])
    x, z = tokens(), latent()
    lengths = torch.tensor([6, 3, 0, 1])
    value = obj(x=x, z=z, T=lengths)
    steps = step_by_step(p.net, z, x)
    hand = torch.stack([steps[b, :int(n)].sum() for b, n in enumerate(lengths)])
    torch.testing.assert_close(value, hand)
    assert value[2] == 0
    torch.testing.assert_close(obj(x=x, z=z, T=torch.full((B,), T)), steps.sum(1))


def test_a_padding_token_masks_its_steps():
    p = decoder(pad=PAD)
    x, z = tokens(), latent()
    x[1, 4:] = PAD
    x[3, 2:] = PAD
    value = fm.compile(SUM, [p])(x=x, z=z)
    hand = (step_by_step(p.net, z, x) * (x != PAD)).sum(1)
    torch.testing.assert_close(value, hand)


def test_a_fixed_upper_bound_and_a_later_start_score_those_steps_only():
    p = decoder()
    x, z = tokens(), latent()
    steps = step_by_step(p.net, z, x)
    torch.testing.assert_close(fm.compile(SUM, [p])(x=x, z=z, T=4), steps[:, :4].sum(1))
    later = fm.compile(r"\sum_{t=2}^{T} \log p(x_t|z, x_{<t})", [p])
    torch.testing.assert_close(later(x=x, z=z), steps[:, 1:].sum(1))


def test_the_sentence_vae_bound_equals_a_hand_written_one_at_the_same_draws():
    p, q = decoder(), fm.Normal("q(z|x)", net=Encoder())
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(D,))
    obj = fm.compile(VAE, [q, p, prior])
    x = tokens()
    torch.manual_seed(3)
    value = obj(x=x)
    torch.manual_seed(3)
    post = Independent(Normal(**q.net(x)), 1)
    z = post.rsample()
    std = Independent(Normal(torch.zeros(D), torch.ones(D)), 1)
    torch.testing.assert_close(value, step_by_step(p.net, z, x).sum(1) - kl_divergence(post, std))


def test_several_samples_per_example():
    p, q = decoder(), fm.Normal("q(z|x)", net=Encoder())
    obj = fm.compile(VAE, [q, p, fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(D,))], samples=3,
                     validate=False)
    x = tokens()
    value = obj(x=x, T=torch.tensor([6, 2, 3, 4]))
    assert value.shape == (B,) and torch.isfinite(value).all()
    assert p.net.seen == [((3 * B, D), (3 * B, T))]


def test_one_step_of_the_declaration_is_the_net_on_its_prefix():
    p = decoder()
    x, z = tokens(), latent()
    step = p.condition(z, x[:, :3])
    prefix = torch.cat([torch.full((B, 1), START, dtype=torch.long), x[:, :3]], 1)
    torch.testing.assert_close(step.logits, Categorical(logits=p.net(z, prefix)[:, -1]).logits)


def hand_generate(net, z, steps, greedy):
    x = torch.full((z.shape[0], 1), START, dtype=torch.long)
    with torch.no_grad():
        for _ in range(steps):
            logits = net(z, x)[:, -1]
            token = logits.argmax(-1) if greedy else Categorical(logits=logits).sample()
            x = torch.cat([x, token[:, None]], 1)
    return x[:, 1:]


@pytest.mark.parametrize("greedy", [False, True])
def test_generation_matches_a_hand_written_loop_at_the_same_seed(greedy):
    p, z = decoder(), latent()
    torch.manual_seed(5)
    out = p.generate(z=z, steps=8, greedy=greedy)
    torch.manual_seed(5)
    assert torch.equal(out, hand_generate(p.net, z, 8, greedy))
    assert out.shape == (B, 8) and out.dtype == torch.long


def test_generation_with_a_stop_token_holds_it_after_the_first_stop():
    p, z = decoder(), latent()
    torch.manual_seed(6)
    free = p.generate(z=z, steps=12)
    stop = int(free[0, 2])
    torch.manual_seed(6)
    out = p.generate(z=z, steps=12, stop=stop)
    for row, ref in zip(out, free):
        hits = (ref == stop).nonzero()
        end = int(hits[0]) if len(hits) else 12
        assert torch.equal(row[:end + 1], ref[:end + 1])
        assert (row[end:] == stop).all()


def test_a_teacher_forced_declaration_outside_a_sum_over_its_step_is_a_check_error():
    p = decoder()
    with pytest.raises(fm.FormulaCheckError, match="teacher-forced") as e:
        fm.compile(r"\log p(x_3|z, x_{<3})", [p])
    assert e.value.span == (0, len(r"\log p(x_3|z, x_{<3})"))
    text = r"\sum_{t=1}^{T} (\log p(x_t|z, x_{<t}) + z)"
    with pytest.raises(fm.FormulaCheckError, match="in a sum of their own") as e:
        fm.compile(text, [p])
    assert text[slice(*e.value.span)] == r"\log p(x_t|z, x_{<t})"


def test_a_condition_that_changes_with_the_step_is_a_check_error():
    p = fm.SequenceDecoder("p(x_t|y_t, x_{<t})", net=Decoder())
    text = r"\sum_{t=1}^{T} \log p(x_t|y_t, x_{<t})"
    with pytest.raises(fm.FormulaCheckError, match="depends on the step t") as e:
        fm.compile(text, [p])
    assert text[slice(*e.value.span)] == "y_t"


def test_lengths_of_the_wrong_shape_or_range_are_input_errors_at_the_bound():
    obj = fm.compile(SUM, [decoder()])
    x, z = tokens(), latent()
    for lengths, message in ((torch.tensor([6, 3, 0]), "one per example"), (torch.tensor([7, 1, 1, 1]), r"0\.\.6"),
                             (torch.ones(B), "integers")):
        with pytest.raises(fm.FormulaInputError, match=message) as e:
            obj(x=x, z=z, T=lengths)
        assert SUM[slice(*e.value.span)] == "T"


def test_tokens_outside_the_vocabulary_and_a_net_of_the_wrong_shape_are_input_errors():
    obj = fm.compile(SUM, [decoder()])
    x, z = tokens(), latent()
    with pytest.raises(fm.FormulaInputError, match="x"):
        obj(x=torch.full((B, T), V), z=z)
    flat = fm.SequenceDecoder("p(x_t|z, x_{<t})", net=lambda z, x_in: torch.zeros(x_in.shape[0], V))
    with pytest.raises(fm.FormulaInputError, match=r"one row per step"):
        fm.compile(SUM, [flat])(x=x, z=z)


def test_a_declaration_without_the_prefix_condition_is_refused():
    with pytest.raises(fm.FormulaCheckError, match=r"x_\{<t\}"):
        fm.SequenceDecoder("p(x_t|z)", net=Decoder())
    with pytest.raises(fm.FormulaCheckError, match="one step of a sequence"):
        fm.SequenceDecoder("p(x|z)", net=Decoder())
    with pytest.raises(fm.FormulaCheckError, match="start="):
        fm.SequenceDecoder("p(x_t|z, x_{<t})", net=Decoder(), start=-1)


def test_the_plan_says_it_is_one_call():
    assert "teacher-forced: one call" in fm.compile(SUM, [decoder()]).explain()


def test_the_trainer_takes_the_lengths_in_the_data_beside_the_tokens():
    """`T`, an optional input of the formula, may come in the data (one length per example, batched with x)."""
    p = decoder()
    trainer = fm.Trainer(fm.compile(SUM, [p]), maximize=True, batch_size=2, progress=False)
    x, z, lengths = tokens(), latent(), torch.tensor([6, 3, 2, 1])
    before = fm.compile(SUM, [p])(x=x, z=z, T=lengths).detach()
    trainer.fit({"x": x, "z": z, "T": lengths}, epochs=3)
    after = fm.compile(SUM, [p])(x=x, z=z, T=lengths).detach()
    assert after.mean() > before.mean()
    with pytest.raises(fm.FormulaInputError, match="'lengths' in the data is not an input"):
        trainer.fit({"x": x, "z": z, "lengths": lengths})


def test_a_sum_over_t_without_bounds_runs_over_the_steps_of_the_sequence():
    """`\\sum_t \\log p(x_t|z, x_{<t})`, as issue 12 writes it, is `\\sum_{t=1}^{T}`: the same value, lengths too."""
    p = decoder()
    x, z, lengths = tokens(), latent(), torch.tensor([6, 3, 0, 1])
    bare = fm.compile(r"\sum_t \log p(x_t|z, x_{<t})", [p])
    torch.testing.assert_close(bare(x=x, z=z), step_by_step(p.net, z, x).sum(1))
    torch.testing.assert_close(bare(x=x, z=z, T=lengths), fm.compile(SUM, [p])(x=x, z=z, T=lengths))
    with pytest.raises(fm.FormulaInputError, match="one per example") as e:
        bare(x=x, z=z, T=lengths[:3])
    assert e.value.span == (5, 6)  # the t of \sum_t stands for the bound


def test_a_sum_over_t_without_bounds_of_a_per_step_family_and_one_that_enumerates():
    """A per-step declaration steps over t = 1..T too (hand-written below); a sum over a variable that a
    distribution in the body is over still enumerates it, and one over an index nothing steps is still refused."""
    emit = fm.Normal("p(x_t|z)", net=lambda z: {"loc": z, "scale": torch.ones_like(z)})
    x, z = torch.randn(B, T, D, generator=torch.Generator().manual_seed(4)), latent()
    value = fm.compile(r"\sum_t \log p(x_t|z)", [emit])(x=x, z=z)
    torch.testing.assert_close(value, Normal(z[:, None], 1.0).log_prob(x).sum((1, 2)))
    q = fm.Categorical("q(y|x)", net=lambda x: {"logits": x})
    enumerated = fm.compile(r"\sum_y q(y|x)", [q])(x=torch.randn(B, 3))
    torch.testing.assert_close(enumerated, torch.ones(B))
    with pytest.raises(fm.FormulaCheckError, match="without bounds enumerates"):
        fm.compile(r"\sum_k \log p(x_t|z)", [emit])


IWAE = (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} "
        r"\frac{\exp(\sum_{t=1}^{T} \log p(x_t|z_k, x_{<t})) p(z_k)}{q(z_k|x)}\right]")


def test_the_importance_weighted_bound_scores_every_draw_in_one_call():
    """Along a sampling set's draws z_1..z_K the tokens are expanded to the draws: one net call on [K * batch, T],
    equal to the hand-written IWAE bound with masked sentences at the same draws."""
    p, q = decoder(), fm.Normal("q(z|x)", net=Encoder())
    obj = fm.compile(IWAE, [q, p, fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(D,))], validate=False)
    x, lengths, k = tokens(), torch.tensor([6, 3, 2, 1]), 5
    torch.manual_seed(3)
    value = obj(x=x, K=k, T=lengths)
    assert p.net.seen == [((k * B, D), (k * B, T))]
    torch.manual_seed(3)
    post = Independent(Normal(**q.net(x)), 1)
    z = post.rsample((k,))
    steps = torch.stack([step_by_step(p.net, z[i], x) for i in range(k)])  # [K, batch, T]
    mask = torch.arange(1, T + 1)[None] <= lengths[:, None]
    std = Independent(Normal(torch.zeros(D), torch.ones(D)), 1)
    log_w = (steps * mask).sum(-1) + std.log_prob(z) - post.log_prob(z)
    torch.testing.assert_close(value, torch.logsumexp(log_w, 0) - math.log(k))


def test_generation_from_another_start_token_at_a_temperature_and_its_input_errors():
    p, z = decoder(), latent()
    torch.manual_seed(7)
    out = p.generate(z=z, steps=4, start=3, temperature=0.5)
    torch.manual_seed(7)
    x = torch.full((B, 1), 3, dtype=torch.long)
    with torch.no_grad():
        for _ in range(4):
            x = torch.cat([x, Categorical(logits=p.net(z, x)[:, -1] / 0.5).sample()[:, None]], 1)
    assert torch.equal(out, x[:, 1:])
    for bad, message in (({"steps": 0, "z": z}, "steps="), ({"steps": 3}, "missing z"),
                         ({"steps": 3, "z": z, "temperature": 0}, "temperature=")):
        with pytest.raises(fm.FormulaInputError, match=message):
            p.generate(**bad)
