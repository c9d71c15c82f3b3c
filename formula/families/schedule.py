"""`fm.Schedule("alpha_bar", values)`: a noise schedule (DDPM's \\bar\\alpha_t, a list of sigmas), looked up in a
formula at an integer step, `\\bar\\alpha_t`, per example where t is drawn (`t \\sim \\mathcal{U}\\{1, \\ldots, T\\}`).

Naming: the schedule's name is the variable as the formula writes it without its index. It may be written as the
formula does (`"\\bar\\alpha"`, `"\\bar{alpha}"`, `"alpha"`, `"sigma"`) or as a Python name whose last part is the
decoration (`"alpha_bar"`, `"x_hat"`, `"sigma_tilde"`); `"alpha_bar"` and `"\\bar\\alpha"` both name `\\bar\\alpha`.
Steps count from `start` (1 by default: `values[0]` is the value at t = 1, as `\\mathcal{U}\\{1, \\ldots, T\\}`
draws); `start=0` when `values[0]` is the value at t = 0.

    >>> import torch
    >>> s = Schedule("alpha_bar", torch.tensor([0.9, 0.5, 0.1]))
    >>> s.name, [round(v, 2) for v in s(torch.tensor([1, 3])).tolist()], round(s(2).item(), 2)
    ('\\\\bar{alpha}', [0.9, 0.1], 0.5)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..check.checker import SCHEDULE_STEP
from ..check.kinds import DeclKind
from ..errors import FormulaCheckError, FormulaInputError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from .protocol import Capabilities, Declaration

__all__ = ["Schedule", "schedule_variable"]

_MARKS = ("bar", "hat", "tilde")
_CAPABILITIES = Capabilities(reparameterised=False, discrete=False, enumerable=False, has_density=False,
                             can_sample=False, family=None, label="Schedule")


def schedule_variable(name: str) -> N.Var:
    """The variable a schedule's name stands for: `"alpha_bar"` and `"\\bar\\alpha"` are `\\bar\\alpha`."""
    if not isinstance(name, str) or not name.strip():
        raise FormulaCheckError(f"a schedule's name is the variable it is used as, e.g. \"alpha_bar\" for "
                                f"\\bar\\alpha_t; got {name!r}", str(name))
    base, _, last = name.strip().rpartition("_")
    if base and last in _MARKS and "\\" not in name:
        return N.Var(base, mark=last)
    from ..lang.parser import parse

    try:
        node = parse(name).statements[-1]
    except Exception:  # noqa: BLE001  (any syntax error of the name is the same mistake)
        node = None
    if not isinstance(node, N.Var) or node.index:
        raise FormulaCheckError(f"Schedule {name!r}: the name must be a variable without index, as the formula "
                                "writes it before _t (\"alpha_bar\", \"\\\\bar\\\\alpha\", \"sigma\")", name,
                                (0, len(name)))
    return node


class Schedule(Declaration):
    """Values indexed by an integer step, used as `\\bar\\alpha_t` in a formula; `values` is a tensor `[steps, *event]`
    of the steps `start, start + 1, ...` (kept as a buffer: it moves with `.to(device)` and is saved in the
    state_dict; an `nn.Parameter` is learned, e.g. a mixture's means `\\mu_k` in `\\sum_k \\pi_k \\mathcal{N}(x \\mid
    \\mu_k, \\sigma_k^2 I)`)."""

    kind = DeclKind.FUNCTION

    def __init__(self, name: str, values: Any, start: int = 1):
        nn.Module.__init__(self)
        var = schedule_variable(name)
        values = values if torch.is_tensor(values) else torch.as_tensor(values, dtype=torch.get_default_dtype())
        if values.dim() < 1 or values.shape[0] == 0:
            raise FormulaCheckError(f"Schedule {name!r}: values must be a tensor [steps, *event] with at least one "
                                    f"step, got shape {list(values.shape)}", name, (0, len(name)))
        self.variable = var
        self.parsed = N.Dist(var.name, (SCHEDULE_STEP,), mark=var.mark)  # the checker knows a schedule by its step
        self.signature_text = self.signature = var_text(N.Dist(var.name, (N.Var("t"),), mark=var.mark))
        self.name = var_text(var)
        self.var_names, self.given_names = ("t",), ()
        self.start = int(start)
        if isinstance(values, nn.Parameter):
            self.values = values  # learned: a parameter of the objective
        else:
            self.register_buffer("values", values.detach().clone())

    @property
    def capabilities(self) -> Capabilities:
        """Looked up, never sampled or scored."""
        return _CAPABILITIES

    def forward(self, t: Any) -> torch.Tensor:
        """The value at step t: an integer (or a float holding one), or a tensor of steps, one per example."""
        if not torch.is_tensor(t):  # a sum index or a number: one value for every example
            if float(t) != int(t) or not 0 <= int(t) - self.start < len(self.values):
                raise self._input_error(f"{self.name}_t at t = {t}: steps are the integers {self.start}.."
                                        f"{self.start + len(self.values) - 1}")
            return self.values[int(t) - self.start]
        steps = t
        if steps.is_floating_point():
            if not bool((steps == steps.round()).all()):
                raise self._input_error(f"{self.name}_t needs an integer step t, got {steps.reshape(-1)[0].item()}")
            steps = steps.round()
        index = steps.long().to(self.values.device) - self.start
        last = self.start + len(self.values) - 1
        checkable = not index.is_meta and not torch.compiler.is_compiling()  # data-dependent: eager calls check
        if checkable and index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self.values)):
            bad = int(steps.reshape(-1)[(index.reshape(-1) < 0) | (index.reshape(-1) >= len(self.values))][0])
            raise FormulaInputError(f"Schedule {self.name}: step t = {bad} is outside its steps {self.start}..{last} "
                                    f"(it has {len(self.values)} values); check T against the schedule's length",
                                    self.signature_text, self._whole())
        return self.values[index]

    def condition(self, *given_values: Any, validate: bool = False):
        raise FormulaCheckError(f"Schedule {self.name}: a schedule has no distribution; use it as {self.name}_t",
                                self.signature_text, self._whole())

    def extra_repr(self) -> str:
        return f"{self.name}, {len(self.values)} steps from t = {self.start}"
