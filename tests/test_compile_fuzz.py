"""Any parseable formula either compiles and evaluates or raises a FormulaError: never another exception."""

from hypothesis import HealthCheck, given, settings

import formula as fm
from formula.text.printing import to_ascii
from models import binary, vae
from strategies import programs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(max_leaves=8))
def test_generated_formulas_compile_or_raise_formula_errors(program):
    q, p, prior = vae()
    text = to_ascii(program)
    try:
        objective = fm.compile(text, [q, p, prior])
    except fm.FormulaError:
        return
    inputs = {name: (binary(3) if name in objective._plan.data_inputs else 2) for name in objective.inputs}
    try:
        value = objective(**inputs)
    except fm.FormulaError:
        return
    assert value.shape == (3,)
