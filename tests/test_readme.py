"""The README's Python blocks run as written: a newcomer's first code must not be stale."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index):
    namespace = {}
    if index > 0:
        exec(compile("import formula as fm", "README", "exec"), namespace)
    exec(compile(BLOCKS[index], f"README block {index}", "exec"), namespace)


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "pip install -c constraints.txt" in text and "python examples/vae.py" in text
    assert "python -m pytest" in text
