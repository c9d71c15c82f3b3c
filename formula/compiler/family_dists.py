"""Explicit families as torch distributions: a registry keyed by the canonical family name (`Family.family`).

`register_family(name, torch_class, make, ...)` says how the parameters as written (`\\mathcal{N}(\\mu, \\sigma^2 I)`:
a mean and a variance) become a `torch.distributions` object, and tells the checker the family's arity; a new
family is one registration. `family_dist(fam, b)` is the closure every use shares (a log-density, a side of a KL,
an entropy, a draw): parameters evaluated, broadcast to the shape the family takes (docs/language.md, "Explicit
families"), and trailing dimensions beyond the examples reinterpreted as one event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.distributions as D
from torch.distributions import constraints

from ..check import resolved as R
from ..check.explicit_families import FamilySpec, register_family_spec
from ..errors import FormulaInputError
from ..families.summed import summed
from ..families.uniform_discrete import UniformDiscrete
from ..text.printing import to_ascii as var_text
from .refs import span_of


@dataclass(frozen=True)
class FamilyBuild:
    """How one explicit family is built: its torch class (for capabilities and closed forms), `make(*params)` from
    parameter tensors, whether parameters broadcast to the value's shape (`elementwise`), and the values of omitted
    trailing parameters."""

    torch_class: type
    make: Callable[..., D.Distribution]
    elementwise: bool = True
    defaults: Tuple[float, ...] = ()
    integers: bool = False  # parameters are integer bounds (U{1..T}), not tensors
    arity: int = 1


_FAMILIES: Dict[str, FamilyBuild] = {}


def register_family(name: str, torch_class: type, make: Callable[..., D.Distribution], *, params: Sequence[str],
                    usage: str, defaults: Sequence[float] = (), elementwise: bool = True,
                    integers: bool = False) -> FamilyBuild:
    """Make `\\mathrm{name}(...)` evaluable in formulas: `make(*parameters)` returns the torch distribution."""
    register_family_spec(FamilySpec(name, tuple(params), len(defaults), usage))
    build = FamilyBuild(torch_class, make, elementwise, tuple(defaults), integers, len(params))
    _FAMILIES[name] = build
    return build


def family_build(name: str) -> FamilyBuild:
    return _FAMILIES[name]


def reference(ctx, values=()) -> Tuple[torch.device, torch.dtype]:
    """Device and floating dtype for tensors a family makes: its own parameters', else the inputs', else the
    declared networks' (never a default device)."""
    pool = [v for v in values if torch.is_tensor(v)] + [v for v in ctx.inputs.values() if torch.is_tensor(v)]
    for v in pool:
        if v.is_floating_point():
            return v.device, v.dtype
    for d in ctx.decls:
        for p in getattr(d, "parameters", lambda: ())():
            return p.device, p.dtype
    for v in pool:
        return v.device, torch.get_default_dtype()
    return torch.device("cpu"), torch.get_default_dtype()


def _broadcast(values, like, ctx, elementwise: bool = True):
    """Parameters as floating tensors on the reference device; for an elementwise family, broadcast to each other
    and to `like`, per-example values aligned to the examples."""
    device, dtype = reference(ctx, values if like is None else (like,) + tuple(values))
    tensors = [v.to(dtype) if torch.is_tensor(v) and not v.is_floating_point() else
               (v if torch.is_tensor(v) else torch.as_tensor(v, dtype=dtype, device=device)) for v in values]
    if not elementwise:
        return tensors
    shapes = [t.shape for t in tensors] + ([like.shape] if torch.is_tensor(like) else [])
    widest = max(shapes, key=len)
    shapes = [_per_example(s, widest, ctx.lead) for s in shapes]
    target = torch.broadcast_shapes(*shapes)
    return [t.reshape(_per_example(t.shape, widest, ctx.lead)).expand(target) for t in tensors]


def _per_example(shape: torch.Size, widest: torch.Size, lead: int) -> torch.Size:
    """A `[batch]` shape as `[batch, 1, ...]` against a wider `[batch, *event]` one (its examples, not its event)."""
    if len(shape) == lead < len(widest) and shape == widest[:lead]:
        return shape + (1,) * (len(widest) - lead)
    return shape


def _bounds(values, fam: R.ExplicitFamily, text: str):
    out = []
    for v in values:
        if torch.is_tensor(v):
            if v.numel() != 1:
                raise FormulaInputError(f"the bounds of {var_text(fam.src)} must be single integers, got shape "
                                        f"{list(v.shape)}", text, span_of(fam.src))
            v = v.item()
        if float(v) != int(v):
            raise FormulaInputError(f"the bounds of {var_text(fam.src)} must be integers, got {v}", text,
                                    span_of(fam.src))
        out.append(int(v))
    return out


