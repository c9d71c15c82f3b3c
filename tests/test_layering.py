"""The package is laid out by stage (text -> AST -> checked tree -> plan -> torch -> training) and data flows one
way: no module imports a module of a later stage, and the text stages never import torch."""

import ast
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "formula"

#: The stages in pipeline order; a module may import its own stage and earlier ones only.
STAGES = ["errors", "lang", "text", "check", "samplers", "families", "estimators", "compiler", "train", "extend", "cli"]
TEXT_STAGES = {"errors", "lang", "text", "check"}


def _stage(module: str) -> str:
    """`formula.lang.parser` -> "lang"; `formula.cli` -> "cli"; `formula` -> "" (the package's lazy front)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: pathlib.Path):
    """Every `formula.*` module that `path` imports, at module level or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("formula"):
                for alias in node.names:  # `from . import nodes` imports formula.<pkg>.nodes
                    sub = f"{target}.{alias.name}"
                    yield sub if (ROOT.parent / (sub.replace(".", "/") + ".py")).exists() else target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("formula"):
                    yield alias.name


def test_every_module_belongs_to_a_stage():
    for path in ROOT.rglob("*.py"):
        stage = _stage(_module_name(path))
        assert stage in STAGES or stage in ("", "__main__"), f"{path} is in no stage of {STAGES}"


def test_no_stage_imports_a_later_one():
    bad = []
    for path in ROOT.rglob("*.py"):
        here = _stage(_module_name(path))
        if here not in STAGES:
            continue
        for target in _imports(path):
            there = _stage(target)
            if there in STAGES and STAGES.index(there) > STAGES.index(here):
                bad.append(f"{_module_name(path)} imports {target}")
    assert not bad, "\n".join(bad)


def test_text_stages_do_not_import_torch():
    for path in ROOT.rglob("*.py"):
        if _stage(_module_name(path)) not in TEXT_STAGES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not any(n.split(".")[0] == "torch" for n in names), f"{path} imports torch"


_TEXT_CALLS = """
import json, sys
import formula as fm
fm.parse("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))")
fm.pretty("E_q(z|x)[log p(x|z)]"); fm.latex("KL(q||p)"); fm.equivalent("a + b", "b + a")
from formula import cli
for argv in (["pretty", "E_q(z|x)[log p(x|z)]"], ["latex", "KL(q||p)"], ["equivalent", "a+b", "b+a"],
             ["check", "E_q(z|x)[log p(x|z)]", "--dist", "q(z|x)", "--dist", "p(x|z)", "--no-compile"]):
    try:
        cli.main(argv)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy"))))
"""


def test_text_layer_never_imports_torch_at_run_time():
    """parse, pretty, latex, equivalent and the printing and check commands run without importing torch."""
    out = subprocess.run([sys.executable, "-c", _TEXT_CALLS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded if m.split(".")[0] == "torch"], loaded


@pytest.mark.parametrize("stage", [s for s in STAGES[1:] if s not in ("extend", "cli")])
def test_stage_folders_show_the_pipeline(stage):
    assert (ROOT / stage / "__init__.py").exists()
    doc = ast.get_docstring(ast.parse((ROOT / stage / "__init__.py").read_text()))
    assert doc, f"formula/{stage}/__init__.py says in a line what the stage does"


MAX_FUNCTION_LINES = 60


def test_no_function_in_formula_is_longer_than_sixty_lines():
    """Small functions with one job each: a longer one is a sign that a builder or a stage wants splitting."""
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)
