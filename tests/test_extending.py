"""The extension points, each used from outside the package: a node check and builder, a divergence and a gradient
estimator, registered here (not in formula/) and used in a compiled objective compared with hand-written PyTorch.
(The declaration protocol and update rules have their own extension tests: test_declaration_protocol.py and
test_update_rules.py.)"""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import formula as fm
import formula.check.checker as checker_mod
import formula.compiler.registry as registry_mod
from formula import extend
from formula.check import resolved as R
from formula.compiler import plan as P
from formula.lang import nodes as N

from models import Gaussian, Logits, binary


@pytest.fixture
def restore_registries():
    """Registrations made by a test are undone after it, so other tests see the package as shipped."""
    from formula.check import divergences as spec
    from formula.compiler import divergences as div
    from formula.compiler import planning  # noqa: F401  (the built-in builders are registered on import)
    from formula.estimators import gradients

    saved = [dict(t) for t in (checker_mod._CHECKS, registry_mod._BUILDERS, registry_mod._LOG_BUILDERS,
                               spec._SPECS, div._DIVERGENCES, gradients._ESTIMATORS)]
    yield
    planning.make_plan.cache_clear()  # plans built with the test's registrations
    for table, old in zip((checker_mod._CHECKS, registry_mod._BUILDERS, registry_mod._LOG_BUILDERS, spec._SPECS,
                           div._DIVERGENCES, gradients._ESTIMATORS), saved):
        table.clear()
        table.update(old)


# --- a node: \nabla_x f(x), checked and built by an extension ----------------------------------------------


@dataclass(frozen=True, eq=False)
class GradOfInput(R.Checked_):
    """`\\nabla_x f`: the gradient of the checked `arg` with respect to the input named `name`."""

    name: str
    arg: object


def check_grad(node: N.Grad, checker, scope):
    (wrt,) = node.wrt
    ref = checker.ref(wrt, scope)
    if not isinstance(ref, R.InputRef):
        raise checker.error("this extension differentiates with respect to an input only", wrt)
    return GradOfInput(node, ref.name, checker.visit(node.arg, scope))


def build_grad(node: GradOfInput, b):
    arg, name = b.build(node.arg), node.name
    b.note(P.Note(f"gradient of {fm.to_ascii(node.src.arg)} with respect to {name} (autograd, create_graph)"))

    def grad(ctx):
        x = ctx.inputs[name].detach().requires_grad_(True)
        ctx.inputs = {**ctx.inputs, name: x}
        (g,) = torch.autograd.grad(arg(ctx).sum(), x, create_graph=True)
        return g

    return grad


def test_a_node_check_and_builder_registered_from_outside(restore_registries):
    extend.register_check(N.Grad)(check_grad)
    extend.builds(GradOfInput)(build_grad)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    f = fm.Function("f(x)", net=net)
    obj = fm.compile(r"\|\nabla_x f(x)\|^2", [f])
    x = torch.randn(5, 3)
    value = obj(x=x)

    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xr).sum(), xr, create_graph=True)
    expected = (g * g).sum(-1)
    torch.testing.assert_close(value, expected)
    assert "autograd, create_graph" in obj.explain()
    value.mean().backward()  # second order: the penalty trains the network
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if p.dim() > 1)


# --- a divergence: the squared distance of the means, registered by name ------------------------------------


def test_a_divergence_registered_from_outside(restore_registries):
    @extend.register_divergence("MEANSQ", left=extend.Needs.DENSITY, right=extend.Needs.DENSITY)
    def mean_squared(node, b):
        (lf,), (rf,) = node.left.factors, node.right.factors
        left, right = b.conditioned(lf), b.conditioned(rf)
        b.note(P.Note(f"MEANSQ: squared distance of the means of {b.signature(lf.factor)} and "
                      f"{b.signature(rf.factor)}"))
        return lambda ctx: ((left(ctx).mean - right(ctx).mean) ** 2).sum(-1)

    torch.manual_seed(0)
    q = fm.Normal("q(z|x)", net=Gaussian(6))
    prior = fm.Normal("p(z)", loc=0.5, scale=1.0, shape=(3,))
    obj = fm.compile("MEANSQ(q(z|x) || p(z))", [q, prior])
    x = binary(4)
    out = q.net(x)
    torch.testing.assert_close(obj(x=x), ((out["loc"] - 0.5) ** 2).sum(-1))
    assert "squared distance of the means" in obj.explain()
    # what the divergence needs is checked: the data's empirical distribution has no density
    data = fm.Data("p_data(z)")
    with pytest.raises(fm.FormulaCheckError, match="no density"):
        fm.compile("MEANSQ(p_data(z) || p(z))", [data, prior])


def test_an_unregistered_divergence_says_which_are_known():
    with pytest.raises(fm.FormulaCheckError, match=r"no estimator for it is registered yet \(known: .*KL"):
        fm.compile("TV(q(z) || p(z))", [fm.Normal("q(z)", loc=0.0, scale=1.0), fm.Normal("p(z)", loc=0.0, scale=1.0)])


# --- a gradient estimator: plain REINFORCE without a baseline, chosen by name -------------------------------


class PlainScore(extend.GradientEstimator):
    name, label = "plain-score", "score function without baseline"
    needs_log_prob = True

    def applies(self, capabilities):
        return capabilities.has_density

    def draw(self, dist, shape):
        return dist.sample(shape)

    def surrogate(self, value, log_q):
        return value + value.detach() * (log_q - log_q.detach())


def test_a_gradient_estimator_registered_from_outside(restore_registries):
    extend.register_estimator(PlainScore())
    torch.manual_seed(0)
    q = fm.Bernoulli("q(y|x)", net=Logits(6, 2))
    p = fm.Bernoulli("p(x|y)", net=Logits(2, 6))
    obj = fm.compile("E_q(y|x)[log p(x|y)]", [q, p], gradient="plain-score")
    assert "score function without baseline" in obj.explain()
    x = binary(5)
    torch.manual_seed(1)
    obj(x=x).sum().backward()
    got = [t.grad.clone() for t in q.net.parameters()]

    q.net.zero_grad(), p.net.zero_grad()
    torch.manual_seed(1)
    dist = torch.distributions.Independent(torch.distributions.Bernoulli(logits=q.net(x)["logits"]), 1)
    y = dist.sample()
    f = torch.distributions.Independent(torch.distributions.Bernoulli(logits=p.net(y)["logits"]), 1).log_prob(x)
    (f.detach() * dist.log_prob(y)).sum().backward()
    for a, e in zip(got, [t.grad for t in q.net.parameters()]):
        torch.testing.assert_close(a, e)


def test_an_unknown_gradient_estimator_is_an_error():
    with pytest.raises(fm.FormulaError, match="known: .*reparam.*score"):
        fm.compile("E_q(z)[z]", [fm.Normal("q(z)", loc=0.0, scale=1.0)], gradient="dreg-typo")
