"""The `formula` command line, through `main([...])` and once as `python -m formula`."""

import subprocess
import sys

import pytest

from formula import cli
from formula.lang.parser import parse

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
VAE_LATEX = r"\mathbb{E}_{q_\phi(z|x)}\left[\log p_\theta(x|z)\right] - D_{KL}\left(q_\phi(z|x) \,\|\, p(z)\right)"


def test_pretty(capsys):
    assert cli.main(["pretty", VAE]) == 0
    assert capsys.readouterr().out == "𝔼_{q(z|x)}[log p(x|z)] - D_KL[q(z|x) ‖ p(z)]\n"


def test_latex_reads_back(capsys):
    assert cli.main(["latex", VAE]) == 0
    out = capsys.readouterr().out
    assert out.startswith(r"\mathbb{E}_{q(z \mid x)}\left[\log p(x \mid z)\right]")
    assert parse(out) == parse(VAE)


def test_ascii(capsys):
    assert cli.main(["ascii", VAE_LATEX]) == 0
    assert capsys.readouterr().out == "E_{q_{phi}(z|x)}[log p_{theta}(x|z)] - KL(q_{phi}(z|x) || p(z))\n"


@pytest.mark.parametrize("a, b, answer", [(VAE, VAE_LATEX, "equivalent"), (VAE, "KL(q(z|x)||p(z))", "not equivalent")])
def test_equivalent_exits_zero_either_way(capsys, a, b, answer):
    assert cli.main(["equivalent", a, b]) == 0
    assert capsys.readouterr().out == answer + "\n"


def test_formula_error_goes_to_stderr_with_caret(capsys):
    assert cli.main(["pretty", "E_q(z|x)[log p(x|z)"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("formula.FormulaSyntaxError: ")
    assert "^" in captured.err and "Traceback" not in captured.err


def test_usage_error_exits_two(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert cli.main([]) == 2
    assert "usage: formula" in capsys.readouterr().err


def test_register_adds_a_subcommand(capsys, monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))
    seen = []

    def configure(parser):
        parser.add_argument("text")
        parser.add_argument("--dist", action="append", default=[])

    def handler(args):
        seen.append((args.text, args.dist))
        return 0

    cli.register("echo-signatures", handler, configure, help="a test command")
    try:
        assert cli.main(["echo-signatures", VAE, "--dist", "q(z|x)", "--dist", "p(x|z)"]) == 0
        assert seen == [(VAE, ["q(z|x)", "p(x|z)"])]
        assert "echo-signatures" in cli.build_parser().format_help()
    finally:
        del cli.COMMANDS["echo-signatures"]


def test_check_against_signatures(capsys):
    sigs = ["--dist", "q(z|x)", "--dist", "p(x|z)", "--dist", "p(z)"]
    assert cli.main(["check", "E_q(z|x)[log p(x|z)] - beta KL(q(z|x)||p(z))", *sigs]) == 0
    out = capsys.readouterr().out
    assert "inputs: beta, x" in out and "draws z from q(z|x)" in out
    assert cli.main(["check", "E_q(z|y)[log p(x|z)]", *sigs]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "formula.FormulaCheckError: no distribution q(z|y) is declared; declared: q(z|x), p(x|z), p(z)"
    assert err[2] == "    ^^^^^^"
    gan = ["--data", "p_data(x)", "--fn", "D(x)", "--fn", "G(z)", "--dist", "p(z)"]
    text = r"\min_G \max_D E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))]"
    assert cli.main(["check", text, *gan]) == 0
    assert "inputs: x" in capsys.readouterr().out


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "formula", "equivalent", VAE, VAE_LATEX],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "equivalent\n"
    bad = subprocess.run([sys.executable, "-m", "formula", "latex", "KL(q(z|x) || )"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.startswith("formula.FormulaSyntaxError") and "Traceback" not in bad.stderr


def test_version_and_help_name_the_language_page(capsys):
    from formula import __version__

    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"formula {__version__}"
    assert "docs/language.md" in cli.build_parser().format_help()


def _crash(args):
    raise KeyError("boom")


@pytest.fixture
def crashing_command(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))
    cli.register("crash", _crash, help="raises an internal error")


def test_internal_error_is_one_line_and_exit_two(capsys, crashing_command):
    assert cli.main(["crash"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error, please report" in err and "KeyError" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys, crashing_command):
    assert cli.main(["--debug", "crash"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error, please report" in err.splitlines()[-1]


def test_formula_error_exits_one_not_two(capsys):
    assert cli.main(["latex", "KL(q(z|x) || )"]) == 1
    assert cli.main(["equivalent", "a +", "a"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_check_compiles_with_stand_ins(capsys):
    assert cli.main(["check", "log D(x)", "--fn", "D(x)"]) == 0
    assert capsys.readouterr().out.startswith("ok: log D(x)")
    # a family may be named before a signature (default Normal); an unknown one is a formula error
    argv = ["check", VAE, "--dist", "q(z|x)", "--dist", "Bernoulli p(x|z)", "--dist", "p(z)"]
    assert cli.main(argv) == 0
    assert cli.main(["check", VAE, "--dist", "q(z|x)", "--dist", "p(x|z)", "--dist", "NoSuchFamily p(z)"]) == 1
    assert "unknown family 'NoSuchFamily'" in capsys.readouterr().err


def test_check_no_compile_checks_only(capsys):
    assert cli.main(["check", VAE, "--dist", "q(z|x)", "--dist", "p(x|z)", "--dist", "p(z)", "--no-compile"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_explain_prints_the_plan(capsys):
    assert cli.main(["explain", VAE_LATEX, "--dist", "q(z|x)", "--dist", "Bernoulli p(x|z)", "--dist", "p(z)"]) == 0
    out = capsys.readouterr().out
    assert "draw z ~ q(z|x) [Normal, reparameterised]" in out
    assert "closed form [Normal || Normal]" in out


def test_explain_error_has_a_caret(capsys):
    assert cli.main(["explain", "E_q(z|y)[log p(x|z)]", "--dist", "q(z|x)", "--dist", "p(x|z)"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("formula.FormulaCheckError") and "^" in err


def test_help_names_the_language_doc(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--help"])
    assert "docs/language.md" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["check", "--help"])
    assert "docs/language.md" in capsys.readouterr().out