def family_dist(fam: R.ExplicitFamily, b):
    """`fam` as a closure (ctx, like=None, event_dims=None) -> torch distribution: parameters broadcast to the tensor
    `like` where given (and to each other), dimensions beyond the examples' reinterpreted as the event unless
    `event_dims` says how many."""
    build = _FAMILIES[fam.family]
    params = [b.build(a) for a in fam.args]
    missing = build.arity - len(fam.args)  # omitted trailing parameters take their defaults
    defaults = build.defaults[len(build.defaults) - missing:] if missing else ()
    text, src = b.text, fam.src

    def make(ctx, like=None, event_dims=None):
        values = [p(ctx) for p in params] + list(defaults)
        if build.integers:
            device, dtype = reference(ctx, values)
            dist = build.make(*_bounds(values, fam, text), dtype=dtype, device=device)
        else:
            dist = build.make(*_broadcast(values, like if build.elementwise else None, ctx, build.elementwise))
            if ctx.validate:
                _validate(dist, text, src)
        if event_dims is None:  # every dimension beyond the examples is part of one event
            extra = max(0, len(dist.batch_shape) - ctx.lead)
        else:  # the value has `event_dims` event dimensions, some of them the family's own (Dirichlet's)
            extra = max(0, min(event_dims - len(dist.event_shape), len(dist.batch_shape)))
        return summed(dist, extra)

    return make


def _validate(dist: D.Distribution, text: str, src) -> None:
    """Every parameter inside its constraint, or a FormulaInputError naming it (a negative variance is no value)."""
    for name, constraint in dist.arg_constraints.items():
        value = getattr(dist, name, None)
        if isinstance(constraint, constraints._Dependent) or not torch.is_tensor(value) or value.is_meta:
            continue
        if not bool(constraint.check(value).all()):
            raise FormulaInputError(f"{var_text(src)}: its {name} must be {constraint}, got values outside it "
                                    f"(e.g. {value.reshape(-1)[~constraint.check(value).reshape(-1)][0].item():g})",
                                    text, span_of(src))


def _normal(mean, variance):
    return D.Normal(mean, variance.sqrt(), validate_args=False)


register_family("Normal", D.Normal, _normal, params=("mean", "variance"), defaults=(1.0,),
                usage=r"\mathcal{N}(x \mid \mu, \sigma^2 I)")
register_family("Laplace", D.Laplace, lambda loc, scale: D.Laplace(loc, scale, validate_args=False),
                params=("location", "scale"), defaults=(1.0,), usage=r"\mathrm{Laplace}(x \mid \mu, b)")
register_family("Bernoulli", D.Bernoulli, lambda p: D.Bernoulli(probs=p, validate_args=False),
                params=("probability",), usage=r"\mathrm{Bern}(x \mid \lambda)")
register_family("Beta", D.Beta, lambda a, c: D.Beta(a, c, validate_args=False), params=("alpha", "beta"),
                usage=r"\mathrm{Beta}(x \mid a, b)")
register_family("Uniform", D.Uniform, lambda lo, hi: D.Uniform(lo, hi, validate_args=False), params=("low", "high"),
                usage=r"\mathcal{U}[0, 1]")
register_family("Categorical", D.Categorical, lambda pi: D.Categorical(probs=pi, validate_args=False),
                params=("probabilities",), elementwise=False, usage=r"\mathrm{Cat}(y \mid \pi)")
register_family("Gamma", D.Gamma, lambda a, rate: D.Gamma(a, rate, validate_args=False), params=("shape", "rate"),
                usage=r"\mathrm{Gamma}(x \mid \alpha, \beta)")
register_family("Exponential", D.Exponential, lambda rate: D.Exponential(rate, validate_args=False),
                params=("rate",), usage=r"\mathrm{Exp}(x \mid \lambda)")
register_family("Poisson", D.Poisson, lambda rate: D.Poisson(rate, validate_args=False), params=("rate",),
                usage=r"\mathrm{Pois}(k \mid \lambda)")
register_family("Dirichlet", D.Dirichlet, lambda a: D.Dirichlet(a, validate_args=False), params=("concentration",),
                elementwise=False, usage=r"\mathrm{Dir}(\pi \mid \alpha)")
register_family("UniformDiscrete", UniformDiscrete, UniformDiscrete, params=("low", "high"), integers=True,
                usage=r"\mathcal{U}\{1, \ldots, T\}")

__all__ = ["FamilyBuild", "register_family", "family_build", "family_dist", "reference"]
