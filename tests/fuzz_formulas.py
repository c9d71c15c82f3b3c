"""Seeded random formulas for the compile fuzz campaign (test_compile_fuzz.py): generated texts over three worlds of
declarations, mutations of the model cases' formulas, the inputs a call needs, and a crash signature.

Everything is deterministic in the seed: the same seed gives the same text, declarations and inputs, so that a
crash found in CI reproduces with one call of `formula_for(seed)`.
"""

from __future__ import annotations

import random
import re
import traceback
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

import formula as fm
from contract.cases import CASES, labels_one_hot
from models import C, X, Z, Gaussian, Logits, binary
from test_compile_models import SeqPosterior

B, T = 3, 3  # examples per call; sequence length of the time world
MAX_DEPTH = 5  # operator nesting of a generated expression (time sums nest at most twice: T^2 steps)


@dataclass(frozen=True)
class World:
    """A set of declarations, the atoms and the operators over them that generated formulas combine."""

    name: str
    declarations: Callable[[], Sequence[nn.Module]]
    atoms: Tuple[str, ...]
    wrappers: Tuple[str, ...]  # world-specific operators with one hole, `@A`
    data: Dict[str, Callable[[], torch.Tensor]]  # inputs by name; every other input is a scalar


def _static_declarations() -> Sequence[nn.Module]:
    """A continuous and a discrete latent, a declared function, the data distribution."""
    torch.manual_seed(0)
    return (fm.Normal("q(z|x)", net=Gaussian(X)), fm.Bernoulli("p(x|z)", net=Logits(Z)),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)), fm.Categorical("q(y|x)", net=Logits(X, C)),
            fm.Categorical("p(y)", probs=torch.full((C,), 1.0 / C)),
            fm.Normal("q(z|x,y)", net=labels_one_hot(Gaussian(X + C))),
            fm.Bernoulli("p(x|y,z)", net=labels_one_hot(Logits(C + Z))),
            fm.Function("D(x)", net=nn.Sequential(nn.Linear(X, 1), nn.Sigmoid())), fm.Data("p_{data}(x)"),
            fm.Function("G(z)", net=nn.Sequential(nn.Linear(Z, X), nn.Sigmoid())),
            fm.Function("T(x,z)", net=lambda x, z: (x.sum(-1) * z.sum(-1))[..., None]))


def _family_declarations() -> Sequence[nn.Module]:
    """The other families: Laplace, one-hot and relaxed latents, a point mass, a Dirichlet prior."""
    torch.manual_seed(0)
    return (fm.Laplace("q(z|x)", net=Gaussian(X)), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)),
            fm.OneHotCategorical("q(c|x)", net=Logits(X, C)),
            fm.OneHotCategorical("p(c)", probs=torch.full((C,), 1.0 / C)),
            fm.RelaxedBernoulli("q(u|x)", net=Logits(X, Z), temperature=0.5),
            fm.RelaxedBernoulli("p(u)", temperature=0.5, probs=torch.full((Z,), 0.5)),
            fm.Deterministic("q(h|x)", net=nn.Linear(X, Z)), fm.Dirichlet("p(w)", concentration=torch.ones(C)),
            fm.Bernoulli("p(x|z)", net=Logits(Z)), fm.Bernoulli("p(x|c)", net=Logits(C)),
            fm.Bernoulli("p(x|u)", net=Logits(Z)), fm.Bernoulli("p(x|h)", net=Logits(Z)))


def _time_declarations() -> Sequence[nn.Module]:
    """The deep Markov model's three declarations and a function of the state."""
    torch.manual_seed(0)
    return (fm.Normal("q(z_t|z_{t-1},x)", net=SeqPosterior()), fm.Normal("p(z_t|z_{t-1})", net=Gaussian(Z)),
            fm.Bernoulli("p(x_t|z_t)", net=Logits(Z)), fm.Function("f(z)", net=nn.Linear(Z, 1)))


