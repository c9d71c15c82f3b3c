"""The plan is data: typed step records that tests inspect and `explain()` renders (issue 8 item 4)."""

import formula as fm
from formula.compiler import plan as P

from models import C, Gaussian, Logits, X, vae

IWAE = r"E_{z_1,...,z_K \sim q(z|x)}[\log \frac{1}{K} \sum_{k=1}^{K} \frac{p(x, z_k)}{q(z_k|x)}]"


def steps(obj):
    return [s for top in obj._plan.steps for s in top.walk()]


def test_the_vae_plan_is_a_draw_and_a_closed_form_kl():
    q, p, prior = vae()
    obj = fm.compile("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))", [q, p, prior])
    terms = obj._plan.steps
    assert [type(t) for t in terms] == [P.TermStep, P.TermStep] and [t.sign for t in terms] == [1.0, -1.0]
    (draw,) = [s for s in steps(obj) if isinstance(s, P.DrawStep)]
    assert (draw.var, draw.family, draw.estimator) == ("z", "Normal", "reparameterised")
    (kl,) = [s for s in steps(obj) if isinstance(s, P.ClosedFormStep)]
    assert kl.families == "Normal || Normal"
    assert obj.explain().splitlines()[3:] == P.render(list(obj._plan.steps))


def test_iwae_and_monte_carlo_kl_records():
    q, p, prior = vae()
    iwae = fm.compile(IWAE, [q, p, prior])
    (draw,) = [s for s in steps(iwae) if isinstance(s, P.DrawStep)]
    assert draw.set_size == "K"
    assert any(isinstance(s, P.LogSumExpStep) and s.index == "k" for s in steps(iwae))
    mc = fm.compile("KL(q(z|x)||p(z))", [q, prior], analytic_kl=False)
    assert any(isinstance(s, P.MonteCarloStep) for s in steps(mc))


def test_score_function_and_enumeration_records():
    qy = fm.Categorical("q(y|x)", net=Logits(X, C))
    qz = fm.Normal("q(z|x,y)", net=Gaussian(X + C))
    px = fm.Bernoulli("p(x|y,z)", net=Logits(3 + C))
    py = fm.Categorical("p(y)", probs=[1 / C] * C)
    pz = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(3,))
    decls = [qy, qz, px, py, pz]
    scored = fm.compile("E_q(y|x)[E_q(z|x,y)[log p(x|y,z)]]", decls)
    assert any(isinstance(s, P.DrawStep) and s.var == "y" and "score-function" in s.estimator for s in steps(scored))
    exact = fm.compile(r"\sum_y q(y|x) E_q(z|x,y)[log p(x|y,z)]", decls)
    assert any(isinstance(s, P.EnumerationStep) and s.index == "y" for s in steps(exact))
