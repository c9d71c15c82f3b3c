"""A step-by-step sum whose expectations' bodies need only the step's own values, evaluated for every step at once.

`\\sum_{t=1}^{T} E_{q(z_t|z_{t-1},x_t)}[\\log p(x_t|z_t)] - KL(...)`: the draws of z_t are sequential (each conditions
on z_{t-1}), but `log p(x_t|z_t)` at step t reads only z_t and x_t. The loop then draws (and evaluates the terms
that stay per step, here the KL) step by step, keeps each step's z_t and x_t, and after the last step evaluates the
body once on the values stacked along a leading step dimension ([T, batch, ...], the way a sampling set's draws are
evaluated): one batched net call instead of T. Values and gradients are those of the step-by-step loop (the same
draws; only the order of the floating-point additions of the steps differs).

An expectation body qualifies when it is built from log-densities of declared families (sums, negations, products
and numbers of them) whose values and conditions are all variables indexed by exactly the sum's index (`x_t`, `z_t`;
not `z_{t-1}`, an input or an index value), the draws are plain draws with no score-function surrogate, and no
factor's estimator treats q's own draw specially (STL, DReG). At run time the loop falls back to evaluating the body
at each step where batching cannot hold: inside an enumerated sum or a sampling set's vectorised evaluation, with a
PerIndex network (one network per step), or where the kept values differ in shape between steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.distributions as D

from ..check import resolved as R
from ..estimators import closed_form
from ..families.per_index import PerIndex
from ..families.summed import Summed
from ..lang import nodes as N
from . import plan as P
from .context import VECTOR
from .divergences import ClosedFormKL
from .values import paired


@dataclass
class BatchedBodyStep(P.Step):
    """The body of an expectation inside a step-by-step sum, evaluated for every step at once after the draws."""

    index: str

    def line(self):
        return f"its body for every {self.index} at once after the draws (one batched evaluation over the steps)"


@dataclass
class BatchedKLStep(P.Step):
    """A closed-form KL inside a step-by-step sum, taken for every step at once after the loop."""

    index: str

    def line(self):
        return (f"the KL for every {self.index} at once after the loop (its left side kept from the draws, its right "
                "side's net once over the steps)")


def _at_index(ref, index: str) -> bool:
    """A step value or draw indexed by exactly the sum's index (`x_t`, `z_t`)."""
    if not isinstance(ref, (R.StepRef, R.DrawnRef)):
        return False
    if isinstance(ref, R.StepRef) and ref.starts:
        return False
    item = ref.var.index[0] if len(ref.var.index) == 1 else None
    return isinstance(item, N.Var) and item.name == index and not item.index


def _leaves(node, index: str, b) -> Optional[List]:
    """The references a body reads, or None when it is not one this module batches (see the module docstring)."""
    if isinstance(node, N.Num):
        return []
    if isinstance(node, (N.Add, N.Mul)):
        parts = [_leaves(t, index, b) for t in (node.terms if isinstance(node, N.Add) else node.factors)]
        return None if any(p is None for p in parts) else [r for p in parts for r in p]
    if isinstance(node, N.Neg):
        return _leaves(node.arg, index, b)
    if isinstance(node, R.LogDensity):
        node = node.density
    if not isinstance(node, R.Density):
        return None
    refs = []
    for bound in node.factors:
        caps = b.capabilities(bound.decl)
        if not caps.has_density or b.gradient_estimator(bound.decl).stops_own_score:
            return None
        for ref in tuple(bound.values) + tuple(bound.given):
            if not _at_index(ref, index):
                return None
            refs.append(ref)
    return refs


def _plain_draws(e: R.Expectation) -> bool:
    return all(isinstance(d, R.Draw) and not d.data and d.set_size is None for d in e.draws)


def _terms(body) -> List[Tuple[float, object]]:
    """The signed terms of a step's body: `a - b + c` as [(1, a), (-1, b), (1, c)]."""
    parts = body.terms if isinstance(body, N.Add) else (body,)
    return [(-1.0, t.arg) if isinstance(t, N.Neg) else (1.0, t) for t in parts]


class _Batched:
    """One expectation of the step's body: its draw steps, its body, and the references the body reads."""

    def __init__(self, sign: float, steps, body, refs, decls, b):
        self.sign, self.steps, self.body, self.decls = sign, steps, body, decls
        keys, lookups = [], []
        for ref in refs:
            v = ref.var
            key = (v.name, (VECTOR,), v.mark, v.primes)
            if key not in keys:
                keys.append(key)
                lookups.append(b.build(ref))
        self.keys, self.lookups = tuple(keys), tuple(lookups)


