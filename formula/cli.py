"""The `formula` command line: print a formula three ways, or compare two.

    formula pretty TEXT            Unicode, as a paper prints it
    formula latex TEXT             LaTeX
    formula ascii TEXT             the plain-ASCII spelling (parses back to the same tree)
    formula equivalent A B         prints `equivalent` or `not equivalent`
    formula check TEXT --dist SIG  checks TEXT against signatures such as 'q(z|x)' and compiles it (stand-in nets)
    formula explain TEXT --dist SIG  prints the plan: what is drawn and how, which KLs are closed-form

Exit status: 0 when the command ran (whatever `equivalent` answered), 1 on a formula error (its message, with
the caret, on stderr), 2 on a usage error or an internal error (one line asking for a report; the traceback
only under `--debug`). `formula --version` prints the version. Subcommands live in a registry:
`register(name, handler, configure)` adds one without touching `main`. The language is docs/language.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

from .errors import FormulaError

__all__ = ["Command", "COMMANDS", "register", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """A subcommand: `configure` adds its arguments, `handler` runs it and returns the exit status."""

    name: str
    handler: Handler
    configure: Configure
    help: str = ""


COMMANDS: Dict[str, Command] = {}


def register(name: str, handler: Handler, configure: Optional[Configure] = None, help: str = "") -> Command:
    """Add (or replace) the subcommand `name`; returns the registered `Command`."""
    command = Command(name, handler, configure or (lambda parser: None), help)
    COMMANDS[name] = command
    return command


def _text_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", metavar="TEXT", help="the formula, ASCII or LaTeX (quote it for the shell)")


def _printer(convert: Callable[[str], str]) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        print(convert(args.text))
        return 0

    return handler


def _pretty(text: str) -> str:
    from .text.symbolic import pretty

    return pretty(text)


def _latex(text: str) -> str:
    from .lang.parser import parse
    from .text.printing import to_latex

    return to_latex(parse(text))


def _ascii(text: str) -> str:
    from .lang.parser import parse
    from .text.printing import to_ascii

    return to_ascii(parse(text))


def _equivalent(args: argparse.Namespace) -> int:
    from .text.symbolic import equivalent

    dists = [_signature(d)[1] for d in args.dist] if args.dist else None
    print("equivalent" if equivalent(args.a, args.b, dists) else "not equivalent")
    return 0


def _two_texts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="TEXT_A", help="the first formula")
    parser.add_argument("b", metavar="TEXT_B", help="the second formula")
    parser.add_argument("--dist", action="append", default=[], metavar="SIG",
                        help="a declared distribution's signature, as `check --dist` takes it: compare with what "
                             "the declarations imply (chain rule, KL and entropy as expectations)")


register("pretty", _printer(_pretty), _text_argument, "print the formula in Unicode, as a paper prints it")
register("latex", _printer(_latex), _text_argument, "print the formula as LaTeX")
register("ascii", _printer(_ascii), _text_argument, "print the formula in its plain-ASCII spelling")
register("equivalent", _equivalent, _two_texts,
         "say whether two formulas denote the same objective (docs/language.md §4); exit 0 either way")


def _check(args: argparse.Namespace) -> int:
    from .check.checker import check_text, var_text
    from .lang.parser import parse

    sigs = tuple((_signature(s)[1], "dist") for s in args.dist) + tuple((s, "function") for s in args.fn) + tuple(
        (s, "data") for s in args.data)
    checked = check_text(args.text, sigs)
    if not args.no_compile:
        _compiled(args)  # what the signatures alone can build: the estimators, closed forms, the plan
    print(f"ok: {var_text(parse(args.text).objective)}")
    print(f"inputs: {', '.join(checked.inputs) or 'none'}"
          + (f" (optional: {', '.join(checked.optional_inputs)})" if checked.optional_inputs else ""))
    for factor in dict.fromkeys(_drawn_factors(checked)):
        print(f"draws {', '.join(var_text(v) for v in factor.vars)} from {checked.decls[factor.decl]}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    print(_compiled(args).explain())
    return 0


def _signature(text: str) -> tuple:
    """`'Bernoulli p(x|z)'` -> ("Bernoulli", "p(x|z)"); a bare signature is a Normal."""
    family, space, signature = text.strip().partition(" ")
    return (family, signature.strip()) if space and signature.strip() else (DEFAULT_FAMILY, text.strip())


#: The family a `--dist` signature without one stands for.
DEFAULT_FAMILY = "Normal"


def _compiled(args: argparse.Namespace):
    """`fm.compile` of the text over stand-in declarations built from the signatures: each `--dist` of its family
    (Normal unless named: `--dist 'Bernoulli p(x|z)'`), each `--fn` a Function; their networks are never called."""
    from .compiler.objective import compile as compile_formula
    from .families.declarations import FAMILIES, Data, Function

    decls = []
    for text in args.dist:
        family, signature = _signature(text)
        if family not in FAMILIES:
            raise FormulaError(f"--dist {text!r}: unknown family {family!r}; known: {', '.join(sorted(FAMILIES))}")
        decls.append(FAMILIES[family](signature, net=_stand_in(signature)))
    decls += [Function(s, net=_stand_in(s)) for s in args.fn] + [Data(s) for s in args.data]
    return compile_formula(args.text, decls)


def _stand_in(signature: str):
    """A network that is never called (`formula check` and `explain` only build the plan)."""
    from torch import nn

    class StandIn(nn.Module):
        def forward(self, *args, **kwargs):
            raise FormulaError(f"{signature} is declared from its signature alone: it has no network to call")

    return StandIn()


def _drawn_factors(checked) -> Iterator:
    """The factors the checked terms' expectations draw, in the order they appear (a walk of the checked tree)."""
    from .check import resolved

    stack = [t.expr for t in reversed(checked.terms)]
    while stack:
        node = stack.pop()
        if isinstance(node, resolved.Expectation):
            yield from (d.bound.factor for d in node.draws if not d.data)
        if isinstance(node, (tuple, list)):
            stack.extend(reversed(node))
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            stack.extend(reversed([getattr(node, f.name) for f in dataclasses.fields(node) if f.name != "src"]))


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    _text_argument(parser)
    parser.add_argument("--dist", action="append", default=[], metavar="SIG",
                        help="a declared distribution's signature, e.g. 'q(z|x)', optionally after its family: "
                             "'Bernoulli p(x|z)' (default Normal; repeat for each)")
    parser.add_argument("--fn", action="append", default=[], metavar="SIG",
                        help="a declared function's signature, e.g. 'D(x)'")
    parser.add_argument("--data", action="append", default=[], metavar="SIG",
                        help="the empirical distribution of the data, e.g. 'p_data(x)'")


