"""What papers print that the parser reads and the printers write back, but the compiler does not evaluate.

Integrals, `\\arg\\min`/`\\arg\\max`, a tuple or a `\\cdot` placeholder used as a value, a derivative along one
coordinate (`\\partial_i f`), a called name with a superscript label that no function is declared under (`f^*(t)`
is a call of `fm.Function("f^*(t)")`, else refused), an MMD over a
function class (`\\mathrm{MMD}[\\mathcal{F}, p, q]`) and an expectation over all factors but one (`\\mathbb{E}_{-j}`)
parse and print (issue 13), so `formula pretty` and `fm.equivalent` work on any paper formula; checking one is a
FormulaCheckError that names the construct and says what to write instead. `refuse(checker, objective)` walks the
objective before the checker's own walk (so a labelled name never falls back to its bare name's declaration); the
node types of their own are also registered checks, so a sub-objective's body brought in later is refused the same way.
"""

from __future__ import annotations

from typing import Optional

from ..lang import nodes as N
from .checker import register_check

__all__ = ["refuse", "message_for"]

_OF_TYPE = {
    N.Integral: "an integral (\\int ... dx) is not evaluated: write it as an expectation, "
                "\\mathbb{E}_{p(x)}[f(x)] for \\int p(x) f(x) dx",
    N.ArgOpt: "\\arg\\min and \\arg\\max are not evaluated: training minimises an objective; write \\min_G \\max_D "
              "for a game, or the objective alone",
    N.ArgTuple: "a tuple (a, b) is not a value: write its items as separate arguments, as in L(x; \\theta, \\phi)",
    N.Placeholder: "\\cdot as a placeholder names a function without its argument: write the argument, as in "
                   "p_E(z|x)",
    N.Text: "a \\text{..} sentence is only a label under \\underbrace",
    N.SuchThat: "side conditions (\\text{s.t.} ...) are not evaluated: write a constraint as a penalty term, as "
                "in L + \\lambda \\max(0, D - \\epsilon)",
    N.Derivative: "a derivative along one coordinate (\\partial_i f) is not evaluated: \\nabla_{x} f and "
                  "\\frac{\\partial f(x)}{\\partial x} are",
}


def message_for(node: N.Node) -> Optional[str]:
    """Why `node` is not evaluated, or None when it is."""
    message = _OF_TYPE.get(type(node))
    if message is not None:
        return message
    if isinstance(node, N.Dist) and node.label is not None:
        label = node.label if node.label != "*" else "star"
        return (f"a called name with a superscript label ({node.name}^{node.label}) is a function of that whole name: "
                f"declare fm.Function(\"{_braced(node)}(...)\", net=...) (a distribution with a label is not "
                f"evaluated), or name it without the label, as in {node.name}_{{{label}}}(...)")
    if isinstance(node, N.Divergence) and node.function_class is not None:
        return (f"{node.kind} over a function class ({node.kind}[F, p, q]) is not evaluated: write "
                f"{node.kind}(p || q) (a subscript such as MMD_{{imq}} picks the kernel)")
    if isinstance(node, N.Expect) and node.params:
        return ("an expectation with parameters after ';' (\\mathbb{E}[f; m, s^2]) is not evaluated: write the "
                "distribution with its parameters as the subscript, as in \\mathbb{E}_{\\mathcal{N}(\\mu; m, s^2)}[f]")
    if isinstance(node, N.Expect) and node.over is not None and any(isinstance(d, N.Neg) for d in node.over.dists):
        return ("an expectation over all factors but one (\\mathbb{E}_{-j}) is not evaluated: write the "
                "distributions it samples, as in \\mathbb{E}_{q(z_1) q(z_2)}")
    return None


def refuse(checker, objective: N.Expr) -> None:
    """Raise the check error of the first construct in `objective` that is not evaluated (an `\\underbrace`'s label
    is only a name, so it is not looked at)."""
    stack = [objective]
    while stack:
        node = stack.pop()
        message = message_for(node)
        if message is not None and _declared_labelled_call(checker, node):
            message = None  # `\mathrm{RNN}^{enc}(h)` of fm.Function("RNN^{enc}(h)"): the label is part of its name
        if message is not None:
            raise checker.error(message, node)
        children = [node.body] if isinstance(node, N.Labeled) else list(node.children())
        stack.extend(reversed(children))


def _braced(node: N.Dist) -> str:
    """The labelled name as a signature writes it: `RNN^{enc}`, `f^*`, `q^*_j`."""
    label = node.label if node.label == "*" or len(node.label) == 1 else f"{{{node.label}}}"
    return f"{node.name}^{label}" + (f"_{{{node.sub}}}" if node.sub else "")


def _declared_labelled_call(checker, node) -> bool:
    """A labelled call whose whole name (`RNN^enc`, `f^*`) names a declared function: a call of it."""
    return (isinstance(node, N.Dist) and node.label is not None and not node.given
            and checker.function_for(node.full_name, len(node.vars)) is not None)


@register_check(*_OF_TYPE)
def _refuse_node(node: N.Node, checker, scope):
    raise checker.error(_OF_TYPE[type(node)], node)
