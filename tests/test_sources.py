"""Several data sources in one objective (issue 12, item 6): M2's J over a labelled data set of two variables and
an unlabelled one, each term averaged over its own batch (batches of different sizes), against the hand-written
sum of means; the trainer takes one loader per source, cycled to the longest."""

import pytest
import torch
from torch.distributions import Categorical

import formula as fm
from formula.train.sources import Sources, cycle_longest
from models import C, binary
from test_compile_models import m2, m2_inner_by_hand

INNER = r"\log p(x|y,z) + \log p(y) + \log p(z) - \log q(z|x,y)"
J = (rf"E_{{\tilde p_l(x,y)}}[E_{{q(z|x,y)}}[{INNER}]] + "
     rf"E_{{\tilde p_u(x)}}[\sum_y q(y|x) E_{{q(z|x,y)}}[{INNER}] + H[q(y|x)]] + "
     r"\alpha E_{\tilde p_l(x,y)}[\log q(y|x)]")
NL, NU, ALPHA = 4, 7, 0.3


def decls():
    return [*m2(), fm.Data(r"\tilde p_l(x,y)"), fm.Data(r"\tilde p_u(x)")]


def batches():
    xl, yl = binary(NL, seed=1), torch.arange(NL) % C
    return xl, yl, binary(NU, seed=2)


def by_hand(qy, qz, px, py, xl, yl, xu):
    labelled = m2_inner_by_hand(qz, px, py, xl, yl).mean()
    q = Categorical(logits=qy.net(x=xu)["logits"])
    ys = q.enumerate_support()
    unlabelled = ((q.probs.T * m2_inner_by_hand(qz, px, py, xu, ys)).sum(0) + q.entropy()).mean()
    classifier = Categorical(logits=qy.net(x=xl)["logits"]).log_prob(yl).mean()
    return labelled + unlabelled + ALPHA * classifier


def test_m2_j_with_two_sources_is_the_sum_of_each_terms_mean_over_its_own_batch():
    ds = decls()
    multi = Sources(fm.compile(J, ds))
    assert multi.inputs == ("p_l.x", "p_l.y", "p_u.x", "alpha")
    assert set(multi.term_source.values()) == {"p_l", "p_u"}
    xl, yl, xu = batches()
    torch.manual_seed(5)
    value, means = multi.evaluate(**{"p_l.x": xl, "p_l.y": yl, "p_u.x": xu, "alpha": ALPHA})
    assert value.shape == (1,) and len(means) == 3
    torch.manual_seed(5)
    hand = by_hand(*ds[:4], xl, yl, xu)
    torch.testing.assert_close(value[0], hand)


@pytest.mark.parametrize("how", ["option", "compiled"])
def test_samples_average_each_terms_draws_as_a_plain_call_does(how):
    """samples=S (given to Sources, or the objective compiled with it): each term is the mean over its batch of the
    mean over S draws per example, the hand-written sum of means over the batches repeated S times."""
    ds, s = decls(), 3
    multi = Sources(fm.compile(J, ds), samples=s) if how == "option" else Sources(fm.compile(J, ds, samples=s))
    assert multi.samples == s
    xl, yl, xu = batches()
    torch.manual_seed(5)
    value, _ = multi.evaluate(**{"p_l.x": xl, "p_l.y": yl, "p_u.x": xu, "alpha": ALPHA})
    torch.manual_seed(5)
    hand = by_hand(*ds[:4], xl.repeat(s, 1), yl.repeat(s), xu.repeat(s, 1))
    torch.testing.assert_close(value[0], hand)
    torch.manual_seed(5)
    one = Sources(fm.compile(J, ds)).evaluate(**{"p_l.x": xl, "p_l.y": yl, "p_u.x": xu, "alpha": ALPHA})[0]
    assert not torch.allclose(one, value)  # the S draws are not one draw repeated


def test_samples_must_be_a_positive_integer():
    with pytest.raises(fm.FormulaInputError, match="positive integer"):
        Sources(fm.compile(J, decls()), samples=0)


def test_the_trainer_takes_one_loader_per_source_cycled_to_the_longest():
    ds = decls()
    multi = Sources(fm.compile(J, ds))
    xl, yl, xu = batches()
    labelled = [{"x": xl, "y": yl}]  # one batch, cycled
    unlabelled = [{"x": xu[:4]}, {"x": xu[4:]}, {"x": xu[:2]}]
    data = cycle_longest({"p_l": labelled, "p_u": unlabelled})
    assert len(data) == 3 and [b["p_l.x"].shape[0] for b in data] == [NL] * 3
    trainer = fm.Trainer(multi, maximize=True, lr=1e-3, inputs={"alpha": ALPHA})
    history = trainer.fit(data, epochs=1)
    assert trainer.step == 3 and all(torch.isfinite(torch.tensor(v)).all() for v in history.values())


def test_a_term_that_reads_no_data_set_is_an_error():
    ds = decls()
    with pytest.raises(fm.FormulaInputError, match="reads no data set"):
        Sources(fm.compile(r"E_{\tilde p_u(x)}[H[q(y|x)]] + H[q(y|x)]", ds))
