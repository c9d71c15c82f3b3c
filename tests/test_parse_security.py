"""No code runs from a cache: the parser loads no pickle from any folder (issue 9, security)."""

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

MARKER_CODE = "open({marker!r}, 'w').write('planted code ran')"


class _Evil:
    """Unpickling this object runs `exec` of a marker-writing line (what an attacker would plant)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (MARKER_CODE.format(marker=self.marker),))


def _plant(folder: Path, marker: Path) -> None:
    """A file in Lark's cache format (a hash line, then pickles) where the old parser read its cache."""
    target = folder / "formula"
    target.mkdir(parents=True, exist_ok=True)
    payload = b"0" * 64 + b"\n" + pickle.dumps(_Evil(str(marker)))
    for name in ("grammar-lalr.cache", "grammar.cache"):
        (target / name).write_bytes(payload)


def test_a_planted_cache_does_not_run(tmp_path):
    cache = tmp_path / "cache"
    marker = tmp_path / "marker"
    _plant(cache, marker)
    script = textwrap.dedent("""
        import formula as fm
        fm.parse("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))")
        fm.pretty("a + b")
        print("parsed")
    """)
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "parsed"
    assert not marker.exists()
    # nothing was written either: the parser keeps no disk cache at all
    assert sorted(p.name for p in (cache / "formula").iterdir()) == ["grammar-lalr.cache", "grammar.cache"]


def test_the_parser_is_built_without_a_cache():
    from formula.lang import parser

    assert not hasattr(parser, "_cache_file")
    assert parser._lark().options.cache is False
