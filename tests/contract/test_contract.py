"""The contract every model case of cases.py keeps: one parametrised test function per check, over all cases.

A case opts out of a check with `skip={check: reason}` and marks a bug of formula with `xfail={check: reason}`;
both show in the test id's report (`pytest -rsx tests/contract`).
"""

from __future__ import annotations

import io
import os
import re
from typing import Any, Callable, Dict, List

import pytest
import torch

import formula as fm
from contract.cases import CASES, Case, Declarations, Inputs
from test_compile_models import assert_same

SEED = 17
CHECKS: List[str] = []  # the names a case may use in `skip` and `xfail`, filled by `check`


def check(test: Callable[[Case], None]) -> Callable[[Case], None]:
    """Parametrise `test` over every case; the check's name is the test's name without `test_`."""
    name = test.__name__.removeprefix("test_")
    CHECKS.append(name)
    params = []
    for c in CASES:
        marks = []
        if name in c.skip:
            marks.append(pytest.mark.skip(reason=f"{c.name}: {c.skip[name]}"))
        if name in c.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=f"{c.name}: {c.xfail[name]}"))
        params.append(pytest.param(c, id=c.name, marks=marks))
    return pytest.mark.parametrize("case", params)(test)


def run(objective: fm.Objective, inputs: Inputs, seed: int = SEED) -> torch.Tensor:
    """The objective's per-example value, drawn from `seed`."""
    torch.manual_seed(seed)
    return objective(**inputs)


def cast(inputs: Inputs, **to: Any) -> Inputs:
    """The inputs with every floating tensor moved by `.to(**to)` and every integer tensor moved to its device."""
    out: Dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(**to) if value.is_floating_point() else value.to(device=to.get("device"))
        out[name] = value
    return out


def declared_parameters(decls: Declarations) -> Dict[str, torch.nn.Parameter]:
    """Every parameter of every declaration, named `<declaration index>.<parameter name>`."""
    return {f"{i}.{name}": p for i, d in enumerate(decls) for name, p in d.named_parameters()}