STATIC = World(
    "static", _static_declarations,
    atoms=("x", "z", "y", r"\beta", "K", "2", "0.5", "1", "1e39", "log p(x|z)", r"\log p_\theta(x|z)", "log q(z|x)",
           "log p(z)", "log p(y)", "log q(y|x)", "log p(x,z)", "log p(x|y,z)", "log q(z|x,y)", "D(x)", "log D(x)",
           r"\log \sigma(D(x))", r"\log \mathcal{N}(x \mid 0, I)", r"\log \mathcal{N}(z \mid 0, \sigma^2 I)",
           r"\log \mathcal{N}(0 \mid I)", r"\log \mathcal{N}(x, (x) \mid I)", "KL(q(z|x)||p(z))",
           r"D_{KL}(q(z|x) \| \mathcal{N}(0, I))", "KL(q(y|x)||p(y))", "KL(q(z|x,y)||p(z))", "H[q(y|x)]",
           "H[q(z|x)]", "log p_{data}(x)", "z_k", "log p(x,z_k)", "log q(z_k|x)", "p(x,z_k)/q(z_k|x)",
           "D(G(z))", r"\log(1 - D(G(z)))", "T(x,z)", r"\exp(T(x,z))"),
    wrappers=("E_{q(z|x)}[@A]", "E_q(z|x)[@A]", r"\mathbb{E}_{q_\phi(z|x)}\left[@A\right]", "E_{q(y|x)}[@A]",
              "E_{p(z)}[@A]", r"E_{z \sim p(z)}[@A]", r"\mathbb{E}_{x \sim p_{data}(x)}[@A]",
              "E_{q(z|x,y)}[@A]", "E[@A]", r"\sum_{k=1}^{K} @A", r"\sum_{y} q(y|x) @A",
              r"\sum_{k=1} @A", r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[@A\right]",
              r"E_{z_{1:K} ~ q(z|x)}[@A]", r"\log \frac{1}{K}\sum_{k=1}^{K} @A", "p(x,z) = p(x|z) p(z)\n@A"),
    data={"x": lambda: binary(B), "y": lambda: torch.arange(B) % C, "z": lambda: torch.randn(B, Z),
          "z_*": lambda: torch.randn(B, Z)},
)

FAMILIES = World(
    "families", _family_declarations,
    atoms=("log p(x|z)", "log p(x|c)", "log p(x|u)", "log p(x|h)", "log q(z|x)", "log q(c|x)", "log q(u|x)",
           "log q(h|x)", "log p(z)", "log p(c)", "log p(u)", "log p(w)", "KL(q(z|x)||p(z))", "KL(q(c|x)||p(c))",
           "KL(q(u|x)||p(u))", "KL(q(h|x)||p(z))", "H[q(c|x)]", "H[q(z|x)]", "H[q(u|x)]", "H[p(w)]", "c", "w",
           r"D_{KL}(q(z|x) \| \mathcal{N}(0, I))", "2"),
    wrappers=("E_{q(z|x)}[@A]", "E_{q(c|x)}[@A]", "E_{q(u|x)}[@A]", "E_{q(h|x)}[@A]", "E_{p(w)}[@A]",
              r"\sum_{c} q(c|x) @A", r"E_{z_{1:K} ~ q(z|x)}[@A]", r"\mathbb{E}_{q(c|x) q(z|x)}\left[@A\right]"),
    data={"x": lambda: binary(B), "c": lambda: torch.eye(C)[torch.arange(B) % C], "z": lambda: torch.randn(B, Z)},
)

TIME = World(
    "time", _time_declarations,
    atoms=("log p(x_t|z_t)", "KL(q(z_t|z_{t-1},x) || p(z_t|z_{t-1}))", "log p(z_t|z_{t-1})",
           "log q(z_t|z_{t-1},x)", "z_t", "z_{t-1}", "x_t", "T", "f(z_t)", "f(z_{t-1})", "1", r"\beta",
           r"\log \mathcal{N}(z_t \mid z_{t-1}, I)", "H[q(z_t|z_{t-1},x)]"),
    wrappers=("E_{q(z_t|z_{t-1},x)}[@A]", r"\mathbb{E}_{q(z_t|z_{t-1},x)}\left[@A\right]"),
    data={"x": lambda: binary(B * T).reshape(B, T, X), "z": lambda: torch.randn(B, T, Z),
          "z_*": lambda: torch.randn(B, Z), "x_*": lambda: binary(B)},
)

