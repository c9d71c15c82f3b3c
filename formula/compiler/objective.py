"""`fm.compile`: text + declared distributions -> `Objective`, an nn.Module giving the per-example value.

The plan (parse, check, closures) depends only on the text, the declared signatures, their capabilities and the
options, so it is cached and shared; an `Objective` binds a plan to the user's networks.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch

from ..check import resolved as R
from ..check.kinds import DeclKind
from ..check.uses import declarations_used
from ..errors import FormulaError, FormulaInputError
from ..estimators import gradients
from ..families.protocol import dtype_hint
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from .context import Ctx
from .planning import Plan, make_plan
from .registry import Options

VALIDATE_FIRST = 3  # the first calls of an objective check parameters and data against their constraints,
VALIDATE_EVERY = 100  # then one call in this many (validation is explicit, not torch's validate_args)
BATCH_SIZE = "batch_size"
_EVALUATION_ERRORS = (RuntimeError, ValueError, IndexError, TypeError, ArithmeticError)  # the call input that sets the number of draws when no data input gives a batch


def _capabilities(d) -> object:
    try:
        return d.capabilities
    except (AttributeError, NotImplementedError):
        return None


def _kind(d) -> DeclKind:
    return DeclKind.of(getattr(d, "kind", DeclKind.DISTRIBUTION))


def _signature(d) -> N.Dist:
    """The parsed signature of a declaration (the protocol's `parsed`; a bare object may give a node or a text)."""
    parsed = getattr(d, "parsed", None)
    if isinstance(parsed, N.Dist):
        return parsed
    if isinstance(d.signature, N.Dist):
        return d.signature
    from ..lang.parser import parse_signature

    return parse_signature(d.signature)


def compile(text: str, distributions: Iterable[Any] = (), *, samples: int = 1, analytic_kl: bool = True,
            gradient: Optional[str] = None, validate: bool = True, compile: Any = False) -> "Objective":
    """Compile an objective written as in the paper against the declared distributions and functions.

    `samples` is the number of independent draws per example for every expectation (values are averaged);
    `analytic_kl=False` makes every KL a Monte Carlo estimate; `gradient` names a registered gradient estimator
    used wherever it applies; `validate` checks parameters and data against their constraints on the first calls
    and one call in a hundred after; `compile=True` (or a dict of options) runs each call through `torch.compile`.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula is a string, got {type(text).__name__}")
    decls = list(distributions)
    for d in decls:
        if not hasattr(d, "signature"):
            raise FormulaError(f"{d!r} is not a declared distribution or function (use fm.Normal(...), "
                               "fm.Function(...), ...)")
    if not isinstance(samples, int) or samples < 1:
        raise FormulaError(f"samples must be a positive integer, got {samples!r}")
    if gradient is not None and gradient not in gradients.known():
        raise FormulaError(f"gradient={gradient!r} is not a registered estimator; known: "
                           f"{', '.join(gradients.known())}")
    signatures = tuple((_signature(d), _kind(d)) for d in decls)
    capabilities = tuple(_capabilities(d) for d in decls)
    plan = make_plan(text, signatures, capabilities, Options(samples, bool(analytic_kl), gradient))
    objective = Objective(plan, decls, samples, bool(validate))
    if compile:
        options = dict(compile) if isinstance(compile, dict) else {"mode": compile} if isinstance(compile, str) else {}
        objective.__dict__["_compiled"] = torch.compile(objective._run, **options)
    return objective


class Objective(torch.nn.Module):
    """A compiled objective: call it with the inputs to get the formula's value per example, shape [batch]."""

    def __init__(self, plan: Plan, decls: Sequence[Any], samples: int, validate: bool = True):
        super().__init__()
        # Built without nn.Module's per-attribute bookkeeping: a cached compile is a hot path (< 50 us).
        modules = torch.nn.ModuleList()
        modules._modules.update((str(i), d) for i, d in enumerate(decls) if isinstance(d, torch.nn.Module))
        self._modules["distributions"] = modules
        state = self.__dict__
        state["_plan"] = plan
        state["_decls"] = tuple(decls)
        state["_samples"] = samples
        state["_pretty"] = None
        state["_last_inputs"] = None  # names and shapes of the last validated call
        state["_last_n"] = 0
        state["_validate"] = validate
        state["_calls"] = 0

    # -- what it is --

    @property
    def text(self) -> str:
        return self._plan.checked.text

    @property
    def inputs(self) -> Tuple[str, ...]:
        """The names a call must supply (data and scalars), sorted."""
        return self._plan.checked.inputs

    @property
    def optional_inputs(self) -> Tuple[str, ...]:
        """Names a call may supply (a sequence length `T` that otherwise comes from the data)."""
        return self._plan.checked.optional_inputs

    @property
    def term_names(self) -> Tuple[str, ...]:
        """The top-level terms by printed name, in the formula's order (the keys of `terms()`)."""
        return tuple(t.name for t, _ in self._plan.terms)

    @property
    def term_signs(self) -> Tuple[float, ...]:
        """+1.0 or -1.0 for each of `term_names`: the total is the signed sum of the terms."""
        return tuple(t.sign for t, _ in self._plan.terms)

    @property
    def players(self):
        """For `\\min_G \\max_D` objectives: ((sense, players), ...) from the prefix, outermost first."""
        return self._plan.checked.players

    def terms_using(self, declarations: Iterable[Any]) -> Tuple[str, ...]:
        """The terms (by printed name, in order) that read any of `declarations`: draw from, score or call one.
        A two-player step evaluates only its player's terms (formula.train.games)."""
        wanted = {id(d) for d in declarations}
        decls = self._decls
        return tuple(term.name for term, _ in self._plan.terms
                     if any(i < len(decls) and id(decls[i]) in wanted for i in declarations_used(term.expr)))

    @contextlib.contextmanager
    def only_terms(self, names: Iterable[str]):
        """Within the block, a call evaluates only the terms `names` (the total is their signed sum, from the same
        draws); the plan is restored after it. It narrows this module in place, so that wrappers around it (DDP,
        torch.compile, the trainer's) make the narrowed call."""
        names = tuple(names)
        unknown = [n for n in names if n not in self.term_names]
        if unknown:
            raise FormulaInputError(f"only_terms: no term {unknown[0]!r}; the terms are {', '.join(self.term_names)}",
                                    self.text)
        state = self.__dict__
        plan = state["_plan"]
        state["_plan"] = dataclasses.replace(plan, terms=tuple(t for t in plan.terms if t[0].name in names))
        try:
            yield self
        finally:
            state["_plan"] = plan

    def explain(self) -> str:
        """The plan: what is sampled in which order, which KL is closed-form, which gradients are scored."""
        return self._plan.explanation

    def __str__(self) -> str:
        if self._pretty is None:
            from ..text.symbolic import pretty

            self._pretty = pretty(self._plan.checked.statement)
        return self._pretty

    def __repr__(self) -> str:
        decls = ", ".join(var_text(_signature(d)) for d in self._decls)
        return f"Objective({self.text!r}, [{decls}])"

    def latex(self) -> str:
        from ..text.symbolic import latex

        return latex(self._plan.checked.statement)

    def _repr_latex_(self) -> str:
        return f"${self.latex()}$"

    # -- evaluation --

    def forward(self, **inputs) -> torch.Tensor:
        return self.evaluate(**inputs)[0]

    def terms(self, **inputs) -> Dict[str, torch.Tensor]:
        """Every top-level term's value per example, by its printed name (sign not applied)."""
        return self.evaluate(**inputs)[1]

    def evaluate(self, **inputs) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The total and every top-level term from one pass: the same draws."""
        n = self._check_inputs(inputs)
        state = self.__dict__
        calls = state["_calls"] = state["_calls"] + 1
        validate = state["_validate"] and (calls <= VALIDATE_FIRST or calls % VALIDATE_EVERY == 0)
        runner = self.__dict__.get("_compiled")
        if runner is None or validate:  # validation runs eagerly: data-dependent checks do not trace
            return self._run(inputs, n, validate)
        try:
            return runner(inputs, n)
        except FormulaError:
            raise
        except (RuntimeError, ValueError, IndexError, TypeError, ArithmeticError) as err:
            raise FormulaInputError(f"evaluating the compiled objective failed with inputs "
                                    f"{_shapes(inputs)}: {_first_line(err)}{self._dtype_hint(inputs)}",
                                    self.text) from None

    def _run(self, inputs: Dict[str, Any], n: int, validate: bool = False):
        plan = self._plan
        s = self._samples
        if s > 1:
            inputs = {k: _replicate(v, s, n) if k in plan.data_inputs or _per_example(v, n) else v
                      for k, v in inputs.items()}
        ctx = Ctx(self._decls, inputs, n * s, validate)
        values: Dict[str, torch.Tensor] = {}
        total = None
        for term, fn in plan.terms:
            try:
                value = fn(ctx)
            except FormulaError:
                raise
            except _EVALUATION_ERRORS as err:
                raise self._failure(term, err, inputs) from None
            if not (torch.is_tensor(value) and value.shape == (n * s,)):
                value = self._per_example_value(value, term, n * s, inputs)
            if s > 1:
                value = value.reshape(s, n)
                value = (value if value.is_floating_point() else value.double()).mean(0)
            values[term.name] = value
            if total is None:
                total = value if term.sign > 0 else -value
            else:
                total = total + value if term.sign > 0 else total - value
        return total, values

    def _failure(self, term: R.Term, err: Exception, inputs) -> FormulaInputError:
        return FormulaInputError(f"evaluating the term {term.name} failed with inputs {_shapes(inputs)}: "
                                 f"{_first_line(err)}{self._dtype_hint(inputs)}", self.text, _span(term.src))

    def _dtype_hint(self, inputs) -> str:
        """When float inputs and the parameters disagree in dtype, say so and what to do."""
        return dtype_hint(self.parameters(), list(inputs), list(inputs.values()))

    def _per_example_value(self, value, term: R.Term, n: int, inputs) -> torch.Tensor:
        if not torch.is_tensor(value):
            like = next((v for v in inputs.values() if torch.is_tensor(v) and v.is_floating_point()), None)
            if like is None:
                raise FormulaInputError(f"the term {term.name} is a constant and no tensor input gives it a "
                                        "device", self.text, _span(term.src))
            try:
                return torch.full((n,), float(value), dtype=like.dtype, device=like.device)
            except (OverflowError, RuntimeError):
                raise FormulaInputError(f"the term {term.name} is the constant {value}, too large for "
                                        f"{like.dtype}", self.text, _span(term.src)) from None
        if value.dim() == 0:
            return value.expand(n)
        if value.dim() > 1 and value.shape[0] == n and value[0].numel() == 1:
            return value.reshape(n)  # [batch, 1]: a function's per-example scalar
        if value.shape != (n,):
            raise FormulaInputError(
                f"the term {term.name} has shape {list(value.shape)}, but a term must have one value per example "
                f"([{n}]); check the event dimensions of the distributions and the shapes of the inputs",
                self.text, _span(term.src))
        return value

    def _check_inputs(self, inputs: Mapping[str, Any]) -> int:
        """Names present and known, data tensors agreeing on the batch size; returns the batch size.

        A call with the same names and shapes as the last one skips the checks (the training-loop case)."""
        key = []  # a loop, not a generator: every call builds this key
        for k, v in inputs.items():
            key.append((k, v.shape if isinstance(v, torch.Tensor) else (type(v), v if isinstance(v, int) else None)))
        key = tuple(key)
        if key == self._last_inputs:
            return self._last_n
        n = self._validate_inputs(inputs)
        self._last_inputs, self._last_n = key, n
        return n

    def _validate_inputs(self, inputs: Mapping[str, Any]) -> int:
        checked = self._plan.checked
        known = set(checked.inputs) | set(checked.optional_inputs)
        for k in inputs:
            if k not in known and not self._extra_allowed(k):
                raise FormulaInputError(f"unexpected input {k}; this objective takes "
                                        f"{', '.join(checked.inputs + checked.optional_inputs) or 'no inputs'}")
        missing = [k for k in checked.inputs if k not in inputs]
        if missing:
            raise FormulaInputError(
                "missing input" + ("s " if len(missing) > 1 else " ") + ", ".join(
                    f"{k} ({self._expected(k)})" for k in missing)
                + f"; this objective takes {', '.join(checked.inputs + checked.optional_inputs)}")
        n = None
        for k in sorted(self._plan.data_inputs):
            v = inputs.get(k)
            if v is None:
                continue
            if not torch.is_tensor(v) or v.dim() < (2 if k in checked.sequences else 1):
                got = f"shape {list(v.shape)}" if torch.is_tensor(v) else type(v).__name__
                raise FormulaInputError(f"input {k} must be a tensor {self._expected(k)}, got {got}")
            if n is None:
                n = v.shape[0]
            elif v.shape[0] != n:
                raise FormulaInputError(f"input {k} has batch size {v.shape[0]}, other inputs have {n}: "
                                        f"expected {self._expected(k)}")
        self._check_event_ranks(inputs)
        for k, v in inputs.items():
            if k in self._plan.data_inputs:
                continue
            if not torch.is_tensor(v) and not isinstance(v, (int, float)):
                raise FormulaInputError(f"input {k} must be a number or a tensor, got {type(v).__name__}")
        if n is None and BATCH_SIZE in inputs:
            n = inputs[BATCH_SIZE]
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise FormulaInputError(f"{BATCH_SIZE} must be a positive integer, got {n!r}")
        if n is None:
            n = next((v.shape[0] for v in inputs.values() if torch.is_tensor(v) and v.dim() == 1), 1)
        if n == 0:
            raise FormulaInputError(f"the batch is empty (inputs {_shapes(inputs)}): pass at least one example")
        return n

    def _check_event_ranks(self, inputs: Mapping[str, Any]) -> None:
        """Observed data need a batch dimension before the event: a 1-D `x` for a 784-d Bernoulli is one example
        without its batch dimension, not 784 examples."""
        for name, i in self._plan.checked.observed:
            v, decl = inputs.get(name), self._decls[i]
            rank = getattr(decl, "event_dims", None) if getattr(decl, "elementwise", False) else None
            if torch.is_tensor(v) and isinstance(rank, int) and v.dim() != 1 + rank:
                fix = f"for one example pass {name}[None]" if v.dim() < 1 + rank else (
                    f"declare event_dims={v.dim() - 1} if each example is {list(v.shape[1:])}")
                raise FormulaInputError(
                    f"input {name} has shape {list(v.shape)}, but as a value of {var_text(_signature(decl))} it "
                    f"needs a batch dimension and {rank} event dimension(s): [batch, *event]; {fix}")

    def _extra_allowed(self, name: str) -> bool:
        # A sequence may be passed whole where steps x_1, x_2 are inputs; `batch_size` sizes a call without data.
        return name == BATCH_SIZE or any(k.startswith(name + "_") for k in self._plan.checked.inputs)

    def _expected(self, name: str) -> str:
        if name in self._plan.checked.sequences:
            return "[batch, T, *event]"
        if name in self._plan.data_inputs:
            return "[batch, *event]"
        return "a scalar: number, 0-d tensor or [batch]"


def _shapes(inputs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {list(v.shape)}" if torch.is_tensor(v) else f"{k}={v!r}" for k, v in inputs.items())


def _per_example(v, n) -> bool:
    return torch.is_tensor(v) and v.dim() >= 1 and v.shape[0] == n


def _replicate(v, s: int, n: int):
    if not torch.is_tensor(v) or v.dim() == 0:
        return v
    return v.unsqueeze(0).expand(s, *v.shape).reshape(s * n, *v.shape[1:])


def _span(node: N.Node):
    return (node.span.start, node.span.end) if node.span is not None else None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


__all__ = ["compile", "Objective", "Plan"]
