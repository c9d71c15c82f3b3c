"""The runtime context of one evaluation: inputs, the trace of draws, bound sum indices, memoised conditionals."""

from __future__ import annotations

from typing import Any, Callable, Dict

import torch

VECTOR = -(1 << 62)  # the value of a sum index that runs along a tensor dimension (a sampling set's draws);
# an int, not object(), so that torch.compile can compare trace keys holding it without a graph break


class Ctx:
    """Everything one call needs. The memo is keyed by declaration and by the trace keys and write versions of the
    conditioning values (and the values of sum indices), not by tensor identity, so torch.compile can trace a call
    without guarding on `id()` of its inputs."""

    __slots__ = ("decls", "inputs", "trace", "versions", "clock", "env", "n", "memo", "lead", "validate", "outer",
                 "depth")

    def __init__(self, decls, inputs, n, validate: bool = False):
        self.decls = decls
        self.inputs = inputs
        self.trace: Dict[tuple, torch.Tensor] = {}
        self.versions: Dict[tuple, int] = {}
        self.clock = 0
        self.env: Dict[str, Any] = {}
        self.n = n
        self.memo: Dict[tuple, Any] = {}
        self.lead = 1  # leading dimensions before an event: examples, and one more per vectorised sum
        self.validate = validate
        self.outer: tuple = ()  # sizes of the enumerated dimensions in front (innermost first): \sum_y over C values
        self.depth: Dict[tuple, int] = {}  # trace key -> how many enumerated dimensions its value has

    def put(self, key: tuple, value) -> None:
        """Write a draw (or a sequence step) into the trace; conditionals memoised on the old value expire."""
        self.clock += 1
        self.trace[key] = value
        self.versions[key] = self.clock
        self.depth[key] = len(self.outer)

    def drop(self, key: tuple, saved) -> None:
        """Restore the trace entry a scope shadowed (or remove it)."""
        if saved is None:
            self.clock += 1
            self.trace.pop(key, None)
            self.versions[key] = self.clock
        else:
            self.put(key, saved)

    def bind(self, name: str, value, body: Callable[["Ctx"], Any]):
        """Evaluate `body` with sum index `name` bound to `value`, restoring the outer binding after."""
        saved = self.env.get(name, _UNBOUND)
        self.env[name] = value
        try:
            return body(self)
        finally:
            if saved is _UNBOUND:
                self.env.pop(name, None)
            else:
                self.env[name] = saved


_UNBOUND = object()

Fn = Callable[[Ctx], Any]

__all__ = ["Ctx", "Fn", "VECTOR"]
