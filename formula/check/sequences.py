"""Checking slices of sequences and prefix draws: `x_{<t}`, `x_{\\le t}`, `x_{1:t}`, `z_{<l}` (docs/language.md,
"Slices and per-level sums").

A slice is the elements lo..hi (1-based, inclusive) of a sequence: an input `[batch, T, ...]` or the draws
z_1, z_2, ... of a latent. `E_{q(z_{<l}|x)}[...]` draws the missing elements of the prefix one level at a time
from a declaration over one level (`q(z_l|x, z_{<l})`, or a declaration of a concrete level such as `q(z_1|x)`,
which wins at its level). Torch-free; the checker's `ref` and `visit_Expect` call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import resolved as R
from .kinds import DeclKind


# --- checked nodes -----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PrefixRef(R.Checked_):
    """The elements lo..hi of a sequence as one `[batch, length, ...]` tensor: of a sequence input `source`, or
    (source None) of the draws of `var`'s letter in the trace."""

    var: N.Var
    lo: N.Expr
    hi: N.Expr
    source: Optional[str] = None


@dataclass(frozen=True, eq=False)
class LevelDraw:
    """How the element at one level is drawn: the bound factor, and the index the level binds (None for a
    declaration of a concrete level, `level` its number)."""

    bound: R.Bound
    index: Optional[str] = None
    level: Optional[int] = None


@dataclass(frozen=True, eq=False)
class PrefixExpectation(R.Checked_):
    """`E_{q(z_{<l}|x)}[body]`: draw z_lo..z_hi level by level (levels already drawn in this call are kept), then
    evaluate the body."""

    var: N.Var
    lo: N.Expr
    hi: N.Expr
    generic: Optional[LevelDraw]
    concrete: Tuple[LevelDraw, ...]
    body: object


# --- slices ------------------------------------------------------------------------------------------------


def is_slice(v: N.Expr) -> bool:
    """`x_{<t}`, `x_{\\le t}`, `x_{1:t}`, `x_{\\geq t}`: a variable whose only index is a prefix, a suffix or a
    range."""
    return isinstance(v, N.Var) and len(v.index) == 1 and isinstance(v.index[0], N.SLICES)


def bounds_of(v: N.Var) -> Tuple[N.Expr, N.Expr]:
    """The first and last element of a slice (1-based, inclusive): `<t` is 1..t-1, `\\le t` is 1..t; a suffix
    runs to the sequence's last step, the bare `T` of `x_{t:T}`: `\\geq t` is t..T, `>t` is t+1..T."""
    item = v.index[0]
    if isinstance(item, N.Range):
        return item.lo, item.hi
    if isinstance(item, N.After):
        last = N.Var("T", span=item.span)
        if item.inclusive:
            return item.bound, last
        return N.Add((item.bound, N.Num(1.0)), span=item.span), last
    if item.inclusive:
        return N.Num(1.0), item.bound
    return N.Num(1.0), N.Add((item.bound, N.Neg(N.Num(1.0))), span=item.span)


def element(v: N.Var, k: N.Expr) -> N.Var:
    return N.Var(v.name, (k,), v.mark, v.primes, v.label)


def _same_letter(a: N.Var, b: N.Var) -> bool:
    return (a.name, a.mark, a.primes) == (b.name, b.mark, b.primes)


def _bound(checker, expr: N.Expr, scope):
    """A slice bound, recorded like a sum's bound; a bare letter no sum binds (`T`) may come from the data."""
    optional = isinstance(expr, N.Var) and not expr.index and expr.name not in scope.indices
    return checker.bound(expr, scope, optional=optional)


def slice_ref(checker, v: N.Var, scope, latent: bool) -> PrefixRef:
    """The checked reference of a slice: the draws of a latent (which an enclosing expectation or step-by-step
    sum must draw), else a slice of the sequence input named by the letter."""
    lo, hi = (_bound(checker, e, scope) for e in bounds_of(v))
    if not latent:
        base = var_text(N.Var(v.name, (), v.mark, v.primes, v.label))
        checker.sequences.add(base)
        checker.add_input(base, v, data=True)
        return PrefixRef(v, v, lo, hi, base)
    drawn = covers(scope, v)
    stepped = any(v.name in here for _, _, here in scope.loops)
    if not (drawn or stepped):
        raise checker.error(f"{var_text(v)} is a slice of a sampled variable, but no enclosing expectation draws "
                            f"it here (write E_{{q({var_text(v)}|...)}}[...] around this use)", v)
    return PrefixRef(v, v, lo, hi, None)


@dataclass(frozen=True, eq=False)
class StepOfCall(R.Checked_):
    """`h_t` of a declared function over whole sequences (`h(x)`, a GRU returning [batch, T, ...]): the call,
    made once per evaluation, and the step `index` of its output along dimension 1 (1-based)."""

    call: R.Call
    index: N.Expr


def _sequence_function(checker, v: N.Var):
    """The declared function whose letter `v` indexes (`h_t` with `h(x)` declared), else None."""
    if len(v.index) != 1 or v.mark or v.primes or isinstance(v.index[0], N.SLICES):
        return None
    found = [d for d in checker.decls if d.kind is DeclKind.FUNCTION and d.name == v.name and d.vars]
    return found[0] if len(found) == 1 else None