TIME_SUMS = (r"\sum_{t=1}^{T} @A", r"\sum_{t=2}^{T} @A", r"\sum_{t=1}^{2} @A")
UNARY = ("-@A", "log(@A)", "exp(@A)", r"\exp(@A)", "abs(@A)", "sqrt(@A)", r"\tanh(@A)", r"\sigma(@A)",
         "(@A)", r"\left(@A\right)", r"\beta @A", r"\underbrace{@A}_{rec}", r"\text{sg}[@A]", r"\|@A\|^2")
STATEMENTS = (r"\mathcal{L}(x) = @A", r"\log p(x) \geq @A", "@A; @A")  # whole texts around an expression
BINARY = ("@A + @B", "@A - @B", "@A * @B", "@A @B", "@A / @B", r"\frac{@A}{@B}", "(@A)^2",
          "@A^{@B}", "@A -- @B")


def generate(rng: random.Random, world: World, depth: int = MAX_DEPTH, time_sums: int = 2) -> str:
    """A random expression of at most `depth` nested operators over the world's atoms (holes `@A`, `@B`)."""
    if depth <= 0 or rng.random() < 0.2:
        return rng.choice(world.atoms)
    roll = rng.random()
    if roll < 0.35:
        template = rng.choice(BINARY)
        return template.replace("@A", generate(rng, world, depth - 1, time_sums)).replace(
            "@B", generate(rng, world, depth - 1, time_sums))
    if world is TIME and time_sums and roll < 0.5:
        return rng.choice(TIME_SUMS).replace("@A", generate(rng, world, depth - 1, time_sums - 1))
    templates = UNARY if roll < 0.7 else world.wrappers
    return rng.choice(templates).replace("@A", generate(rng, world, depth - 1, time_sums))


#: what a mutation inserts or substitutes
TOKENS = ("(", ")", "[", "]", "{", "}", "|", "||", ",", "_", "^", "+", "-", "*", "/", "=", "~", ";", "\n", " ",
          "log ", "E_", "KL", "H", r"\sum_{k=1}^{K}", r"\sum_{t=1}^{T}", r"\sum_{y}", r"\frac{1}{K}", "z_{t-1}",
          "z_k", "x_t", "q(z|x)", "p(z)", "D(x)", r"\mathcal{N}(0, I)", r"\beta", "K", "T", "0", "1e309", r"\|",
          r"\mid", r"\left(", r"\right)", r"\ldots", r"\sim")


def mutate(rng: random.Random, text: str) -> str:
    """One to three random edits: delete, insert, duplicate or swap a short span, or rename a letter."""
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(text) + 1)
        j = min(len(text), i + rng.randint(1, 4))
        edit = rng.randrange(5)
        if edit == 0:
            text = text[:i] + text[j:]
        elif edit == 1:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif edit == 2:
            text = text[:j] + text[i:j] + text[j:]
        elif edit == 3 and j - i >= 2:
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
        else:
            text = re.sub(rng.choice("xyzqpKT"), rng.choice("xyzqpwKT"), text, count=1)
    return text


@dataclass(frozen=True)
class Formula:
    """One input of the campaign: a text, the declarations it is compiled against and the data inputs."""

    seed: int
    text: str
    declarations: Sequence[nn.Module]
    data: Dict[str, Callable[[], torch.Tensor]]
    options: Tuple[Tuple[str, Any], ...] = ()  # keyword arguments of fm.compile: samples=, analytic_kl=, validate=


@lru_cache(maxsize=None)
def declarations_of(key: str) -> Sequence[nn.Module]:
    """Built once per campaign: a world's declarations or a model case's."""
    worlds = {w.name: w for w in (STATIC, TIME, FAMILIES)}
    if key in worlds:
        return tuple(worlds[key].declarations())
    return tuple(next(c for c in CASES if c.name == key).declarations())


