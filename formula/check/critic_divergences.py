"""Divergences estimated with a declared critic, and divergences of sample-only distributions.

A divergence whose subscript names a declared function of one argument is estimated with that critic, each by its
registered form (`register_critic_form`), written as the expectations it stands for and checked as such:

* `KL_D(q || r)` ~ E_q[log D(z) - log(1 - D(z))]: the density-ratio trick (FactorVAE's total correlation), D
  trained by its own objective to tell draws of q (D -> 1) from draws of r;
* `\\mathrm{JS}_D(p || q)` ~ (E_p[log D(x)] + E_q[log(1 - D(x))]) / 2 + log 2, the GAN's value at the critic;
* `W_f(p || q)` ~ E_p[f(x)] - E_q[f(x)], the Wasserstein-1 distance at a 1-Lipschitz critic f (Kantorovich-
  Rubinstein duality: keep f Lipschitz, e.g. with a gradient penalty).

Each is exact only at the critic's optimum: the critic's own objective (`\\max_D`) makes the game. Without a critic,
a KL with a sample-only side, JS and W are check errors that say how to name one. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import resolved as R
from .checker import _Checker, register_check
from .kinds import DeclKind


@dataclass(frozen=True, eq=False)
class CriticEstimate(R.Checked_):
    """A divergence estimated with critic `critic` by the form `how`: `value` is its checked expectations."""

    kind: str
    critic: str
    how: str
    value: object


Form = Callable[[Callable[[N.Expr], N.Expr], Tuple[N.Sampler, N.Var], Tuple[N.Sampler, N.Var]], N.Expr]
_FORMS: Dict[str, Tuple[Form, str]] = {}


def register_critic_form(kind: str, how: str):
    """Register `form(call, (left sampler, left var), (right sampler, right var)) -> AST` for divergence `kind`
    written with a critic: `call(v)` is the critic at `v`; `how` is what `explain()` says of the estimator."""

    def deco(form: Form) -> Form:
        _FORMS[kind.upper()] = (form, how)
        return form

    return deco


def _log(a: N.Expr) -> N.Expr:
    return N.Apply("log", (a,))


def _expect(side: Tuple[N.Sampler, N.Var], body: N.Expr) -> N.Expr:
    return N.Expect(side[0], body)


@register_critic_form("KL", "the density-ratio trick: E_left[log D - log(1 - D)], D telling left (1) from right (0)")
def _kl(call, left, right):
    d = call(left[1])
    return _expect(left, N.Add((_log(d), N.Neg(_log(N.Add((N.Num(1.0), N.Neg(d))))))))


@register_critic_form("JS", "the critic's value: (E_left[log D] + E_right[log(1 - D)]) / 2 + log 2")
def _js(call, left, right):
    real = _expect(left, _log(call(left[1])))
    fake = _expect(right, _log(N.Add((N.Num(1.0), N.Neg(call(right[1]))))))
    return N.Add((N.Mul((N.Num(0.5), N.Add((real, fake)))), N.Num(math.log(2.0))))


@register_critic_form("W", "Kantorovich-Rubinstein duality: E_left[f] - E_right[f] at a 1-Lipschitz critic f")
def _w(call, left, right):
    return N.Add((_expect(left, call(left[1])), N.Neg(_expect(right, call(right[1])))))


@register_check(N.Divergence)
def check_divergence(node: N.Divergence, checker, scope):
    """A critic's estimate when the subscript names one; the sample-only and critic-less errors; else the checker's
    own rule (an aggregate posterior in an MMD is drawn as its conditional, one draw per example)."""
    critic = _critic(node, checker)
    if critic is not None:
        return _estimate(node, critic, checker, scope)
    sub = getattr(node, "sub", None)
    if sub and node.kind in _FORMS and not sub.isdigit():
        functions = ", ".join(d.text or d.name for d in checker.decls if d.kind is DeclKind.FUNCTION) or "none"
        raise checker.error(f"the subscript {sub} of {node.kind}_{sub} would name its critic, but no function "
                            f"{sub}(.) of one argument is declared (functions: {functions}): declare it, e.g. "
                            f"fm.Function('{sub}(z)', net=...), or drop the subscript", node)
    if node.kind in _FORMS and node.kind != "KL":
        raise checker.error(f"{node.kind} is estimated with a critic: name it in the subscript, e.g. "
                            f"{_example(node.kind)}, with a declared fm.Function of one argument", node)
    sides = [checker.defs.sample_only(s) if isinstance(s, N.Dist) and s.vars else None
             for s in (node.left, node.right)]
    if node.kind == "MMD" and any(sides):
        left, right = (s.conditional if _is_aggregate(s) else side
                       for s, side in zip(sides, (node.left, node.right)))
        return _Checker.visit_Divergence(checker, N.Divergence(node.kind, left, right, sub=node.sub,
                                                               span=node.span), scope)
    if node.kind == "KL" and (any(sides) or _named(node.left, checker) or _named(node.right, checker)):
        raise checker.error(f"{var_text(node)}: a side is a sample-only distribution, which has no density; estimate "
                            "it with a critic D that tells the two apart: KL_D(a || b), with fm.Function('D(z)', "
                            "...) trained by \\max_D E_a[\\log D(z)] + E_b[\\log(1 - D(z))]", node)
    return _Checker.visit_Divergence(checker, node, scope)


def _critic(node: N.Divergence, checker) -> Optional[str]:
    sub = getattr(node, "sub", None)
    if not sub or node.kind not in _FORMS:
        return None
    fn = checker.function_for(sub, 1)
    return sub if fn is not None else None


def _estimate(node: N.Divergence, critic: str, checker, scope) -> CriticEstimate:
    form, how = _FORMS[node.kind]
    left, right = _side(node.left, checker), _side(node.right, checker)
    name, _, sub = critic.partition("_")
    call = lambda v: N.Dist(name, (v,), (), sub or None, span=node.span)  # noqa: E731
    ast = form(call, left, right)
    return CriticEstimate(node, node.kind, critic, how, checker.visit(_spanned(ast, node.span), scope))


def _side(d: N.Expr, checker) -> Tuple[N.Sampler, N.Var]:
    """A divergence's argument as an expectation's sampler and the variable it draws."""
    if isinstance(d, N.Dist) and len(d.vars) == 1 and isinstance(d.vars[0], N.Var):
        return N.Sampler((d,), span=d.span), d.vars[0]
    if isinstance(d, N.Dist) and not d.vars:
        v = checker.defs.named_variable(d)
        if v is None:
            found = [c for c in checker.candidates(d) if len(c.vars) == 1 and c.kind in
                     (DeclKind.DATA, DeclKind.DISTRIBUTION)]
            v = found[0].vars[0] if len(found) == 1 else None
        if v is not None:
            return N.Sampler((d,), (v,), span=d.span), v
    raise checker.error(f"{var_text(d)} cannot be drawn from here: a critic's divergence takes distributions over "
                        "one variable, q(z|x), the data's P_r, or the name of a defined variable's distribution "
                        "(\\tilde x \\sim P_g with \\tilde x = G(z), as a draw statement or an expectation's item)", d)


def _spanned(node: N.Node, span) -> N.Node:
    """The built AST with the divergence's span on every node that has none (carets point at the divergence)."""
    import dataclasses

    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, N.Node) and value.span is None:
            changes[f.name] = _spanned(value, span)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(_spanned(v, span) if isinstance(v, N.Node) and v.span is None else v
                                    for v in value)
    return dataclasses.replace(node, span=node.span or span, **changes)


def _named(d: N.Expr, checker) -> bool:
    return isinstance(d, N.Dist) and not d.vars and checker.defs.named_variable(d) is not None


def _is_aggregate(d) -> bool:
    return d is not None and hasattr(d, "conditional")


def _example(kind: str) -> str:
    return {"JS": "\\mathrm{JS}_D(p || q)", "W": "W_f(p || q)"}.get(kind, f"{kind}_D(p || q)")


__all__ = ["CriticEstimate", "register_critic_form", "check_divergence"]
