"""Several data sources in one objective: M2's labelled and unlabelled data with batches of their own sizes.

Each top-level term reads the data set its expectation names (`E_{\\tilde p_l(x, y)}[...]`, `E_{\\tilde p_u(x)}[...]`,
declared with `fm.Data`), is evaluated on that source's batch and averaged over it; the objective is the signed sum
of those means. `Sources(objective)` keeps the objective protocol (`evaluate`, `inputs`), so `fm.Trainer` trains
it unchanged; `cycle_longest` makes one loader of one loader per source.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple

import torch
from torch import nn

from ..check import resolved as R
from ..check.kinds import DeclKind
from ..compiler.context import Ctx
from ..compiler.objective import _per_example, _replicate
from ..errors import FormulaInputError

SEPARATOR = "."  # a source's input is named `<source>.<variable>`: `p_l.x`, `p_u.x`


def source_name(decl) -> str:
    """A data declaration's source name: its letter and subscript without decorations (`\\tilde p_l` -> `p_l`)."""
    parsed = decl.parsed
    return parsed.name + (f"_{parsed.sub}" if parsed.sub else "")


def _data_decls(node, found: set) -> None:
    """The declarations a checked node reads data from (its expectations' data steps)."""
    if isinstance(node, R.Expectation):
        found.update(d.bound.decl for d in node.draws if d.data)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            for child in value if isinstance(value, tuple) else (value,):
                if dataclasses.is_dataclass(child) and f.name != "src":
                    _data_decls(child, found)


class Sources(nn.Module):
    """`objective`, each term evaluated on the batch of the data set it reads and averaged over that batch.

    `samples=S` (default: the `samples=` the objective was compiled with) draws S independent traces per example,
    as a plain call does: a term's value is its mean over the S draws of each of its batch's examples."""

    def __init__(self, objective: nn.Module, samples: Optional[int] = None):
        super().__init__()
        self.objective = objective
        plan, decls = objective._plan, objective._decls
        samples = getattr(objective, "_samples", 1) if samples is None else samples
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise FormulaInputError(f"samples must be a positive integer, got {samples!r}")
        self.samples = samples
        names = {i: source_name(d) for i, d in enumerate(decls) if d.kind is DeclKind.DATA}
        self.term_source: Dict[str, str] = {}
        for term, _ in plan.terms:
            found: set = set()
            _data_decls(term.expr, found)
            if len(found) != 1:
                raise FormulaInputError(
                    f"the term {term.name} reads {'no data set' if not found else 'several data sets'}: with several "
                    f"sources each term is an expectation over one, E_{{\\tilde p_l(x, y)}}[...]", objective.text)
            self.term_source[term.name] = names[found.pop()]
        self.sources = tuple(sorted(set(self.term_source.values())))
        read = {names[i]: decls[i].var_names for i in names if names[i] in self.sources}
        data = {n for names_ in read.values() for n in names_}
        self.scalars = tuple(n for n in objective.inputs if n not in data)
        self.inputs = tuple(f"{s}{SEPARATOR}{n}" for s in self.sources for n in read[s]) + self.scalars

    def split(self, inputs: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
        """`{"p_l.x": .., "p_u.x": .., "alpha": ..}` -> one input dict per source (scalars in each)."""
        out: Dict[str, Dict[str, Any]] = {s: {} for s in self.sources}
        for key, value in inputs.items():
            source, sep, name = key.partition(SEPARATOR)
            if sep and source in out:
                out[source][name] = value
            elif key in self.scalars:
                for batch in out.values():
                    batch[key] = value
            else:
                raise FormulaInputError(f"unexpected input {key}; these sources take {', '.join(self.inputs)}")
        return out

    def evaluate(self, **inputs: Any) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The objective (a one-element tensor: the signed sum of each term's mean over its own batch) and each
        term's mean."""
        batches, obj = self.split(inputs), self.objective
        means: Dict[str, torch.Tensor] = {}
        total = None
        s = self.samples
        for term, fn in obj._plan.terms:
            batch = batches[self.term_source[term.name]]
            n = _batch_size(batch, term.name)
            if s > 1:  # S copies of each example, sample-major as a plain call lays them out
                batch = {k: _replicate(v, s, n) if _per_example(v, n) else v for k, v in batch.items()}
            value = fn(Ctx(obj._decls, batch, n * s))
            mean = (value if torch.is_tensor(value) else torch.as_tensor(float(value))).mean()
            means[term.name] = mean
            signed = mean if term.sign > 0 else -mean
            total = signed if total is None else total + signed
        return total.reshape(1), means

    def forward(self, **inputs: Any) -> torch.Tensor:
        return self.evaluate(**inputs)[0]


def _batch_size(batch: Mapping[str, Any], term: str) -> int:
    sizes = {v.shape[0] for v in batch.values() if torch.is_tensor(v) and v.dim() >= 1}
    if len(sizes) != 1:
        raise FormulaInputError(f"the batch of the term {term} has inputs of sizes {sorted(sizes)}: one size per "
                                "source")
    return sizes.pop()


class cycle_longest:
    """One loader of one loader per source: each step takes a batch of every source, the shorter ones cycled, for
    as many steps as the longest has batches; a batch's names become `<source>.<name>`."""

    def __init__(self, loaders: Mapping[str, Iterable[Mapping[str, Any]]]):
        self.loaders = dict(loaders)
        self.longest = max(self.loaders, key=lambda s: len(self.loaders[s]))

    def __len__(self) -> int:
        return len(self.loaders[self.longest])

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        others = {s: _cycled(l) for s, l in self.loaders.items() if s != self.longest}
        for batch in self.loaders[self.longest]:
            merged = {f"{self.longest}{SEPARATOR}{k}": v for k, v in batch.items()}
            for s, it in others.items():
                merged.update({f"{s}{SEPARATOR}{k}": v for k, v in next(it).items()})
            yield merged


def _cycled(loader: Iterable) -> Iterator:
    """`loader` again and again (re-iterated each time, so a shuffling loader reshuffles)."""
    for _ in itertools.count():
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise FormulaInputError("a data source's loader yields no batches")


__all__ = ["Sources", "cycle_longest", "source_name", "SEPARATOR"]
