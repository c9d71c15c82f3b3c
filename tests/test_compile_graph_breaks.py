"""`fm.compile(..., compile=...)` traces the contract's VAE, IWAE, DMM and GAN objectives as one graph each (issue 15).

Graph breaks are a Dynamo property, independent of the backend, so the calls here use the `eager` backend (the
inductor compile adds minutes and nothing to the count). Counted through the objective's ordinary call path: the
first calls validate eagerly (VALIDATE_FIRST), the next one runs the compiled `_run`.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters
from torch.distributions import kl as torch_kl

from contract.cases import CASES
from formula.compiler.objective import VALIDATE_FIRST
from formula.compiler.planning import make_plan

MODELS = ("vae", "iwae", "dmm", "gan")


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test counts its own graphs and breaks from a clean Dynamo cache."""
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _case(name: str):
    return next(c for c in CASES if c.name == name)


def _breaks_and_graphs(name: str, validate: bool) -> tuple:
    """(graph breaks, graphs) of the first compiled call of the case's objective."""
    c = _case(name)
    torch.manual_seed(0)
    objective = c.compile(c.declarations(), compile={"backend": "eager"}, validate=validate)
    inputs = c.inputs()
    for _ in range(VALIDATE_FIRST if validate else 0):
        objective(**inputs)  # eager, validating
    counters.clear()
    value = objective(**inputs)
    assert torch.isfinite(value).all()
    return sum(counters["graph_break"].values()), counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("name", MODELS)
def test_compiled_objective_is_one_graph(name):
    """After the validating eager calls, the compiled call is a single graph with no break."""
    breaks, graphs = _breaks_and_graphs(name, validate=True)
    assert (breaks, graphs) == (0, 1), dict(counters["graph_break"])


@pytest.mark.parametrize("name", MODELS)
def test_cold_compiled_call_is_one_graph(name):
    """With validate=False the very first call is compiled: as in a fresh process (no plan built, torch's KL
    dispatch cache empty), the plan's build looks the KL functions up (a cold `kl_divergence` dispatch, a `min`
    over a generator, would break the graph)."""
    torch_kl._KL_MEMOIZE.clear()  # a cache only (torch's register_kl clears it too)
    make_plan.cache_clear()
    breaks, graphs = _breaks_and_graphs(name, validate=False)
    assert (breaks, graphs) == (0, 1), dict(counters["graph_break"])