def formula_for(seed: int) -> Formula:
    """The campaign's formula number `seed`: two in five mutate a model case's text, the rest are generated."""
    rng = random.Random(seed)
    options = (("samples", rng.choice((1, 1, 1, 2))), ("analytic_kl", rng.random() < 0.7),
               ("validate", rng.random() < 0.5))  # a call that does not validate takes another path
    if rng.random() < 0.4:
        case = CASES[rng.randrange(len(CASES))]
        inputs = case.inputs()
        data = {name: (lambda v=v: v) for name, v in inputs.items() if isinstance(v, torch.Tensor)}
        return Formula(seed, mutate(rng, case.text), declarations_of(case.name), {**STATIC.data, **data}, options)
    world = rng.choice((STATIC, STATIC, TIME, FAMILIES))
    text = generate(rng, world)
    if world is TIME and rng.random() < 0.7:
        text = rng.choice(TIME_SUMS).replace("@A", text)
    if rng.random() < 0.1:
        text = rng.choice(STATEMENTS).replace("@A", text)
    return Formula(seed, text, declarations_of(world.name), world.data, options)


COUNTS = ("K", "T", "L", "N", "k", "t", "i")


def inputs_for(objective: "fm.Objective", formula: Formula) -> Dict[str, Any]:
    """A value for every input the objective asks for: data by name, else by `<base>_*` for an indexed name
    (`z_{t-1}`, `z_1`), else by the base letter; 2 for a count, 0.5 for other scalars."""
    inputs: Dict[str, Any] = {}
    for name in objective.inputs:
        base = re.split(r"[_'{]", name)[0]
        keys = [k for k in (name, f"{base}_*" if name != base else None, base) if k in formula.data]
        inputs[name] = formula.data[keys[0]]() if keys else 2 if base in COUNTS else 0.5
    return inputs


class WrongShape(AssertionError):
    """An objective that evaluated to something other than one value per example."""


def compile_and_call(formula: Formula) -> bool:
    """Compile the text over its declarations, call it once and run the backward pass of the mean: True if it
    evaluated to one value per example, False if it raised a FormulaError (an answer too); any other exception
    propagates."""
    try:
        objective = fm.compile(formula.text, list(formula.declarations), **dict(formula.options))
        inputs = inputs_for(objective, formula)
        value = objective(**inputs)
    except fm.FormulaError:
        return False
    batches = {v.shape[0] for v in inputs.values() if isinstance(v, torch.Tensor) and v.dim()}
    if len(batches) == 1 and tuple(value.shape) != (batches.pop(),):
        raise WrongShape(f"value of shape {tuple(value.shape)} for inputs {_shapes(inputs)}")
    if value.requires_grad:
        value.float().mean().backward()
    return True


def _shapes(inputs: Dict[str, Any]) -> str:
    return ", ".join(f"{k} {list(v.shape)}" if isinstance(v, torch.Tensor) else f"{k}={v}" for k, v in inputs.items())


def signature(error: BaseException) -> Tuple[str, str]:
    """Where a crash comes from: the exception type and the innermost frame inside the formula package."""
    here = "?"  # a crash raised outside the package (WrongShape) is told apart by its type alone
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename)
        if "formula" in path.parts and "tests" not in path.parts:
            here = f"{path.name}:{frame.name}"
    return type(error).__name__, here


def first_line(error: BaseException) -> str:
    """The first line of the message, cut to 120 characters."""
    return (str(error).splitlines() or [""])[0][:120]


def crash_of(formula: Formula) -> Optional[BaseException]:
    """The exception other than FormulaError that compiling and calling the formula raises, or None."""
    try:
        compile_and_call(formula)
    except Exception as error:  # noqa: BLE001 - the campaign's job is to catch exactly these
        return error
    return None


def shrink(formula: Formula, wanted: Tuple[str, str], budget: int = 300) -> str:
    """A shorter text with the same crash signature: greedily drop tokens while the crash stays the same."""
    tokens = re.findall(r"\\[A-Za-z]+|[A-Za-z0-9.]+|\s+|.", formula.text)
    i = 0
    while i < len(tokens) and budget > 0:
        candidate = tokens[:i] + tokens[i + 1:]
        budget -= 1
        error = crash_of(Formula(formula.seed, "".join(candidate), formula.declarations, formula.data,
                                 formula.options))
        if error is not None and signature(error) == wanted:
            tokens = candidate
        else:
            i += 1
    return "".join(tokens).strip()


__all__ = ["B", "STATIC", "TIME", "FAMILIES", "Formula", "World", "formula_for", "inputs_for", "compile_and_call",
           "crash_of", "declarations_of", "signature", "first_line", "shrink"]
