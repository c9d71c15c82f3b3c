"""`SequenceDecoder`: `p(x_t | z, x_{<t})` over integer tokens, scored for every t at once with teacher forcing.

`fm.SequenceDecoder("p(x_t|z, x_{<t})", net=decoder, start=0)` holds ONE network that returns the logits of every
step from the whole sequence shifted right by one position, a start token in front:

    net(z, x_in) -> logits [batch, T, V]    where x_in = [start, x_1, ..., x_{T-1}]   ([batch, T], torch.long)

the arguments in the declared order of the conditions, the prefix condition `x_{<t}` replaced by `x_in`. Row t-1
of the output is the logits of `p(x_t | z, x_{<t})`, so the net must be causal: row t-1 may read x_in[:, :t] only
(a GRU run forward over x_in is; a bidirectional one is not, and a validating call says so). In a formula the declaration is used only as a
whole sum over its step, `\\sum_{t=1}^{T} \\log p(x_t | z, x_{<t})`, which is then ONE network call and one
vectorised log-density (formula.compiler.teacher_forcing), not T calls on prefixes:

- **Start token.** `start=` (default 0) is the token in front of `x_1`: reserve one, such as `<s>`.
- **Padded sequences.** A sequence input `[batch, T_max]` of different lengths: pass the lengths as the sum's
  upper bound, `T=lengths` (`[batch]` integers, each in 0..T_max), and steps t > T_b of example b contribute 0;
  or declare `pad=` (a token id) and steps where `x_t == pad` contribute 0. Both may be used together.
- **Generation.** `generate(z=z, steps=20)` runs the net token by token from the start token (free running, no
  teacher forcing): `greedy=True` takes the arg-max, otherwise each token is drawn from
  `Categorical(logits=logits / temperature)`; `stop=` ends a sequence at that token (later positions hold it).

`condition(*given)` with a prefix `[batch, t-1]` is the distribution of one step (the net run on
`[start, prefix]`, its last row), so `log_prob` and `sample` of the declaration itself work step by step as well.

    >>> import torch, formula as fm
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__(); self.emb = torch.nn.Embedding(6, 4); self.out = torch.nn.Linear(4 + 2, 6)
    ...     def forward(self, z, x_in):
    ...         h = self.emb(x_in).cumsum(1)  # causal: row t-1 sums the embeddings of x_in[:, :t]
    ...         return self.out(torch.cat([h, z[:, None].expand(-1, x_in.shape[1], -1)], -1))
    >>> p = fm.SequenceDecoder("p(x_t|z, x_{<t})", net=Net(), start=0)
    >>> p.generate(z=torch.zeros(3, 2), steps=5).shape
    torch.Size([3, 5])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import torch
import torch.distributions as D
from torch.distributions import constraints

from ..errors import FormulaCheckError
from ..lang import nodes as N
from ..text.printing import to_ascii as var_text
from . import validation
from .protocol import Capabilities, Declaration

__all__ = ["SequenceDecoder", "SequenceCapabilities"]


@dataclass(frozen=True)
class SequenceCapabilities(Capabilities):
    """A teacher-forced declaration's capabilities: the step letter of its variable (`t` of `x_t`) and the
    position of the prefix condition (`x_{<t}`) among its conditions. The compiler reads these to evaluate
    `\\sum_t \\log p(x_t|z, x_{<t})` in one call."""

    step: str = "t"
    history: int = 0


def _int_option(name: str, value: Any, decl: "SequenceDecoder", allow_none: bool) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise decl._declaration_error(f"{name}= must be a token id (a non-negative int), got {value!r}")
    return value


class SequenceDecoder(Declaration):
    """`p(x_t | ..., x_{<t})` over tokens from one causal network scoring every step at once (teacher forcing).

    `net(*conditions)` gets the conditions in declared order with the prefix `x_{<t}` replaced by the sequence
    shifted right, `[start, x_1, ..., x_{T-1}]` (`[batch, T]`, long), and returns logits `[batch, T, V]` (or a
    dict with `logits` or `probs`). `start` is the start token, `pad` an optional padding token whose steps
    contribute 0. See the module docstring for masks and generation.
    """

    data_hint = "tokens are integer ids in 0..V-1: a [batch, T] torch.long tensor"

    def __init__(self, signature: str, net: Callable, *, start: int = 0, pad: Optional[int] = None):
        super().__init__(signature)
        if not callable(net):
            raise self._declaration_error(f"net= must be an nn.Module or a callable, got {type(net).__name__}")
        step, history = self._read_signature()
        self.net = net
        self.start = _int_option("start", start, self, False)
        self.pad = _int_option("pad", pad, self, True)
        self.register_buffer("_like", torch.zeros((), dtype=torch.long), persistent=False)  # device of tokens
        self._capabilities = SequenceCapabilities(
            reparameterised=False, discrete=True, enumerable=False, has_density=True, can_sample=False,
            family=D.Categorical, label="SequenceDecoder (teacher-forced)", step=step, history=history)

    def _declaration_error(self, message: str) -> FormulaCheckError:
        return FormulaCheckError(f"SequenceDecoder {self.signature_text}: {message}", self.signature_text,
                                 self._whole())

    def _read_signature(self) -> Tuple[str, int]:
        """The step letter of `x_t` and the position of the condition `x_{<t}`: a check error otherwise."""
        v = self.parsed.vars[0]
        item = v.index[0] if len(v.index) == 1 else None
        if not (isinstance(item, N.Var) and not item.index):
            raise self._declaration_error(f"the variable must be one step of a sequence, such as x_t; got "
                                          f"{var_text(v)}")
        prefix = N.Var(v.name, (N.Before(N.Var(item.name)),), v.mark, v.primes, v.label)
        found = [i for i, g in enumerate(self.parsed.given)
                 if isinstance(g, N.Var) and (g.name, g.index, g.mark, g.primes) ==
                 (prefix.name, prefix.index, prefix.mark, prefix.primes)]
        if not found:
            raise self._declaration_error(f"a teacher-forced decoder conditions on the steps before, "
                                          f"{var_text(prefix)}: declare p({var_text(v)}|..., {var_text(prefix)})")
        return item.name, found[0]

    @property
    def capabilities(self) -> Capabilities:
        """An exact density; no draws inside a formula (generate() draws token by token)."""
        return self._capabilities

    # -- teacher forcing: every step in one call --

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        """`[start, x_1, ..., x_{T-1}]`: what the net sees for every step at once (`[..., T]`, long)."""
        head = torch.full((*x.shape[:-1], 1), self.start, dtype=torch.long, device=x.device)
        return torch.cat([head, x[..., :-1].long()], -1)

    def step_logits(self, x_in: torch.Tensor, others: Sequence[Any]) -> torch.Tensor:
        """The net's logits for every position of `x_in` (`[..., T]`), given the other conditions in declared
        order: `[..., T, V]`. Leading dimensions beyond one batch dimension are flattened for the net."""
        lead = x_in.shape[:-1]
        flat = x_in.reshape(-1, x_in.shape[-1]) if len(lead) != 1 else x_in
        args = [_flatten(o, lead) for o in others]
        args.insert(self._capabilities.history, flat)
        names = [n for i, n in enumerate(self.given_names) if i != self._capabilities.history]
        names.insert(self._capabilities.history, "shifted " + self.var_names[0].split("_")[0])
        out = self._call_module(self.net, None, names, args)
        logits = self._logits(out, flat)
        return logits.reshape(*lead, *logits.shape[-2:]) if len(lead) != 1 else logits

    def _logits(self, out: Any, x_in: torch.Tensor) -> torch.Tensor:
        if isinstance(out, Mapping):
            if "logits" in out:
                out = out["logits"]
            elif "probs" in out:
                out = out["probs"].clamp_min(torch.finfo(out["probs"].dtype).tiny).log()
            else:
                raise self._input_error(f"its net returned a dict with {', '.join(out)}; a teacher-forced net "
                                        "returns logits [batch, T, V] (or a dict with logits or probs)")
        if not (torch.is_tensor(out) and out.dim() == 3 and out.shape[:2] == x_in.shape):
            got = list(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise self._input_error(f"its net got a shifted sequence {list(x_in.shape)} and returned {got}; a "
                                    f"teacher-forced net returns logits [batch, T, V] = [{x_in.shape[0]}, "
                                    f"{x_in.shape[1]}, V], one row per step")
        return out

    def sequence_log_prob(self, x: torch.Tensor, others: Sequence[Any], validate: bool = False) -> torch.Tensor:
        """`log p(x_t | ..., x_{<t})` for every step t of `x` (`[..., T]` tokens), from one call: `[..., T]`."""
        x_in = self.shifted(x)
        rng = _rng_state(x_in) if validate else None
        logits = self.step_logits(x_in, others)
        if validate:
            validation.check_value(self._where(), self.var_names[0], x, constraints.integer_interval(
                0, logits.shape[-1] - 1), self.data_hint)
            self._check_causal(x_in, others, logits, rng)
        return D.Categorical(logits=logits, validate_args=False).log_prob(x.long())

    def _check_causal(self, x_in: torch.Tensor, others: Sequence[Any], logits: torch.Tensor, rng) -> None:
        """On validating calls: the net run again from the same random state (word dropout draws the same) with
        the last input token changed must give the same logits for every earlier step; else its rows read
        tokens after their own, and the teacher-forced likelihood would be silently wrong."""
        if x_in.shape[-1] < 2 or x_in.device.type == "meta":
            return
        changed = torch.cat([x_in[..., :-1], (x_in[..., -1:] + 1) % logits.shape[-1]], -1)
        with torch.no_grad(), torch.random.fork_rng(devices=rng[1] if rng[1] is not None else []):
            _set_rng_state(rng)
            again = self.step_logits(changed, others)
        if not torch.allclose(again[..., :-1, :], logits.detach()[..., :-1, :], rtol=1e-4, atol=1e-5):
            raise self._input_error("its net is not causal: changing the last token it reads changed the logits "
                                    "of earlier steps. Row t-1 of its output may depend on x_in[:, :t] only (the "
                                    "tokens before x_t): run an RNN forward only, mask attention causally, keep "
                                    "batch statistics off the time axis")

    def pad_mask(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Where `x` is not the padding token (None without `pad=`)."""
        return None if self.pad is None else x != self.pad

    # -- one step: the declaration protocol --

    def condition(self, *given_values: torch.Tensor, validate: bool = False) -> D.Distribution:
        """The distribution of one step given the conditions in declared order, the prefix `[batch, t-1]`
        (the net run on `[start, prefix]`; its last row)."""
        self._check_count(given_values)
        history = self._capabilities.history
        prefix = given_values[history]
        others = [g for i, g in enumerate(given_values) if i != history]
        tokens = torch.cat([torch.full((*prefix.shape[:-1], 1), self.start, dtype=torch.long,
                                       device=prefix.device), prefix.long()], -1)
        logits = self.step_logits(tokens, others)[..., -1, :]
        return D.Categorical(logits=logits, validate_args=False)

    def _data_support(self, dist: Optional[D.Distribution]) -> Optional[constraints.Constraint]:
        return constraints.nonnegative_integer if dist is None else dist.support

    # -- free-running generation --

    def generate(self, steps: int, *, greedy: bool = False, temperature: float = 1.0, start: Optional[int] = None,
                 stop: Optional[int] = None, **given: torch.Tensor) -> torch.Tensor:
        """`[batch, steps]` tokens generated one at a time from the start token: step t runs the net on the
        tokens so far (`[start, x_1, ..., x_{t-1}]`) and takes its last row's logits; `greedy=True` takes the
        arg-max, else draws from `Categorical(logits=logits / temperature)` (torch's global generator: seed
        with torch.manual_seed). `stop=` ends each sequence at that token: later positions hold `stop`, and the
        loop ends when every sequence has stopped. The other conditions are given by name (`z=z`). No gradients."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise self._input_error(f"generate: steps= must be a positive int, got {steps!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise self._input_error(f"generate: temperature= must be a positive number, got {temperature!r}")
        history = self._capabilities.history
        names = tuple(n for i, n in enumerate(self.given_names) if i != history)
        others = self._gather(given, names, "generate")
        first = _int_option("start", start, self, True)
        like = next((o for o in others if torch.is_tensor(o) and o.dim() >= 1), None)
        if like is None:
            raise self._input_error("generate: give the conditions as tensors with a batch dimension, "
                                    f"{', '.join(names) or 'none'}")
        tokens = torch.full((like.shape[0], 1), self.start if first is None else first, dtype=torch.long,
                            device=like.device)
        done = torch.zeros(like.shape[0], dtype=torch.bool, device=like.device)
        with torch.no_grad():
            for _ in range(steps):
                logits = self.step_logits(tokens, others)[:, -1]
                if greedy:
                    token = logits.argmax(-1)
                else:
                    token = D.Categorical(logits=logits / temperature, validate_args=False).sample()
                if stop is not None:
                    token = torch.where(done, torch.full_like(token, stop), token)
                    done = done | (token == stop)
                tokens = torch.cat([tokens, token[:, None]], 1)
                if stop is not None and bool(done.all()):
                    break
        out = tokens[:, 1:]
        if out.shape[1] < steps:  # every sequence stopped early
            out = torch.cat([out, out.new_full((out.shape[0], steps - out.shape[1]), stop)], 1)
        return out

    def extra_repr(self) -> str:
        pad = f", pad={self.pad}" if self.pad is not None else ""
        return f"{self.signature_text}, start={self.start}{pad}"


def _rng_state(like: torch.Tensor):
    """The random state a net run on `like`'s device draws from (CPU, and the CUDA device when there)."""
    cuda = like.device if like.device.type == "cuda" else None
    return torch.get_rng_state(), ([cuda] if cuda is not None else None), (
        torch.cuda.get_rng_state(cuda) if cuda is not None else None)


def _set_rng_state(state) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[2], state[1][0])


def _flatten(value: Any, lead: torch.Size) -> Any:
    """A condition as the net sees it when the tokens' leading dimensions `lead` are flattened to one: a value
    with those leading dimensions is flattened; a per-example value (`[batch, ...]`, the last of them) is first
    expanded to them; anything else passes unchanged."""
    if len(lead) == 1 or not torch.is_tensor(value):
        return value
    k = len(lead)
    if value.dim() >= k and value.shape[:k] == lead:
        return value.reshape(-1, *value.shape[k:])
    if value.dim() >= 1 and value.shape[0] == lead[-1]:
        return value.expand(*lead[:-1], *value.shape).reshape(-1, *value.shape[1:])
    return value