class _BatchedKL:
    """A closed-form KL of the step's body: the left side's distribution kept at each step (memoised with the
    draws), the right side's conditions kept, both evaluated once over the steps after the loop."""

    def __init__(self, sign: float, built, parts: ClosedFormKL):
        self.sign, self.built, self.parts = sign, built, parts
        self.decls = (parts.right_decl,)


_STACKABLE: Dict[type, Tuple[str, ...]] = {}


def register_stackable(family: type, params: Tuple[str, ...]) -> None:
    """Distributions of `family` stack along a new leading dimension by stacking `params` (all its parameters, each
    an attribute of the object and a keyword of its constructor)."""
    _STACKABLE[family] = tuple(params)


register_stackable(D.Normal, ("loc", "scale"))
register_stackable(D.Laplace, ("loc", "scale"))


def stack_distributions(dists) -> Optional[D.Distribution]:
    """The distributions of the steps as one, the steps along a new leading dimension; None where they differ in
    family, event dimensions or shape, or their family is not registered as stackable."""
    first = dists[0]
    dims = first.reinterpreted_batch_ndims if isinstance(first, D.Independent) else 0
    base = first.base_dist if dims else first
    if type(base) not in _STACKABLE or (dims and isinstance(base, D.Independent)):
        return None
    names, shape = _STACKABLE[type(base)], first.batch_shape + first.event_shape
    bases = []
    for d in dists:
        if type(d) is not type(first) or (d.batch_shape + d.event_shape) != shape:
            return None
        bases.append(d.base_dist if dims else d)
    if dims and any(d.reinterpreted_batch_ndims != dims for d in dists):
        return None
    stacked = type(base)(**{n: torch.stack([getattr(d, n) for d in bases]) for n in names}, validate_args=False)
    return Summed(stacked, dims, validate_args=False) if dims else stacked


def _evaluate_kl(ctx, part: _BatchedKL, store):
    """The KL of every step summed: one right-side distribution on the stacked conditions and one KL, or step by
    step on the kept values where they do not stack."""
    decl, check = ctx.decls[part.parts.right_decl], part.parts.check

    def right(values):
        return decl.condition(*values, validate=True) if ctx.validate else decl.condition(*values)

    lefts = [left for left, _ in store]
    columns = list(zip(*[given for _, given in store]))
    p = stack_distributions(lefts)
    if p is not None and all(torch.is_tensor(v) and v.shape == col[0].shape for col in columns for v in col):
        q = right([torch.stack(col) for col in columns])
        check(p, q)
        return closed_form.kl(p, q).sum(0)
    acc = 0.0
    for left, given in store:
        q = right(given)
        check(left, q)
        acc = acc + closed_form.kl(left, q)
    return acc


def _factors(node) -> List[R.Bound]:
    if isinstance(node, (N.Add, N.Mul)):
        return [f for t in (node.terms if isinstance(node, N.Add) else node.factors) for f in _factors(t)]
    if isinstance(node, N.Neg):
        return _factors(node.arg)
    if isinstance(node, R.LogDensity):
        node = node.density
    return list(node.factors) if isinstance(node, R.Density) else []


def batched_loop(node: R.LoopSum, count, b):
    """The closure of a step-by-step sum that batches its expectations' bodies, or None where none qualifies.
    `count(ctx) -> (lo, hi)` gives the steps. Built inside the sum's plan step."""
    if not node.uses_index:
        return None
    index = node.index
    actions = _actions(_terms(node.body), index, b)
    if actions is None:
        return None
    parts = tuple(a for a in actions if isinstance(a, (_Batched, _BatchedKL)))
    if not parts:
        return None

    def loop(ctx):
        lo, hi = count(ctx)
        if not _batchable(ctx, parts):
            acc = 0.0
            for t in range(lo, hi + 1):
                acc = acc + ctx.bind(index, t, lambda c: _interleaved(c, actions))
            return acc
        kept = {part: [] for part in parts}
        acc = None
        for t in range(lo, hi + 1):
            v = ctx.bind(index, t, lambda c: _drawing(c, actions, kept))
            if v is not None:
                acc = v if acc is None else acc + v
        for part in parts:
            v = (_evaluate_kl(ctx, part, kept[part]) if isinstance(part, _BatchedKL) else
                 _evaluate(ctx, part, kept[part], index, lo))
            v = v if part.sign > 0 else -v
            acc = v if acc is None else acc + v
        return acc

    return loop