def step_of_call(checker, v: N.Var, scope) -> Optional[StepOfCall]:
    """`h_t`: the declared function `h` called on its own arguments (whole sequences), at step t."""
    from .checker import _latent_key

    decl = _sequence_function(checker, v)
    if decl is None:
        return None
    for a in decl.vars:
        if isinstance(a, N.Var) and not a.index and _latent_key(a) not in checker.latent_bases:
            checker.sequences.add(var_text(a))
    args = tuple(checker.ref(a, scope) for a in decl.vars)
    index = checker.bound(v.index[0], scope)
    return StepOfCall(v, R.Call(v, decl.index, args), index)


def reference(checker, v: N.Var, scope):
    """The checker's hook for a variable reference: a slice (`x_{<t}`, `z_{<l}`), one element of a slice an
    enclosing expectation drew (`z_t` inside `E_{q(z_{\\le T}|x)}`, read from the draws), or a step `h_t` of a
    declared function over sequences; None for anything else. A recurrent state (`h_{t-1}` of a definition line
    `h_t = f(h_{t-1}, x_t, z_t)`) comes first: formula.check.recurrent."""
    from .checker import _latent_key
    from .recurrent import reference as state_reference

    state = state_reference(checker, v, scope)
    if state is not None:
        return state
    if is_slice(v):
        return slice_ref(checker, v, scope, latent=_latent_key(v) in checker.latent_bases)
    if v.index and v not in scope.drawn and covers(scope, v):
        return R.StepRef(v, v, var_text(N.Var(v.name, (), v.mark, v.primes, v.label)))
    if v.index and v not in scope.drawn:
        return step_of_call(checker, v, scope)
    return None


# --- prefix samplers -----------------------------------------------------------------------------------------


def prefix_use(e: N.Expect) -> Optional[N.Dist]:
    """The sampling distribution of `E_{q(z_{<l}|x)}[...]` when it draws one slice, else None."""
    over = e.over
    if over is None or len(over.dists) != 1 or over.draws:
        return None
    d = over.dists[0]
    if isinstance(d, N.Dist) and len(d.vars) == 1 and is_slice(d.vars[0]):
        return d
    return None


def prefix_draws(resolver, e: N.Expect):
    """What the resolver reports a prefix sampler draws (the slice itself, from its per-level declaration), so
    that the checker's first pass marks the letter as sampled; None for any other expectation."""
    from .resolver import Draws

    use = prefix_use(e)
    if use is None:
        return None
    generic, concrete = _level_decls(resolver, use)
    decl = generic or concrete[0]
    return Draws(R.Joint((R.Factor(decl[0].index, use.vars, use.given),)))


def read_product(resolver, stmt) -> bool:
    """A factorisation line over a slice, `q(z_{\\le T}|x_{\\le T}) = \\prod_t q(z_t | x_{\\le t}, z_{<t})`:
    remembered (the product's factor, as written, is how one level is drawn); False for any other statement."""
    if not (isinstance(stmt, N.Relation) and stmt.ops == ("=",) and len(stmt.members) == 2):
        return False
    lhs, rhs = stmt.members
    if not (isinstance(lhs, N.Dist) and len(lhs.vars) == 1 and is_slice(lhs.vars[0]) and isinstance(rhs, N.Prod)):
        return False
    body, t, z = rhs.body, rhs.index, lhs.vars[0]
    if not (isinstance(body, N.Dist) and len(body.vars) == 1 and _same_letter(body.vars[0], z)
            and body.vars[0].index == (N.Var(t.name),)):
        raise resolver.error(f"a factorisation of {var_text(lhs)} is a product over one level: write "
                             f"\\prod_{t.name} {lhs.name}({var_text(element(z, t))}|...)", rhs)
    factor = resolver.match_factor(body)  # the level's declaration must exist: an error at this line
    resolver.__dict__.setdefault("_level_products", {})[(lhs.full_name, z.name, z.mark, z.primes)] = (
        resolver.decls[factor.decl], t.name, body)
    return True


def _product_for(resolver, use: N.Dist):
    z = use.vars[0]
    return getattr(resolver, "_level_products", {}).get((use.full_name, z.name, z.mark, z.primes))


def _level_decls(resolver, use: N.Dist):
    """The declarations that draw one level of `use`'s slice: (generic (decl, index name) or None, concrete
    [(decl, level)]); a check error when there is none."""
    z = use.vars[0]
    generic, concrete = None, []
    product = _product_for(resolver, use)
    if product is not None:
        generic = product[:2]
    for d in resolver.candidates(use, kinds=(DeclKind.DISTRIBUTION,)):
        if len(d.vars) != 1 or not _same_letter(d.vars[0], z) or len(d.vars[0].index) != 1:
            continue
        item = d.vars[0].index[0]
        if isinstance(item, N.Var) and not item.index and generic is None and product is None:
            generic = (d, item.name)
        elif isinstance(item, N.Num):
            concrete.append((d, int(item.value)))
    if generic is None and not concrete:
        level = var_text(element(z, N.Var("l")))
        raise resolver.error(
            f"nothing declared draws {var_text(z)} one level at a time: declare "
            f"{use.name}({level}|{', '.join(var_text(g) for g in use.given + (_before(z, 'l'),))}) (a separate "
            "network per level: net=fm.PerIndex([...]))", use)
    return generic, concrete