def assert_gradients_reach(decls: Declarations, finite: bool = True) -> None:
    """After a backward pass, every declared parameter has a gradient (finite unless on the meta device)."""
    missing = [name for name, p in declared_parameters(decls).items() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    if finite:
        bad = [name for name, p in declared_parameters(decls).items() if not torch.isfinite(p.grad).all()]
        assert not bad, f"non-finite gradients in {bad}"


@check
def test_shape(case: Case) -> None:
    """One value per example, whatever the number of draws."""
    decls = case.declarations()
    inputs = case.inputs()
    batch = next(v.shape[0] for v in inputs.values() if isinstance(v, torch.Tensor))
    for samples in (1, 3):
        assert run(case.compile(decls, samples=samples), inputs).shape == (batch,)


@check
def test_finite(case: Case) -> None:
    """Finite values at several seeds."""
    objective = case.compile(case.declarations())
    for seed in range(3):
        assert torch.isfinite(run(objective, case.inputs(), seed)).all()


@check
def test_batch_of_one(case: Case) -> None:
    """One example: a value of shape [1], finite, with gradients (a leave-one-out baseline has no other example)."""
    decls = case.declarations()
    inputs = {k: v[:1] if isinstance(v, torch.Tensor) else v for k, v in case.inputs().items()}
    value = run(case.compile(decls), inputs)
    assert value.shape == (1,) and torch.isfinite(value).all()
    value.mean().backward()
    assert_gradients_reach(decls)


@check
def test_gradients(case: Case) -> None:
    """The objective holds every declared parameter, and the mean's backward reaches each (score function too)."""
    decls = case.declarations()
    objective = case.compile(decls)
    held = {id(p) for p in objective.parameters()}
    assert all(id(p) in held for p in declared_parameters(decls).values())
    run(objective, case.inputs()).mean().backward()
    assert_gradients_reach(decls)


@check
def test_terms(case: Case) -> None:
    """`evaluate()` gives one [batch] entry per term, and their signed sum is the total."""
    objective = case.compile(case.declarations())
    torch.manual_seed(SEED)
    total, terms = objective.evaluate(**case.inputs())
    assert list(terms) == list(objective.term_names)
    assert len(objective.term_signs) == len(terms)
    assert all(t.shape == total.shape for t in terms.values())
    signed = sum(sign * terms[name] for name, sign in zip(objective.term_names, objective.term_signs))
    torch.testing.assert_close(signed, total)


@check
def test_explain(case: Case) -> None:
    """The plan renders and names every draw; the objective prints as Unicode and LaTeX and keeps its text."""
    objective = case.compile(case.declarations())
    plan = objective.explain()
    assert plan.strip()
    for variable in case.draws:
        assert re.search(rf"\bdraw {re.escape(variable)} ", plan), f"the plan never draws {variable}:\n{plan}"
    assert str(objective).strip() and objective.latex().strip()
    assert objective.text == case.text


@check
def test_ascii_round_trip(case: Case) -> None:
    """Printing the parsed formula in ASCII and parsing it again gives the same tree."""
    tree = fm.parse(case.text)
    assert fm.parse(fm.to_ascii(tree)) == tree


@check
def test_latex_round_trip(case: Case) -> None:
    """Printing the parsed formula in LaTeX and parsing it again gives the same tree."""
    tree = fm.parse(case.text)
    assert fm.parse(fm.to_latex(tree)) == tree


def value_and_gradients(objective: fm.Objective, inputs: Inputs, seed: int) -> List[torch.Tensor]:
    """The per-example value and the gradients of its sum with respect to every parameter (zero where unused)."""
    value = run(objective, inputs, seed)
    params = list(objective.parameters())
    grads = torch.autograd.grad(value.sum(), params, allow_unused=True)
    return [value.detach()] + [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def assert_compiled_matches_eager(case: Case, options: Any) -> None:
    """The objective under torch.compile(**options) gives eager's values and gradients at two seeds. Both run
    with validate=False: a validating call runs eagerly, and the first calls validate."""
    decls = case.declarations()
    eager = case.compile(decls, validate=False)
    compiled = case.compile(decls, compile=options, validate=False)
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    try:
        for seed in (SEED, SEED + 1):  # the second call reuses the graph
            inputs = case.inputs()
            torch.testing.assert_close(value_and_gradients(compiled, inputs, seed),
                                       value_and_gradients(eager, inputs, seed), atol=1e-5, rtol=1e-4)
        assert counters["stats"]["unique_graphs"] > 0, "torch.compile never traced the objective"
    finally:
        torch._dynamo.reset()


@pytest.mark.slow
@check
def test_compiled(case: Case) -> None:
    """`compile=` gives eager's values and gradients: by default through aot_eager (Dynamo's capture and AOT
    autograd, eager's random kernels; a few seconds a case); with CONTRACT_INDUCTOR=1 through `compile=True`
    itself (inductor, with its random kernels replaced by eager's; 20-70 s a case on two cores)."""
    if os.environ.get("CONTRACT_INDUCTOR") == "1":
        with torch._inductor.config.patch(fallback_random=True):
            assert_compiled_matches_eager(case, True)
    else:
        assert_compiled_matches_eager(case, {"backend": "aot_eager"})


@pytest.mark.slow
@check
def test_fullgraph(case: Case) -> None:
    """The same in one graph: no graph break anywhere in the objective (`fullgraph=True`)."""
    assert_compiled_matches_eager(case, {"backend": "aot_eager", "fullgraph": True})


@check
def test_state_dict(case: Case) -> None:
    """Changed weights saved with torch.save and loaded (weights_only) into fresh declarations give the same value."""
    trained = case.compile(case.declarations())
    torch.manual_seed(1)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.3 * torch.randn_like(p))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    fresh = case.compile(case.declarations())
    inputs = case.inputs()
    before = run(fresh, inputs)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    after = run(fresh, inputs)
    assert not torch.allclose(before, after)  # the load changed something
    torch.testing.assert_close(after, run(trained, inputs))


@check
def test_float64(case: Case) -> None:
    """Declarations and inputs in float64 give a float64 value and float64 gradients."""
    decls = [d.double() for d in case.declarations()]
    value = run(case.compile(decls), cast(case.inputs(), dtype=torch.float64))
    assert value.dtype == torch.float64 and torch.isfinite(value).all()
    value.mean().backward()
    assert_gradients_reach(decls)
    assert all(p.grad.dtype == torch.float64 for p in declared_parameters(decls).values())


def assert_runs_on_meta(case: Case, decls: Declarations) -> None:
    """Forward and backward on meta inputs while the default device is the CPU: a tensor created without
    `device=` meets a meta tensor and fails."""
    inputs = cast(case.inputs(), device="meta")
    value = run(case.compile(decls), inputs)
    assert value.device.type == "meta" and value.shape == (case_batch(inputs),)
    value.mean().backward()
    assert_gradients_reach(decls, finite=False)


@check
def test_meta_device(case: Case) -> None:
    """Declarations built under `with torch.device("meta")` (as for a model too large to build on the CPU)."""
    with torch.device("meta"):
        decls = case.declarations()
    assert_runs_on_meta(case, decls)


@check
def test_moved_to_meta(case: Case) -> None:
    """Declarations built on the CPU and moved with `.to("meta")` (as `.to(device)` before training)."""
    assert_runs_on_meta(case, [d.to("meta") for d in case.declarations()])


@check
def test_reference(case: Case) -> None:
    """The value (and, without a score-function surrogate, the gradients) of the hand-written PyTorch reference."""
    if case.reference is None:
        pytest.skip(f"{case.name}: no hand-written reference")
    decls = case.declarations()
    objective = case.compile(decls)
    inputs = case.inputs()
    value = run(objective, inputs)
    torch.manual_seed(SEED)
    want = case.reference(decls, inputs)
    if case.reference_grads:
        assert_same(value, want, list(objective.parameters()))
    else:
        torch.testing.assert_close(value, want)


def case_batch(inputs: Inputs) -> int:
    """The batch size: the first dimension of the first tensor input."""
    return next(v.shape[0] for v in inputs.values() if isinstance(v, torch.Tensor))


def test_case_entries_name_real_checks() -> None:
    """Every `skip` and `xfail` key of every case is a check, and every case name is unique."""
    for c in CASES:
        assert set(c.skip) | set(c.xfail) <= set(CHECKS), f"{c.name}: unknown check in {set(c.skip) | set(c.xfail)}"
    assert len({c.name for c in CASES}) == len(CASES)
