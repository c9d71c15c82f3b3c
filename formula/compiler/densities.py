"""Builders of densities: log-densities of declared joints and explicit families, and the log-space lowering of
products, ratios and sums of densities (IWAE's log of a mean of ratios stays in log-sum-exp)."""

from __future__ import annotations

import math

import torch

from ..check import resolved as R
from ..check.kinds import DeclKind
from ..lang import nodes as N
from .family_dists import family_dist
from .registry import builds
from .values import summed


def factor_log_prob(bound: R.Bound, b):
    """log q(value | conditions) of one bound factor."""
    if b.declaration(bound.decl).kind is DeclKind.DATA:
        raise b.error("the empirical distribution of the data has no density", bound.factor.vars[0])
    caps = b.capabilities(bound.decl)
    if not caps.has_density:
        raise b.error(f"{b.signature(bound.factor)} has no density ({caps.label} can only be sampled)",
                      bound.factor.vars[0])
    cond = b.conditioned(bound)
    (value,) = [b.build(v) for v in bound.values]
    decl_index = bound.decl
    at_a_draw = caps.can_sample and isinstance(bound.values[0], (R.DrawnRef, R.StepRef))
    if at_a_draw and b.gradient_estimator(decl_index).stops_own_score:  # STL, DReG: q's own draw
        return _own_log_prob(bound, value, cond, b)

    def log_prob(ctx):
        x, dist = value(ctx), cond(ctx)
        if ctx.validate:
            decl = ctx.decls[decl_index]
            decl.validate_value(decl.var_names[0], x, dist)
        return dist.log_prob(x)

    return log_prob


def _own_log_prob(bound: R.Bound, value, cond, b):
    """log q(z) where z may be q's own draw: then its estimator evaluates it (STL and DReG stop q's parameters)."""
    from ..estimators.own_draws import drawn_by
    from .refs import key_fn

    key_of, decl_index = key_fn(bound.values[0].var, b), bound.decl

    def own_log_prob(ctx):
        x, dist = value(ctx), cond(ctx)
        own = drawn_by(ctx, key_of(ctx), decl_index)
        return own[0].own_log_prob(dist, x) if own is not None else dist.log_prob(x)

    return own_log_prob


def log_density(density: R.Density, b):
    return summed([factor_log_prob(f, b) for f in density.factors])


@builds(R.Density)
def build_density(node: R.Density, b):
    log = log_density(node, b)
    return lambda ctx: torch.exp(log(ctx))


@builds(R.LogDensity)
def build_log_density(node: R.LogDensity, b):
    return log_density(node.density, b)


@builds(R.Density, log=True)
def build_log_of_density(node: R.Density, b):
    return log_density(node, b)


def family_maker(fam: R.ExplicitFamily, b):
    """An explicit family (`\\mathcal{N}(\\mu, \\sigma^2 I)`, `\\mathcal{U}[0, 1]`, ...) as a closure (ctx, like,
    event_dims) -> torch distribution shaped like the tensor `like` (`formula.compiler.family_dists`)."""
    return family_dist(fam, b)


@builds(R.FamilyLogDensity)
def build_family_log_density(node: R.FamilyLogDensity, b):
    (value,) = [b.build(v) for v in node.family.vars]
    make = family_maker(node.family, b)

    def family_log_prob(ctx):
        x = value(ctx)
        return make(ctx, x, max(0, x.dim() - ctx.lead) if torch.is_tensor(x) else 0).log_prob(x)

    return family_log_prob


# --- log space ---------------------------------------------------------------------------------------------


def log_of(node, b):
    """log(node): in log space where the node allows, else the log of its value."""
    logged = b.build_log(node)
    if logged is not None:
        return logged
    inner = b.build(node)

    def log(ctx):
        x = inner(ctx)
        return torch.log(x) if torch.is_tensor(x) else math.log(x)

    return log


@builds(N.Mul, log=True)
def build_log_of_product(node: N.Mul, b):
    return summed([log_of(f, b) for f in node.factors])


@builds(N.Div, log=True)
def build_log_of_ratio(node: N.Div, b):
    a, c = log_of(node.num, b), log_of(node.den, b)
    return lambda ctx: a(ctx) - c(ctx)


@builds(N.Num, log=True)
def build_log_of_number(node: N.Num, b):
    if node.value <= 0:
        raise b.error("the logarithm of a non-positive number", node)
    value = math.log(node.value)
    return lambda ctx: value


@builds(N.Apply, log=True)
def build_log_of_exp(node: N.Apply, b):
    """`log exp(a)` is `a`; `log \\sigma(a)` is `logsigmoid(a)`, finite where sigma(a) rounds to 0."""
    if node.fn == "exp" and len(node.args) == 1:
        return b.build(node.args[0])
    if node.fn == "sigmoid" and len(node.args) == 1:
        return _log_sigmoid(b.build(node.args[0]), 1.0)
    return None


@builds(N.Add, log=True)
def build_log_of_one_minus_sigmoid(node: N.Add, b):
    """`log(1 - \\sigma(a))` is `logsigmoid(-a)`: a GAN's or AVB's discriminator term stays finite in float32."""
    if (len(node.terms) == 2 and node.terms[0] == N.Num(1.0) and isinstance(node.terms[1], N.Neg)
            and isinstance(node.terms[1].arg, N.Apply) and node.terms[1].arg.fn == "sigmoid"
            and len(node.terms[1].arg.args) == 1):
        return _log_sigmoid(b.build(node.terms[1].arg.args[0]), -1.0)
    return None


def _log_sigmoid(arg, sign: float):
    def log_sigmoid(ctx):
        x = sign * arg(ctx)
        if torch.is_tensor(x):
            return torch.nn.functional.logsigmoid(x)
        return -math.log1p(math.exp(-x)) if x > -30 else x  # a number: log sigma(x), stable for large |x|

    return log_sigmoid


@builds(N.Pow, log=True)
def build_log_of_power(node: N.Pow, b):
    a, c = log_of(node.base, b), b.build(node.exp)
    return lambda ctx: c(ctx) * a(ctx)


__all__ = ["log_density", "factor_log_prob", "family_maker", "log_of"]