def _check_options(parser: argparse.ArgumentParser) -> None:
    _check_arguments(parser)
    parser.add_argument("--no-compile", action="store_true",
                        help="check only (the text stages, without importing torch): do not compile")


register("check", _check, _check_options,
         "check a formula against declared signatures and compile it with stand-in networks; exit 1 with the "
         "caret message if it does not fit (the language: docs/language.md)")
register("explain", _explain, _check_arguments,
         "print the plan of a formula over declared signatures: what is drawn and how, which terms are closed-form")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with one subparser per registered command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="formula", description="Parse, print, compare and check objective formulas.",
        epilog="The language (ASCII and LaTeX spellings, what each form means) is described in docs/language.md. "
               "Exit status: 0 done, 1 formula error, 2 usage or internal error.")
    parser.add_argument("--version", action="version", version=f"formula {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        child.set_defaults(_handler=command.handler)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line on `argv` (default `sys.argv[1:]`); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse reports usage errors itself, then exits 2
        return int(exit_.code or 0)
    try:
        return args._handler(args)
    except FormulaError as err:
        print(f"formula.{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - any other exception is a bug in formula, not the user's mistake
        if args.debug:
            traceback.print_exc()
        first = (str(err).splitlines() or [""])[0][:200]
        print(f"formula: internal error, please report ({type(err).__name__}: {first}); run with --debug for "
              "the traceback", file=sys.stderr)
        return 2