def _actions(terms, index: str, b):
    """The sum's terms in the formula's order (draws and the per-step terms' own draws keep their order): a
    closure giving a per-step value, or a batched part whose draws run at the step and whose body waits; None
    where nothing can be batched or a draw is scored (known only once the estimators are built)."""
    from .expectations import expectation_parts

    candidates = [isinstance(t, R.Expectation) and _plain_draws(t) and _leaves(t.body, index, b) is not None
                  for _, t in terms]
    if not any(candidates) and not any(isinstance(t, R.Divergence) for _, t in terms):
        return None
    actions = []
    for (sign, term), candidate in zip(terms, candidates):
        if not candidate:
            built = b.build(term)
            parts = getattr(built, "parts", None) if isinstance(term, R.Divergence) else None
            if isinstance(parts, ClosedFormKL):  # a closed-form KL: its right side's net once over the steps
                b.note(BatchedKLStep(index))
                actions.append(_BatchedKL(sign, built, parts))
            else:
                actions.append(built if sign > 0 else (lambda ctx, f=built: -f(ctx)))
            continue
        steps, body, record = expectation_parts(term, b)
        if any(s.scored for s in steps):
            return None
        record.children.append(BatchedBodyStep(index))
        decls = tuple(sorted({f.decl for f in _factors(term.body)}))
        actions.append(_Batched(sign, steps, body, _leaves(term.body, index, b), decls, b))
    return tuple(actions)


def _interleaved(ctx, actions):
    """One step of the plain loop: each step's body right after its draws."""
    value = None
    for a in actions:
        if isinstance(a, _BatchedKL):
            v = a.built(ctx)
            v = v if a.sign > 0 else -v
        elif isinstance(a, _Batched):
            for s in a.steps:
                s(ctx)
            v = a.body(ctx)
            v = v if a.sign > 0 else -v
        else:
            v = a(ctx)
        value = v if value is None else _add(value, v, ctx.lead)
    return value


def _drawing(ctx, actions, kept):
    """One step of the batched loop: the draws and the per-step terms; what the batched bodies read is kept."""
    value = None
    for a in actions:
        if isinstance(a, _BatchedKL):
            kept[a].append((a.parts.left(ctx), tuple(g(ctx) for g in a.parts.right_given)))
        elif isinstance(a, _Batched):
            for s in a.steps:
                s(ctx)
            kept[a].append(tuple(f(ctx) for f in a.lookups))
        else:
            v = a(ctx)
            value = v if value is None else _add(value, v, ctx.lead)
    return value


def _add(a, c, lead: int):
    a, c = paired(a, c, lead)
    return a + c


def _batchable(ctx, parts) -> bool:
    if ctx.outer or any(v == VECTOR for v in ctx.env.values() if isinstance(v, int)):
        return False
    return not any(isinstance(getattr(ctx.decls[i], "net", None), PerIndex) for p in parts for i in p.decls)


def _evaluate(ctx, part: _Batched, store, index: str, lo: int):
    """The body's values summed over the steps: once on the kept values stacked along a leading step dimension,
    or step by step on them where they do not stack."""
    columns = list(zip(*store))
    stackable = all(torch.is_tensor(v) and v.shape == col[0].shape for col in columns for v in col)
    if stackable:
        saved = [ctx.trace.get(k) for k in part.keys]
        for key, col in zip(part.keys, columns):
            ctx.put(key, torch.stack(col))
        ctx.lead += 1
        try:
            value = ctx.bind(index, VECTOR, part.body)
            if not torch.is_tensor(value) or value.dim() < ctx.lead:  # the same at every step (`E_q[1]`)
                return value * len(store)
            return value.sum(0)
        finally:
            ctx.lead -= 1
            for key, s in zip(part.keys, saved):
                ctx.drop(key, s)
    acc = 0.0
    for t, values in enumerate(store, start=lo):
        keys = [(k[0], (t,), k[2], k[3]) for k in part.keys]
        saved = [ctx.trace.get(k) for k in keys]
        for key, v in zip(keys, values):
            ctx.put(key, v)
        try:
            acc = acc + ctx.bind(index, t, part.body)
        finally:
            for key, s in zip(keys, saved):
                ctx.drop(key, s)
    return acc


__all__ = ["batched_loop", "BatchedBodyStep", "register_stackable", "stack_distributions"]