def _before(z: N.Var, index: str) -> N.Var:
    return N.Var(z.name, (N.Before(N.Var(index)),), z.mark, z.primes, z.label)


def _given_for(checker, use: N.Dist, decl) -> Tuple[N.Expr, ...]:
    """The declaration's conditions as used here: an indexed condition keeps the declaration's indices (in terms
    of the level: `z_{<l}`, `x_{\\le t}`, `x_1`); an unindexed one is the use's variable of the same letter. A
    product factorisation's factor gives them as written."""
    product = _product_for(checker, use)
    if product is not None and product[0] is decl:
        return tuple(product[2].given)
    by_letter = {g.name: g for g in use.given if isinstance(g, N.Var)}
    out = []
    for g in decl.given:
        if g.index:
            out.append(g)
        elif g.name in by_letter:
            out.append(by_letter[g.name])
        else:
            raise checker.error(f"{decl} conditions on {var_text(g)}, which {var_text(use)} is not given", use)
    return tuple(out)


def covers(scope, v: N.Var) -> bool:
    """Whether an enclosing expectation drew a slice of `v`'s letter (`z_t` inside `E_{q(z_{\\le T}|x)}`)."""
    return any(is_slice(w) and _same_letter(w, v) for w in scope.drawn)


def _level_ref(checker, g: N.Expr, z: N.Var, scope):
    """A condition of one level: an earlier element of the slice's letter is read from the draws (`z_{l-1}`,
    `z_1`), a slice of it is the prefix drawn so far, anything else is an ordinary reference."""
    if isinstance(g, N.Var) and _same_letter(g, z) and not is_slice(g):
        return R.DrawnRef(g, g)
    return checker.ref(g, scope)


def check_prefix_expect(checker, e: N.Expect, scope) -> Optional[PrefixExpectation]:
    """The checked form of a prefix sampler `E_{q(z_{<l}|x)}[body]`, or None for any other expectation."""
    use = prefix_use(e)
    if use is None:
        return None
    z = use.vars[0]
    if any(_same_letter(w, z) for w in scope.drawn):
        raise checker.error(f"{var_text(z)} is already drawn by an enclosing expectation", e)
    lo, hi = (_bound(checker, b, scope) for b in bounds_of(z))
    generic, concrete = _level_decls(checker, use)
    inner = scope.drawing((z,))
    levels = []
    for d, level in concrete:
        given = _given_for(checker, use, d)
        refs = tuple(_level_ref(checker, g, z, inner) for g in given)
        levels.append(LevelDraw(R.Bound(R.Factor(d.index, d.vars, given), (None,), refs), level=level))
    step = None
    if generic is not None:
        d, index = generic
        given = _given_for(checker, use, d)
        stepping = scope.looping(index, N.Num(1.0), frozenset({z.name})).drawing((_before(z, index),))
        refs = tuple(_level_ref(checker, g, z, stepping) for g in given)
        step = LevelDraw(R.Bound(R.Factor(d.index, d.vars, given), (None,), refs), index=index)
    return PrefixExpectation(e, z, lo, hi, step, tuple(levels), checker.visit(e.body, inner))


# --- a per-level declaration used at a fixed level -------------------------------------------------------------


def refuse_fixed_level(resolver, use: N.Dist, decl) -> None:
    """A declaration of a concrete level (`q(z_1|x)`) matched by letter to a use whose index varies
    (`q(z_{l-1}|x)` inside a sum over l) would give every level the first level's network: a check error."""
    for declared, used in zip(decl.vars + decl.given, use.vars + use.given):
        if not (isinstance(declared, N.Var) and isinstance(used, N.Var)):
            continue
        fixed = [i for i in declared.index if isinstance(i, N.Num)]
        if not fixed or declared.index == used.index:
            continue
        if used.index and all(isinstance(i, N.Num) for i in used.index):
            raise resolver.error(f"{var_text(use)} would use {decl}, declared for {var_text(declared)} only: declare "
                                 f"{var_text(used)}'s own distribution, or one without the index for every step", use)
        if used.index:
            z = N.Var(used.name, (), used.mark, used.primes)
            raise resolver.error(
                f"{var_text(use)} would use {decl}, declared for {var_text(declared)} only, at every level "
                f"({var_text(used)} varies); declare one level with its index ({use.name}("
                f"{var_text(element(z, N.Var('l')))}|...), one network per level with net=fm.PerIndex([...])), "
                f"and draw earlier levels with E_{{{use.name}({var_text(_before(z, 'l'))}|...)}}[...]", use)


__all__ = ["PrefixRef", "PrefixExpectation", "LevelDraw", "is_slice", "bounds_of", "slice_ref", "covers", "reference", "StepOfCall",
           "check_prefix_expect", "prefix_draws", "read_product", "refuse_fixed_level"]
