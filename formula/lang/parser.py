"""Text -> AST: the Lark grammar (formula/lang/grammar.lark) plus the transformer that builds `formula.lang.nodes`.

`parse(text)` returns a `Program`; every failure is a `FormulaSyntaxError` with the text and a caret. ASCII and
LaTeX spellings build equal trees (docs/language.md §1). Names with several spellings (functions, families,
divergences, relations, decorations) are rows of `formula.lang.spellings`, whose tables also generate the
grammar's keyword terminals (`formula.lang.terminals`): adding a name is one row. The parser is built from the
grammar shipped in the package on first use, with no disk cache (a cache is a pickle: loading one runs code).
"""

from __future__ import annotations

import functools
import math
import re
import threading
from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from lark import Lark, Token, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lark import PostLex
from lark.visitors import Transformer_NonRecursive

from . import nodes as n
from . import near_misses, spellings, terminals, unicode_input
from ..errors import FormulaError, FormulaSyntaxError

MAX_LENGTH = 10_000  # characters; longer texts are refused before Lark sees them (Lark needs ~0.1 ms a token)
MAX_NESTING = 100  # bracket depth
MAX_TREE_DEPTH = n.MAX_TREE_DEPTH  # depth of the built tree; also the printers' and the compiler's limit

# --- spellings ------------------------------------------------------------------------------------------
# Every name with several spellings (functions, families, divergences, relations, decorations) is one row of
# formula/lang/spellings.py; the tables are re-exported here for callers of the parser.

DIVERGENCES = spellings.DIVERGENCES
FAMILIES = spellings.FAMILIES
FUNCTIONS = spellings.FUNCTIONS
RELATIONS = spellings.RELATIONS

#: Names that mean the entropy when called with one argument and no condition.
ENTROPY_NAMES = {"H"}

GREEK_ALIASES = {"varepsilon": "epsilon", "vartheta": "theta", "varphi": "phi", "varrho": "rho",
                 "varsigma": "sigma", "varpi": "pi"}

#: The wrapper that makes any name a plain name (`\mathit{E}`, `\mathit{H}(x)`, `\mathit{KL}(a, b)`): the
#: printers write names that would read as keywords this way.
PLAIN_NAME = "mathit"

PER_EXAMPLE_INDICES = {"i", "n"}  # `x^{(i)}`: the example index, dropped

#: Terminal names -> words for error messages.
TERMINAL_WORDS = {
    "NAME": "a name", "CALL_NAME": "a distribution such as q(z|x)", "GREEK": "a Greek letter",
    "NUMBER": "a number", "EXPECT": "an expectation E", "FUNC": "a function such as log",
    "BIGOP": "a sum", "OPT": "min or max", "NABLA": "\\nabla", "FRAC": "\\frac", "PARTIAL": "\\partial",
    "DECOR": "a decoration such as \\tilde", "UNDERBRACE": "\\underbrace", "LANGLE": "\\langle",
    "RANGLE": "\\rangle", "TOP": "\\top", "SAMPLE_SUP": "'^{('", "DOTS": "'\\ldots'", "PRIMES": "a prime",
    "REL": "a relation such as '=' or '\\geq'", "ADDOP": "'+' or '-'", "MULOP": "'*' or '/'",
    "_LPAR": "'('", "_RPAR": "')'", "_LSQB": "'['", "_RSQB": "']'", "_LBRACE": "'{'", "_RBRACE": "'}'",
    "_LBRACE_ESC": "'\\{'", "_RBRACE_ESC": "'\\}'", "_UNDERSCORE": "a subscript '_'", "_CARET": "'^'",
    "_COLON": "':'", "_COMMA": "','", "_SEMI": "';'", "_NEWLINE": "a new line", "GIVEN": "'|'",
    "DIVSEP": "'||'", "ABS_OPEN": "'|'", "ABS_CLOSE": "a closing '|'", "NORM_OPEN": "'\\|'",
    "NORM_CLOSE": "a closing '\\|'", "SIM": "'~'", "$END": "the end of the formula",
    "DECOR_CALL": "a decorated distribution such as \\bar q(z)", "WHERE": "\\text{where}",
    "WSEP": "\\text{and}", "QUAD": "\\quad", "ARGOPT": "\\arg\\min or \\arg\\max", "INT": "\\int",
    "STAR_SUP": "'^*'", "PROSE": "a \\text{..} label", "PLACEHOLDER": "\\cdot", "INFTY": "\\infty",
    "SUCH_THAT": "\\text{s.t.}",
}
_VALUE_STARTS = {"NAME", "CALL_NAME", "GREEK", "NUMBER", "_LPAR", "FRAC", "EXPECT", "FUNC", "BIGOP"}

# --- work done, for tests that bound it instead of timing it ---------------------------------------------


@dataclass
class Work:
    """What the latest uncached parse in this thread did: tokens the lexer produced and AST nodes the depth
    check visited. Tests bound these instead of timing a parse (a loaded machine makes seconds meaningless)."""

    tokens: int = 0
    nodes: int = 0


_WORK = threading.local()


def last_work() -> Work:
    """The `Work` record of this thread's latest uncached parse (a fresh one before any parse)."""
    if not hasattr(_WORK, "current"):
        _WORK.current = Work()
    return _WORK.current


# --- the parser --------------------------------------------------------------------------------------------

_OPERAND_ENDS = {"NAME", "GREEK", "NUMBER", "_RPAR", "_RSQB", "_RBRACE", "_RBRACE_ESC", "ABS_CLOSE",
                 "NORM_CLOSE", "PRIMES", "TOP", "DOTS", "RANGLE", "PLACEHOLDER", "STAR_SUP", "INFTY"}
# operators whose sub/superscripts are not operands
_PREFIX_OPS = {"BIGOP", "OPT", "NABLA", "EXPECT", "ARGOPT", "INT", "PARTIAL"}
_PLACEHOLDERS = ("\\cdot", "\u00b7")  # `\cdot` and `·` where an operand goes: `p_E(\cdot|x)`, `\sigma(\cdot)`
#: what a placeholder `\cdot` never follows: an operand (then it multiplies) or an operator's script (`\nabla_x \cdot s`,
#: a divergence operator, is refused rather than read as a placeholder)
_NOT_BEFORE_PLACEHOLDER = set(_OPERAND_ENDS) | {"SCRIPT_END"}
_OPENS = {"_LPAR": "(", "_LSQB": "[", "_LBRACE": "{", "_LBRACE_ESC": "\\{"}
_CLOSES = {"_RPAR", "_RSQB", "_RBRACE", "_RBRACE_ESC"}
_OPERAND_ENDS = tuple(sorted(_OPERAND_ENDS))
_TOP_SIM_AFTER = _OPERAND_ENDS  # `x ~ p` as a statement or a where item: `~` after an operand, spaced
_RENAMED = {"MID": "GIVEN", "GREEK_CALL": "CALL_NAME", "LABS": "ABS_OPEN", "RABS": "ABS_CLOSE", "LNORM": "NORM_OPEN",
            "RNORM": "NORM_CLOSE"}  # tokens whose role does not depend on what came before


class _Roles(PostLex):
    """Gives `|`, `||`/`\\|` and `~` their role from the tokens before them (no lookahead, so the contextual
    lexer stays in step). Directly inside a call's brackets, a bar after an operand separates (GIVEN in
    `q(z|x)`, DIVSEP in `KL(q || p)`); elsewhere it closes an open `|..|` or `\\|..\\|`, or opens one.
    `~` is SIM inside an expectation's subscript and at the top of a statement when spaced after an operand
    (`eps ~ U(0, 1)`), LaTeX spacing elsewhere (`\\beta~D`). `\\quad` separates the items of a where clause and
    is spacing elsewhere."""

    always_accept = ("BAR", "DBAR", "MID", "LABS", "RABS", "LNORM", "RNORM", "TILDE", "GREEK_CALL", "QUAD")

    @staticmethod
    def _context_role(kind: str, tok: Token, stack: List[str], previous: str, gap: bool, where: bool) -> str:
        """The role of `~` and `\\quad` ("" drops the token as spacing)."""
        if kind == "TILDE":
            if stack and stack[-1] in ("esub", "opsub"):
                return "SIM"
            return "SIM" if not stack and previous in _TOP_SIM_AFTER and gap else ""
        if kind == "WSEP":  # `\\text{and}`: a where clause's separator, or prose between two displays
            return "WSEP"
        if where:
            return "WSEP" if not stack and previous in _OPERAND_ENDS else ""
        return "DISPLAY" if not stack and previous in _OPERAND_ENDS + ("_COMMA",) else ""  # `a, \\quad b`

    @staticmethod
    def _bar_role(kind: str, previous: str, top: str) -> str:
        """A bar after an operand directly inside a call separates; after an operand inside its own open
        bracket it closes; otherwise it opens."""
        closer, opener, sep = (("ABS_CLOSE", "ABS_OPEN", "GIVEN") if kind == "BAR"
                               else ("NORM_CLOSE", "NORM_OPEN", "DIVSEP"))
        if previous in _OPERAND_ENDS and top == "call":
            return sep
        if previous in _OPERAND_ENDS and top == opener:
            return closer
        return opener

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return self._displays(self._signed_labels(self._roles(stream)))

    @staticmethod
    def _displays(stream: Iterator[Token]) -> Iterator[Token]:
        """`a = b, \\quad c \\sim p` and `a \\quad \\text{and} \\quad b`: displays joined by spacing are statements
        (a `;`), unless a `\\text{where}` follows (then the spacing was only spacing)."""
        held: List[Token] = []  # a comma and displays, until the next token says what they were
        for tok in stream:
            if tok.type == "DISPLAY" or (tok.type == "_COMMA" and not held):
                held.append(tok)
                continue
            displays = [h for h in held if h.type == "DISPLAY"]
            commas = [h for h in held if h.type == "_COMMA"]
            # `, \\quad` and `\\qquad` join displays; a lone `\\quad` only before `\\text{and}`, else it is spacing
            strong = displays and (commas or any("qquad" in str(d) for d in displays))
            if displays and tok.type in ("WHERE", "SUCH_THAT"):
                held = commas
            elif strong or (displays and tok.type == "WSEP"):
                held = [Token.new_borrow_pos("_SEMI", ";", displays[-1])]
            else:
                held = commas
            yield from held
            held = []
            if not (displays and tok.type == "WSEP"):
                yield tok
        yield from (h for h in held if h.type == "_COMMA")

    @staticmethod
    def _signed_labels(stream: Iterator[Token]) -> Iterator[Token]:
        """`A \\underbrace{- \\log p(x_0|x_1)}_{L_0}` (DDPM eq. 5): a labelled term written with its sign inside the
        brace, right after another term, is a new term (a `+` is put before it), not a factor of a product."""
        previous, held = "", []
        for tok in stream:
            if held:
                held.append(tok)
                if len(held) == 2 and tok.type == "_LBRACE":
                    continue
                if len(held) == 3 and tok.type == "ADDOP":
                    yield Token.new_borrow_pos("ADDOP", "+", held[0])
                yield from held
                previous, held = tok.type, []
                continue
            if tok.type == "UNDERBRACE" and previous in _OPERAND_ENDS:
                held = [tok]
                continue
            previous = tok.type
            yield tok
        yield from held

    def _roles(self, stream: Iterator[Token]) -> Iterator[Token]:
        stack: List[str] = []
        recent: List[str] = ["", ""]  # the last two token types
        call_at = -1  # stack depth at which the next ( or [ opens a call's arguments
        in_prefix = script_pending = False  # inside the scripts of \sum, \min, \nabla, E: `\min_{G} \|a\|`
        where = False  # inside a statement's where clause
        last_end = -1
        work = last_work()
        for tok in stream:
            work.tokens += 1
            kind = tok.type
            gap, last_end = tok.start_pos is not None and tok.start_pos > last_end, tok.end_pos or last_end
            if not stack and kind in ("WHERE", "SUCH_THAT", "_NEWLINE", "_SEMI"):
                where = kind in ("WHERE", "SUCH_THAT")
            script_end = False  # this token ends an operator's script: what follows is not after an operand
            if kind in _PREFIX_OPS:
                in_prefix, script_pending = True, False
            elif in_prefix:
                if kind in ("_UNDERSCORE", "_CARET"):
                    script_pending = True
                elif script_pending and kind == "_LBRACE":
                    script_pending = False
                elif script_pending and kind in ("NAME", "GREEK", "NUMBER"):
                    script_pending, script_end = False, True
                elif kind == "_RBRACE" and stack and stack[-1] in ("opsub", "esub"):
                    script_end = True
                elif not (stack and (stack[-1] in ("opsub", "esub") or (  # `\nabla_{\tilde{a}}`: a mark's braces
                        stack[-1] == "_LBRACE" and len(stack) > 1 and stack[-2] in ("opsub", "esub")))):
                    in_prefix = script_pending = False
            if kind in ("BAR", "DBAR"):
                kind = self._bar_role(kind, recent[-1], stack[-1] if stack else "")
            elif kind == "MULOP" and str(tok.value).strip() in _PLACEHOLDERS and recent[-1] not in _NOT_BEFORE_PLACEHOLDER:
                kind = "PLACEHOLDER"
            elif kind in _RENAMED:
                kind = _RENAMED[kind]
            elif kind in ("TILDE", "QUAD", "WSEP"):
                kind = self._context_role(kind, tok, stack, recent[-1], gap, where)
                if not kind:
                    continue
            if kind in ("CALL_NAME", "DECOR_CALL"):
                call_at = len(stack)
            elif kind in _OPENS:
                if kind in ("_LPAR", "_LSQB") and call_at == len(stack):
                    stack.append("call")
                    call_at = -1
                elif kind == "_LBRACE" and recent[-1] == "_UNDERSCORE" and recent[-2] in ("EXPECT", "RANGLE"):
                    stack.append("esub")
                elif kind == "_LBRACE" and in_prefix and recent[-1] in ("_UNDERSCORE", "_CARET"):
                    stack.append("opsub")
                else:
                    stack.append(kind)
            elif kind in ("ABS_OPEN", "NORM_OPEN"):
                stack.append(kind)
            elif kind == "SAMPLE_SUP":  # `^{(` opens two brackets
                stack.extend(("_LBRACE", "_LPAR"))
            elif (kind in _CLOSES or kind in ("ABS_CLOSE", "NORM_CLOSE")) and stack:
                stack.pop()
            recent = [recent[-1], "SCRIPT_END" if script_end else kind]
            yield tok if kind == tok.type else Token.new_borrow_pos(kind, tok.value, tok)


def _grammar_text() -> str:
    return terminals.grammar_text()


_BUILD_LOCK = threading.Lock()
LEXER = "basic"  # "contextual" gives the same trees (tested) but compiles a scanner per parser state: ~5x slower


@functools.lru_cache(maxsize=None)
def _lark() -> Lark:
    """The LALR parser, built once per process from the grammar shipped in the package (~80 ms). No disk
    cache: Lark's cache is a pickle, and loading one from a folder the package does not own runs its code."""
    with _BUILD_LOCK:
        return Lark(_grammar_text(), parser="lalr", lexer=LEXER, postlex=_Roles(),
                    propagate_positions=True, maybe_placeholders=False)


# --- pre-scan ---------------------------------------------------------------------------------------------

_BRACKET_RE = re.compile(r"\\[{}]|\\(?:lbrace|rbrace)(?![A-Za-z])|\\[A-Za-z]+|\\.|[()\[\]{}]")
_PAIRS = {"(": ")", "[": "]", "{": "}", "\\{": "\\}"}
_CLOSERS = {v: k for k, v in _PAIRS.items()}
_CONTINUES_AFTER = re.compile(r"(?:[-+*/=<>|,&(\[{^_]|\\(?:cdot|times|geq|leq|ge|le|approx|mid|sim|\\))\s*$")
_CONTINUES_BEFORE = re.compile(
    r"^\s*(?:[-+*/=<>|)\]}&^_]|\\(?:cdot|times|geq|leq|ge|le|approx|right|mid|sim|quad|qquad)(?![A-Za-z])|:=|=:)")


def _prescan(text: str) -> str:
    """Cheap checks before Lark (length, bracket balance and depth), and the text Lark gets: newlines that do
    not end a statement and a trailing `.` or `,` become spaces (offsets are kept)."""
    if len(text) > MAX_LENGTH:
        raise FormulaSyntaxError(f"the formula is too long ({len(text)} characters; the limit is {MAX_LENGTH})",
                                 text, (MAX_LENGTH, MAX_LENGTH + 1))
    if not text.strip():
        raise FormulaSyntaxError("the formula is empty", text, (0, len(text)))
    chars = list(text)
    stack: List[Tuple[str, int]] = []
    for m in _BRACKET_RE.finditer(text):
        tok = m.group()
        tok = {"\\lbrace": "\\{", "\\rbrace": "\\}"}.get(tok, tok)
        if tok in _PAIRS:
            stack.append((tok, m.start()))
            if len(stack) > MAX_NESTING:
                raise FormulaSyntaxError(f"brackets are nested too deeply (more than {MAX_NESTING} levels)",
                                         text, (m.start(), m.end()))
        elif tok in _CLOSERS:
            if not stack:
                raise FormulaSyntaxError(f"unmatched {tok!r}: no bracket is open here", text, (m.start(), m.end()))
            opener, at = stack.pop()
            if _PAIRS[opener] != tok:
                raise FormulaSyntaxError(f"the {opener!r} opened at character {at} is closed by {tok!r}; "
                                         f"expected {_PAIRS[opener]!r}", text, (m.start(), m.end()))
    if stack:
        opener, at = stack[-1]
        fix = near_misses.unclosed_hint(text, at, opener)  # `\underbrace{`, `f^{*`: say what closes it
        message = f"unclosed {opener!r}: the formula ends before it is closed" + (f"; {fix}" if fix else "")
        raise FormulaSyntaxError(message, text, (at, at + len(opener)))
    # Newlines and trailing punctuation, at bracket depth 0 only.
    depth = 0
    line_start = 0
    for i, ch in enumerate(text + "\n"):
        if i < len(text) and ch in "([{":
            depth += 1
        elif i < len(text) and ch in ")]}":
            depth = max(0, depth - 1)
        if ch != "\n":
            continue
        line = text[line_start:i]
        stripped = line.rstrip()
        end = line_start + len(stripped)
        if depth == 0 and stripped and stripped[-1] in ".," and not stripped.endswith("...") \
                and not stripped.endswith("\\,"):
            chars[end - 1] = " "
            stripped = stripped[:-1]
        if i < len(text):
            rest = text[i + 1:]
            if depth > 0 or _CONTINUES_AFTER.search(stripped) or _CONTINUES_BEFORE.match(rest) \
                    or not stripped.strip():
                chars[i] = " "
        line_start = i + 1
    return "".join(chars)


# --- errors -----------------------------------------------------------------------------------------------

_COMMAND_RE = re.compile(r"\\[A-Za-z]+")


_UNCLOSED_BARS = (
    ("NORM_CLOSE", re.compile(r"\|\||\\\||\\Vert|\\parallel"),
     "this '||' opens a norm that is never closed; between two distributions '||' belongs inside a divergence "
     "such as KL(q || p)"),
    ("ABS_CLOSE", re.compile(r"(?<![\\|])\|(?!\|)|\\vert"),
     "this '|' opens an absolute value that is never closed; a condition '|' belongs inside a distribution "
     "such as q(z|x)"),
)


def _words(expected: Sequence[str]) -> str:
    names = set(expected)
    parts: List[str] = []
    if names & _VALUE_STARTS:
        parts.append("a distribution such as q(z|x), a number or '('")
        names -= _VALUE_STARTS | {"GREEK", "DECOR", "NABLA", "OPT", "LANGLE", "UNDERBRACE", "ABS_OPEN",
                                  "NORM_OPEN", "_LSQB", "_LBRACE", "_LBRACE_ESC", "ADDOP", "DOTS", "SAMPLE_SUP",
                                  "ARGOPT", "INT", "PARTIAL", "PLACEHOLDER", "DECOR_CALL", "PROSE", "INFTY"}
    for name in sorted(names, key=lambda s: (s == "$END", s)):
        word = TERMINAL_WORDS.get(name, name.lower())
        if word not in parts:
            parts.append(word)
    if not parts:
        return "something else"
    if len(parts) > 6:
        parts = parts[:6] + ["..."]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _describe(tok: Token) -> str:
    words = {"GIVEN": "'|'", "DIVSEP": "'||'", "ABS_OPEN": "'|'", "ABS_CLOSE": "'|'", "NORM_OPEN": "'\\|'",
             "NORM_CLOSE": "'\\|'", "_NEWLINE": "a new line"}
    return words.get(tok.type, repr(str(tok.value).strip() or tok.value))


def _syntax_error(err: UnexpectedInput, text: str) -> FormulaSyntaxError:
    """A Lark error in words, pointing at the offending place."""
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        cmd = _COMMAND_RE.match(text, pos)
        if cmd:
            return FormulaSyntaxError(f"unknown command {cmd.group()}", text, (pos, cmd.end()))
        return FormulaSyntaxError(f"unexpected character {text[pos]!r}", text, (pos, pos + 1))
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        end = len(text.rstrip())
        expected = getattr(err, "expected", None) or getattr(err, "accepts", None) or ()
        for closer, pattern, message in _UNCLOSED_BARS:
            opener = None if closer not in expected else list(pattern.finditer(text))
            if opener:
                at = opener[-1]
                return FormulaSyntaxError(message, text, (at.start(), at.end()))
        fix = near_misses.hint(text, end, "$END", "", expected)
        return FormulaSyntaxError(f"the formula ends too early: {fix}" if fix else
                                  f"the formula ends too early; expected {_words(expected)}", text,
                                  (max(0, end - 1), max(1, end)))
    if isinstance(err, UnexpectedToken):
        tok = err.token
        start = tok.start_pos if tok.start_pos is not None else 0
        end = tok.end_pos if tok.end_pos is not None else start + 1
        expected = err.accepts or err.expected
        fix = near_misses.hint(text, start, tok.type, str(tok.value), expected)
        if fix is not None:
            msg = f"unexpected {_describe(tok)}: {fix}"
        elif tok.type == "DIVSEP" or (tok.type == "NORM_OPEN" and str(tok.value) in ("||",)):
            msg = "'||' separates the two arguments of a divergence such as KL(q || p)"
        elif tok.type == "_NEWLINE" or (tok.type == "_SEMI"):
            msg = f"the statement ends too early; expected {_words(expected)}"
        else:
            msg = f"unexpected {_describe(tok)}; expected {_words(expected)}"
        return FormulaSyntaxError(msg, text, (start, max(end, start + 1)))
    return FormulaSyntaxError("the formula does not parse", text, (0, len(text)))


# --- building nodes ----------------------------------------------------------------------------------------


@dataclass
class _Group:
    """A bracketed expression while its product is folded (parentheses make no node)."""

    expr: n.Expr
    span: n.Span
    params: Tuple[n.Expr, ...] = ()  # `[f; m_k, s_k^2]`: parameters after `;`, only an expectation's bracket takes


@dataclass
class _Seq:
    """An unfolded product: `(op, item)` pairs, op None for juxtaposition; folded by `_Builder.fold`."""

    items: List[Tuple[Optional[str], object]]
    span: n.Span


@dataclass
class _Suffixed:
    """A bracket with sub/superscripts after it (`(a)^2`) while its product is folded: after a function or an
    expectation the bracket is the argument and the scripts apply to the result (`\\exp(a)^2` is (exp a)^2)."""

    expr: n.Expr
    group: _Group
    suffixes: list

    @property
    def span(self) -> Optional[n.Span]:
        return self.group.span


@dataclass
class _Args:
    vars: Tuple[n.Expr, ...]
    given: Tuple[n.Expr, ...]
    params: Tuple[n.Expr, ...]
    has_given: bool


@dataclass
class _DivArgs:
    left: n.Expr
    right: n.Expr


@dataclass
class _Lower:
    """The lower limit of a big operator as written (`t=1`, `y`, `i \\neq j`, `x_i \\in X`)."""

    expr: n.Expr


_WRAPPED = re.compile(r"\\([A-Za-z]+)\s*\{\s*(\\?[A-Za-z][A-Za-z0-9]*(?:\\_[A-Za-z0-9]+)*)\s*\}")


def _unwrap(text: str) -> Tuple[Optional[str], str]:
    """`\\mathcal{L}` -> ('mathcal', 'L'); `\\beta` -> (None, 'beta'); `q` -> (None, 'q')."""
    m = _WRAPPED.fullmatch(text.strip())
    if m:
        return m.group(1), m.group(2).lstrip("\\")
    return None, text.strip().lstrip("\\")


def _span(meta) -> Optional[n.Span]:
    if getattr(meta, "empty", True):
        return None
    return n.Span(meta.start_pos, meta.end_pos)


def _tspan(tok: Token) -> n.Span:
    return n.Span(tok.start_pos, tok.end_pos)


def _join(a: Optional[n.Span], b: Optional[n.Span]) -> Optional[n.Span]:
    if a is None or b is None:
        return a or b
    return n.Span(min(a.start, b.start), max(a.end, b.end))


def _script_text(items: Sequence[n.Node]) -> str:
    """The text of a name's subscript with Greek spelled out: `\\phi` -> 'phi', `{data}` -> 'data'."""
    return _subscript(items)[0]


def _subscript(items: Sequence[n.Node]) -> Tuple[str, Tuple[n.Expr, ...]]:
    """A name's subscript as (`Dist.sub`, `Dist.script`): plain names and numbers are text alone (`phi`,
    `data`, `theta_x`); items with more structure (`\\hat x`, a call `JMkl(\\alpha)`) are kept as nodes, with
    their ASCII key as the text (issue 13: the printers write the nodes back)."""
    try:
        return _plain_script_text(items), ()
    except _Fail:
        if not all(isinstance(i, (n.Var, n.Num, n.Dist)) for i in items):
            raise
        return ",".join(_key(i) for i in items), tuple(items)


def _key(node: n.Node) -> str:
    """A short ASCII key of a subscript item (`\\hat x` -> `hat(x)`, `JMkl(\\alpha)` -> `JMkl(alpha)`): what the
    checker matches declarations by; the printers write the nodes of `Dist.script`, not this."""
    if isinstance(node, n.Num):
        return str(int(node.value)) if node.value == int(node.value) else str(node.value)
    if isinstance(node, n.Var):
        text = node.name + "'" * node.primes + (f"^{node.label}" if node.label else "")
        text = f"{node.mark}({text})" if node.mark else text
        return text + (f"_{{{','.join(_key(i) for i in node.index)}}}" if node.index else "")
    if isinstance(node, n.Dist):
        head = f"{node.mark}({node.full_name})" if node.mark else node.full_name
        args = ",".join(_key(a) for a in node.vars)
        if node.given:
            args += "|" + ",".join(_key(a) for a in node.given)
        return f"{head}({args})"
    raise _Fail("a distribution's subscript must be a name such as \\phi, a number or a call", node.span)


def _plain_script_text(items: Sequence[n.Node]) -> str:
    out = []
    for item in items:
        if isinstance(item, n.Var) and (item.mark or item.primes or item.label or any(
                isinstance(i, n.Var) and (i.mark or i.primes or i.label) for i in item.index)):
            raise _Fail("a marked subscript is kept as nodes", item.span)  # `\\mathbb{P}_{\\hat x}`: see _subscript
        if isinstance(item, n.Var) and not item.index:
            out.append(item.name)
        elif isinstance(item, n.Var) and all(isinstance(i, n.Var) and not i.index for i in item.index):
            out.append(f"{item.name}_{''.join(i.name for i in item.index)}" if len(item.index) == 1 and len(
                item.index[0].name) == 1 else f"{item.name}_{item.index[0].name}")  # `p_{\\theta_x}`: theta_x
        elif isinstance(item, n.Num):
            v = item.value
            out.append(str(int(v)) if v == int(v) else str(v))
        else:
            raise _Fail("a distribution's subscript must be a name such as \\phi or a number", item.span)
    return ",".join(out)


class _Fail(Exception):
    """A malformed construct found while building nodes (turned into FormulaSyntaxError with the text)."""

    def __init__(self, message: str, span: Optional[n.Span]):
        super().__init__(message)
        self.message = message
        self.span = span


def _uses(node: n.Node, var: n.Var) -> bool:
    """Whether `var` occurs free in `node`: a variable a KL, an entropy or a sampler integrates over is bound
    there (M2's `\\sum_y q(y|x) f(y) + H[q(y|x)]` keeps the entropy outside the sum), but its indices are not.
    Primes, marks and labels make another variable: `\\sum_{y'} q(y'|x') f(y') + \\log q(y|x)` keeps the log out."""
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, n.Var) and x == var:  # `y'`, `\\tilde y`, `y^e` are other variables than `y` (issue 12.8)
            return True
        if isinstance(x, (n.Sum, n.Prod)) and x.index == var:  # its own index shadows ours
            stack.extend(b for b in (x.lower, x.upper, x.within) if b is not None)
            continue
        bound = ((x.left, x.right) if isinstance(x, n.Divergence) else (x.dist,) if isinstance(x, n.Entropy)
                 else x.dists if isinstance(x, n.Sampler) else None)
        if bound is None:
            stack.extend(x.children())
            continue
        for arg in bound:
            if isinstance(arg, (n.Dist, n.Family)):
                for v in arg.vars:
                    stack.extend(v.children() if isinstance(v, n.Var) else (v,))
                stack.extend(arg.given if isinstance(arg, n.Dist) else arg.args)
            else:
                stack.append(arg)
        if isinstance(x, n.Sampler):
            stack.extend(x.draws)
    return False


@v_args(meta=True)
class _Builder(Transformer_NonRecursive):
    """Parse tree -> nodes. One instance per parse (it remembers which sums are still open to later terms)."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self._text = text  # the source, for what the tree does not keep (which bracket a call used)
        self._open: Dict[int, object] = {}  # id(node) -> the unbracketed Sum/Prod at its tail
        self._keep: List[object] = []  # keeps ids above valid
        self._prefixes: set = set()  # ids of \min/\max prefixes written without brackets around them
        self._signed: Dict[int, Token] = {}  # id(node) -> the sign token of an unbracketed `-a` / `+a`
        self._arg_prefixes: set = set()  # ids of \arg\min/\arg\max written without brackets around them

    # -- statements --
    def start(self, meta, children):
        return n.Program(tuple(self._lift_prefix(s) for s in children), span=_span(meta))

    def _lift_prefix(self, statement: n.Expr) -> n.Expr:
        """`\\min_G \\max_D E[a] + E[b]` and `\\min_G \\max_D V(D,G) = ...`: a prefix written unbracketed at the start
        of a statement covers the whole statement (issue 16), not only the product after it."""
        path: List[n.Expr] = []
        node = statement
        while isinstance(node, (n.Relation, n.Add)):
            path.append(node)
            node = node.members[0] if isinstance(node, n.Relation) else node.terms[0]
        if not path or id(node) not in self._prefixes:
            return statement
        chain: List[n.Optimize] = []
        while isinstance(node, n.Optimize) and id(node) in self._prefixes:
            chain.append(node)
            node = node.body
        for parent in reversed(path):
            node = (replace(parent, members=(node,) + parent.members[1:]) if isinstance(parent, n.Relation)
                    else replace(parent, terms=(node,) + parent.terms[1:]))
        for prefix in reversed(chain):
            node = replace(prefix, body=node, span=_join(prefix.span, statement.span))
        return node

    def relation(self, meta, children):
        if len(children) == 1:
            return children[0]
        for member in children[0::2]:
            _no_draw(member)
        members = tuple(children[0::2])
        ops = tuple(RELATIONS.canonical(str(tok).strip()) for tok in children[1::2])
        return n.Relation(members, ops, span=_span(meta))

    def draw(self, meta, children):
        lhs, _, dist = children
        return self._draw(lhs.items if isinstance(lhs, n.ArgTuple) else (lhs,), dist, meta)

    def draw_tuple(self, meta, children):
        return self._draw(tuple(c for c in children[:-1] if not isinstance(c, Token)), children[-1], meta)

    @staticmethod
    def _draw(vars_, dist, meta) -> n.Draw:
        for v in vars_:
            if not isinstance(v, n.Var):
                raise _Fail("what is drawn is a variable or a tuple of variables, as in (x, y) \\sim p(x, y)", v.span)
        _no_draw(dist)
        return n.Draw(tuple(vars_), _as_dist(dist), span=_span(meta))

    def where(self, meta, children):
        body, items = children[0], children[-1]
        return n.Where(body, tuple(items), span=_span(meta))

    def such_that(self, meta, children):
        body, items = children[0], children[-1]
        return n.SuchThat(body, tuple(items), span=_span(meta))

    def where_items(self, meta, children):
        items = [c for c in children if not isinstance(c, Token)]
        for item in items:
            if not isinstance(item, (n.Relation, n.Draw)):
                raise _Fail("a where clause defines names (\\hat x = ...) or draws (\\epsilon \\sim \\mathcal{U}[0, 1]), "
                            "separated by ','", item.span)
        return items

    # -- sums of terms --
    def addchain(self, meta, children):
        if len(children) == 1:
            return self.value(children[0])
        terms: List[n.Expr] = [self.value(children[0])]
        for op, item in zip(children[1::2], children[2::2]):
            self._no_second_sign(op, item)
            term = self.value(item)
            if str(op) == "-":
                term = self._mark(n.Neg(term, span=_join(_tspan(op), term.span)), self._open.get(id(term)))
            terms.append(term)
        terms = self._absorb(terms)
        if len(terms) > 1 and id(terms[0]) in self._arg_prefixes:
            return self._lift_arg(terms, _span(meta))
        return terms[0] if len(terms) == 1 else n.Add(tuple(terms), span=_span(meta))

    def _lift_arg(self, terms: List[n.Expr], span) -> n.Expr:
        """`\\arg\\min_G \\max_D L(G, D) + \\lambda L_1(G)` (pix2pix eq. 4): an unbracketed arg-min at the start of a
        sum is over the whole sum, through the unbracketed \\min/\\max right after it."""
        chain: List[n.Expr] = []
        node = terms[0]
        unbracketed = self._arg_prefixes | self._prefixes
        while isinstance(node, (n.ArgOpt, n.Optimize)) and id(node) in unbracketed:
            chain.append(node)
            node = node.body
        body: n.Expr = n.Add((node,) + tuple(terms[1:]), span=_join(node.span, span))
        for prefix in reversed(chain):
            body = replace(prefix, body=body, span=_join(prefix.span, span))
        return self._unbracketed(body, self._arg_prefixes)

    def _absorb(self, terms: List[n.Expr]) -> List[n.Expr]:
        """An unbracketed sum takes the later terms of its chain that use its index (docs/language.md §1)."""
        out: List[n.Expr] = []
        used = [False] * len(terms)
        for i, term in enumerate(terms):
            if used[i]:
                continue
            tail = self._open.get(id(term))
            if tail is not None:
                taken = [t for j, t in enumerate(terms[i + 1:], i + 1) if not used[j] and _uses(t, tail.index)]
                if taken:
                    for j in range(i + 1, len(terms)):
                        if any(terms[j] is t for t in taken):
                            used[j] = True
                    inner = tail.body  # a joined inner sum (`\\sum_{i, j}`) is written apart once the outer takes terms
                    inner = replace(inner, joined=False) if isinstance(inner, (n.Sum, n.Prod)) else inner
                    body = n.Add((inner, *taken), span=_join(tail.body.span, taken[-1].span))
                    new_tail = replace(tail, body=body, span=_join(tail.span, taken[-1].span))
                    term = _replace_tail(term, tail, new_tail)
            out.append(term)
        return out

    def unary(self, meta, children):
        op, item = children
        self._no_second_sign(op, item)
        value = self.value(item)
        if str(op) != "+":
            value = self._mark(n.Neg(value, span=_span(meta)), self._open.get(id(value)))
        self._signed[id(value)] = op
        self._keep.append(value)
        return value

    def _no_second_sign(self, op: Token, item) -> None:
        """`a -- b`, `a + -b`, `--x`: two signs in a row are refused (issue 9: a doubled sign silently flips a
        term); a bracket says it on purpose, `a - (-b)`."""
        second = self._signed.get(id(item))
        if second is not None:
            raise _Fail(f"two signs in a row ('{op}{second}'): write one sign, or bracket the negative term as "
                        f"in a {op} (-b)", _join(_tspan(op), _tspan(second)))

    # -- products --
    def product(self, meta, children):
        items: List[Tuple[Optional[str], object]] = []
        op: Optional[str] = None
        for child in children:
            if isinstance(child, Token) and child.type == "MULOP":
                op = "/" if str(child) == "/" else "*"
                continue
            if isinstance(child, _Seq):  # a prefixed group form that hands the rest of its product back
                _, first = child.items[0]
                items.append((op, first))
                items.extend(child.items[1:])
            else:
                items.append((op, child))
            op = None
        return _Seq(items, _span(meta))

    def fold(self, seq: _Seq) -> n.Expr:
        """Left-associative `*`, `/` and juxtaposition; a run of multiplications is one flat Mul."""
        factors: List[n.Expr] = []
        acc: Optional[n.Expr] = None
        open_tail = None
        for op, raw in seq.items:
            item = self._plain(raw)
            open_tail = None if isinstance(raw, (_Group, _Suffixed)) else self._open.get(id(item))
            if acc is None and not factors:
                factors = [item]
            elif op == "/":
                num = factors[0] if len(factors) == 1 else n.Mul(tuple(factors), span=_cover(factors))
                factors = [n.Div(num, item, span=_join(num.span, item.span))]
                open_tail = None
            else:
                factors.append(item)
            acc = factors[-1]
        result = factors[0] if len(factors) == 1 else n.Mul(tuple(factors), span=_cover(factors))
        return self._mark(result, open_tail)

    def value(self, x) -> n.Expr:
        if isinstance(x, _Seq):
            return self.fold(x)
        return self._plain(x)

    @staticmethod
    def _plain(x) -> n.Expr:
        if isinstance(x, _Group) and x.params:
            raise _Fail("parameters after ';' go in a call's brackets, q(c_i; \\varphi_i), or an expectation's, "
                        "\\mathbb{E}[f; m, s^2]", x.span)
        while isinstance(x, (_Group, _Suffixed)):
            x = x.expr
        if isinstance(x, _Seq):
            raise AssertionError("unfolded product")  # pragma: no cover
        return x

    def _mark(self, node, tail):
        if tail is not None:
            self._open[id(node)] = tail
            self._keep.append(node)
        return node

    # -- prefix operators --
    def _split(self, seq: _Seq) -> Tuple[n.Expr, Optional[_Seq], list]:
        """The argument of a prefix operator: a bracket right after it, else the whole product; and the scripts
        written after that bracket, which apply to the operator's result (`\\exp(a)^2`, `\\mathbb{E}[x]^2`)."""
        op, first = seq.items[0]
        rest = _Seq(seq.items[1:], seq.span) if len(seq.items) > 1 else None
        if isinstance(first, _Suffixed):
            return first.group.expr, rest, first.suffixes
        if isinstance(first, _Group) and rest is not None:
            return first.expr, rest, []
        return self.fold(seq), None, []

    def _with_rest(self, node: n.Expr, rest: Optional[_Seq]):
        if rest is None:
            return node
        return _Seq([(None, node)] + rest.items, rest.span)

    def func(self, meta, children):
        tok, seq = children
        _, name = _unwrap(str(tok))
        arg, rest, suffixes = self._split(seq)
        span = _join(_tspan(tok), seq.items[0][1].span if rest is not None else seq.span)
        node = self._suffix(FUNCTIONS.lookup(name).build(arg, span), suffixes, grouped=True)
        return self._with_rest(node, rest)

    def expect(self, meta, children):
        tok = children[0]
        over = children[1] if len(children) == 3 else None
        seq = children[-1]
        op, first = seq.items[0]
        params = first.params if isinstance(first, _Group) else ()
        if params:  # `\mathbb{E}[\log p(\mu_k); m_k, s_k^2]`: the parameters of what is sampled
            seq = _Seq([(op, replace(first, params=()))] + seq.items[1:], seq.span)
        body, rest, suffixes = self._split(seq)
        span = _join(_tspan(tok), seq.items[0][1].span if rest is not None else seq.span)
        return self._with_rest(self._suffix(_nested(over, body, span, params), suffixes, grouped=True), rest)

    def bigop(self, meta, children):
        tok = children[0]
        lower = next(c for c in children if isinstance(c, _Lower)).expr
        upper_items = [c for c in children[1:-1] if isinstance(c, list)]
        body = self.fold(children[-1])
        if isinstance(lower, tuple):  # `\sum_{\ell, j}`, `\sum_{i, j=1}^{m, n}`: nested sums sharing the bounds
            return self._joined_bigop(tok, lower, upper_items[0] if upper_items else [], body, meta)
        upper = self._single(upper_items[0], "an upper limit") if upper_items else None
        fields = dict(lower=None, within=None, where=None)
        if isinstance(lower, n.Relation) and len(lower.ops) == 1:
            index = lower.members[0]
            if lower.ops[0] == "=":
                fields["lower"] = lower.members[1]
            elif lower.ops[0] == "in":
                fields["within"] = lower.members[1]
            else:
                fields["where"] = lower
        elif isinstance(lower, n.Var):
            index = lower
        elif isinstance(lower, n.Draw):  # `\\sum_{(x, y) \\sim \\tilde p_l}`: a sum over a data set's draws
            cls = n.Prod if "prod" in str(tok) else n.Sum
            return cls(lower.vars[0], body, upper=upper, where=lower, span=_span(meta))
        else:
            raise _Fail("a sum's subscript must name its index: t=1, y, i \\neq j or x_i \\in X", lower.span)
        if not isinstance(index, n.Var):
            raise _Fail("a sum's index must be a variable", index.span)
        cls = n.Prod if "prod" in str(tok) else n.Sum
        node = cls(index, body, upper=upper, span=_span(meta), **fields)
        return self._mark(node, node)

    def _joined_bigop(self, tok, items, uppers, body, meta):
        *names, last = items
        for item in names:
            if not isinstance(item, n.Var):
                raise _Fail("a sum over several indices names them first and bounds them once at the end, as in "
                            "\\sum_{i, j=1}^{n} or \\sum_{\\ell, j}", item.span)
        cls = n.Prod if "prod" in str(tok) else n.Sum
        fields = dict(lower=None, within=None)
        if isinstance(last, n.Relation) and len(last.ops) == 1 and last.ops[0] in ("=", "in"):
            fields["lower" if last.ops[0] == "=" else "within"] = last.members[1]
            last = last.members[0]
        if not isinstance(last, n.Var):
            raise _Fail("a sum over several indices names them first and bounds them once at the end, as in "
                        "\\sum_{i, j=1}^{n} or \\sum_{\\ell, j}", last.span)
        indices = names + [last]
        if len(set(indices)) != len(indices):
            raise _Fail("an index is named twice in one sum's subscript", last.span)
        if (len(uppers) > 1 and len(uppers) != len(indices)) or any(not isinstance(u, n.Expr) for u in uppers):
            raise _Fail(f"the upper limits of a sum over {len(indices)} indices are one value or one per index, as "
                        f"in \\sum_{{i, j=1}}^{{m, n}}", _cover(uppers))
        bounds = list(uppers) if len(uppers) > 1 else [uppers[0] if uppers else None] * len(indices)
        node = body
        for i, (index, upper) in enumerate(reversed(list(zip(indices, bounds)))):
            node = cls(index, node, upper=upper, joined=i < len(indices) - 1, span=_span(meta), **fields)
        return self._mark(node, node)

    def bigop_signed(self, meta, children):
        """`\\sum_{d=1}^{D} -x_d \\log \\hat x_d - ...` (MADE): a sign right after the limits is the body's."""
        sign = next(c for c in children if isinstance(c, Token) and c.type == "ADDOP")
        rest = [c for c in children if c is not sign]
        seq = rest[-1]
        body = self.fold(seq)
        if str(sign) == "-":
            body = self._mark(n.Neg(body, span=_join(_tspan(sign), body.span)), self._open.get(id(body)))
        rest[-1] = _Seq([(None, body)], seq.span)
        return self.bigop(meta, rest)

    def grad(self, meta, children):
        tok, items, seq = children
        return n.Grad(tuple(items), self.fold(seq), span=_span(meta))

    def optimize(self, meta, children):
        tok, items, seq = children
        sense = "min" if ("min" in str(tok) or "inf" in str(tok)) else "max"  # \\inf and \\sup are min and max
        return self._unbracketed(n.Optimize(sense, tuple(items), self.fold(seq), span=_span(meta)), self._prefixes)

    def arg_optimize(self, meta, children):
        tok, items, seq = children
        sense = "max" if "max" in str(tok) else "min"
        return self._unbracketed(n.ArgOpt(sense, tuple(items), self.fold(seq), span=_span(meta)), self._arg_prefixes)

    def _unbracketed(self, node, ids: set):
        """`node` (a prefix written without brackets around it), remembered in `ids` until a bracket forgets it."""
        ids.add(id(node))
        self._keep.append(node)
        return node

    def coord_partial(self, meta, children):
        tok, items, seq = children
        return n.Derivative(self._single(items, "a partial derivative's coordinate"), self.fold(seq), span=_span(meta))

    def integral(self, meta, children):
        """`\\int_{x} q(z|x) p(x) dx`, `\\int dx\\, p(x) \\int dz\\, e(z|x) ...`, `\\int_a^b f(t) dt`: the differentials
        are the `d x` factors at the start of the integrand or at its end (inside a sum written last, as in
        Hyvarinen's `\\int p(\\xi) \\sum_i [..] d\\xi`)."""
        seq = children[-1]
        lower = next((c.expr for c in children if isinstance(c, _Lower)), None)
        upper_items = [c for c in children[1:-1] if isinstance(c, list)]
        upper = self._single(upper_items[0], "an upper limit") if upper_items else None
        if isinstance(lower, tuple):
            raise _Fail("an integral's subscript is one domain, as in \\int_{x \\in X} or \\int_0^1",
                        _cover(lower))
        body = self.fold(seq)
        factors = list(body.factors) if isinstance(body, n.Mul) else [body]
        wrt: List[n.Var] = []
        while factors:
            taken = _differential(factors)
            if taken is None:
                break
            wrt.append(taken)
        rest = n.Mul(tuple(factors), span=_cover(factors)) if len(factors) > 1 else factors[0] if factors else None
        if rest is None:
            raise _Fail("an integral needs an integrand: \\int_x f(x) dx", _span(meta))
        if not wrt:
            rest, tail = _trailing_differentials(rest)
            wrt = tail
        if upper is not None:
            return n.Integral(rest, tuple(wrt), None, lower, upper, span=_span(meta))
        return n.Integral(rest, tuple(wrt), lower, span=_span(meta))

    # -- scripts --
    def braced(self, meta, children):
        return list(children)

    def bare(self, meta, children):
        return [self._atom(children[0])]

    def script_rel(self, meta, children):
        child = children[0]
        if len(children) > 1:
            return _Lower(tuple(children))
        return _Lower(self._atom(child) if isinstance(child, Token) else child)

    def _atom(self, tok: Token) -> n.Node:
        if tok.type == "NUMBER":
            return self.number(None, [tok])
        if tok.type == "DOTS":
            raise _Fail("'\\ldots' belongs in a list such as z_1,\\ldots,z_K", _tspan(tok))
        if tok.type == "GREEK":
            return self.greek(None, [tok])
        return self.name(None, [tok])

    def range(self, meta, children):
        return n.Range(children[0], children[1], span=_span(meta))

    def index_rel(self, meta, children):
        """`w \\in \\mathcal{W}` under `\\max`, `Q \\in \\mathcal{Q}` under `\\inf`: a relation as a script item."""
        a, op, b = children
        return n.Relation((a, b), (RELATIONS.canonical(str(op).strip()),), span=_span(meta))

    def before(self, meta, children):
        op = RELATIONS.canonical(str(children[0]).strip())
        if op in (">", ">="):  # a suffix `x_{\\geq t}`, `x_{>t}`
            return n.After(children[1], inclusive=op == ">=", span=_span(meta))
        if op not in ("<", "<="):
            raise _Fail("an index slice is written <t, \\le t, \\geq t or >t", _tspan(children[0]))
        return n.Before(children[1], inclusive=op == "<=", span=_span(meta))

    @staticmethod
    def _single(items, what: str) -> n.Expr:
        if len(items) != 1 or isinstance(items[0], n.SLICES):
            raise _Fail(f"{what} must be a single value", _cover(items))
        return items[0]

    # -- atoms --
    def number(self, meta, children):
        tok = children[0]
        text = str(tok)
        value = float(re.search(r"\d+", text).group() if text.startswith("\\") else text)  # `\\mathbf{0}` is 0
        if not math.isfinite(value):
            raise _Fail(f"the number {tok} is too large (the largest is about 1.8e308)", _tspan(tok))
        return n.Num(value, span=_tspan(tok))

    def name(self, meta, children):
        tok = children[0]
        wrapper, base = _unwrap(str(tok))
        if wrapper is None:  # the ASCII word `varphi` is the letter `\\varphi` is: phi (it printed back as \\varphi)
            base = GREEK_ALIASES.get(base, base)
        return n.Var(base.replace("\\_", "_"), span=_tspan(tok))

    def infinity(self, meta, children):
        return n.Var("infty", span=_tspan(children[0]))

    def greek(self, meta, children):
        tok = children[0]
        _, base = _unwrap(str(tok))
        base = re.sub(r"[\s{}]|\\", "", base)
        base = re.sub(r"^(mathbf|boldsymbol|bm|vec|mathit)", "", base) if base not in GREEK_ALIASES else base
        return n.Var(GREEK_ALIASES.get(base, base), span=_tspan(tok))

    def decorated(self, meta, children):
        tok, inner = children
        if isinstance(inner, Token):
            inner = self._atom(inner)
        inner = self._plain(inner)
        if not isinstance(inner, n.Var):
            raise _Fail(f"{str(tok)} decorates a variable", _span(meta))
        return replace(inner, mark=spellings.DECORATIONS.canonical(str(tok).lstrip("\\")), span=_span(meta))

    def group_params(self, meta, children):
        group = self.group(meta, children[:1])
        return replace(group, params=tuple(children[-1]))

    def group(self, meta, children):
        _no_draw(children[0])
        self._open.pop(id(children[0]), None)  # a bracketed sum takes no later terms
        self._prefixes.discard(id(children[0]))  # nor a bracketed \min_G
        self._arg_prefixes.discard(id(children[0]))
        return _Group(children[0], _span(meta))

    def tuple(self, meta, children):
        items = tuple(c for c in children if not isinstance(c, Token))
        for item in items:
            _no_draw(item)
        return n.ArgTuple(items, span=_span(meta))

    def concat(self, meta, children):
        items = tuple(c for c in children if not isinstance(c, Token))
        for item in items:
            _no_draw(item)
        return n.Concat(items, span=_span(meta))

    def placeholder(self, meta, children):
        return n.Placeholder(span=_span(meta))

    def underbrace_prose(self, meta, children):
        body, prose = children[1], children[-1]
        _no_draw(body)
        words = re.sub(r"\s+", " ", re.sub(r"^\\[A-Za-z]+\s*\{|\}$", "", str(prose)).strip())
        return n.Labeled(body, n.Text(words, span=_tspan(prose)), span=_span(meta))

    def star(self, meta, children):
        return ("star", None, _span(meta))

    def abs(self, meta, children):
        return n.Apply("abs", (children[1],), span=_span(meta))

    def norm(self, meta, children):
        return n.Norm(children[1], span=_span(meta))

    def frac(self, meta, children):
        tok, num, den = children
        return n.Div(num, den, span=_span(meta))

    def partial(self, meta, children):
        _, _, num, _, wrt = children
        return n.Partial(num, wrt, span=_span(meta))

    def underbrace(self, meta, children):
        _, body, items = children
        _no_draw(body)  # `\\underbrace{\\lambda \\sim b}_{L}` is not a term
        return n.Labeled(body, self._single(items, "a label"), span=_span(meta))

    def angle(self, meta, children):
        _, body, _, over = children
        return _nested(over, body, _span(meta))

    # -- postfix: subscripts, powers, primes --
    def sub(self, meta, children):
        return ("sub", children[0], _span(meta))

    def sup(self, meta, children):
        return ("sup", children[0], _span(meta))

    def transpose(self, meta, children):
        return ("T", None, _span(meta))

    def sample_sup(self, meta, children):
        return ("sample", children[1], _span(meta))

    def primes(self, meta, children):
        return ("primes", len(str(children[0])), _span(meta))

    def postfix(self, meta, children):
        base, suffixes = children[0], children[1:]
        if not suffixes:
            return base
        node = self._suffix(self._plain(base), suffixes, isinstance(base, _Group))
        return _Suffixed(node, base, list(suffixes)) if isinstance(base, _Group) else node

    def _suffix(self, node: n.Expr, suffixes, grouped: bool) -> n.Expr:
        """`node` with its sub/superscripts, transposes, sample indices and primes applied in order."""
        for kind, arg, where in suffixes:
            span = _join(node.span, where)
            if kind == "sup" and not grouped and len(arg) == 1 and n.superscript_is_label(node, arg[0]):
                node = replace(node, label=arg[0].name, span=span)  # `h^e_l`, `x^q`: part of the name
            elif kind == "star":  # `G^*`, `\theta^*`, `T^*`: an optimum or a conjugate, part of the name
                if not isinstance(node, n.Var) or node.label is not None or grouped:
                    raise _Fail("a star ^* follows a name, as in G^*, \\theta^* or f^*(t)", where)
                node = replace(node, label="*", span=span)
            elif kind == "sub":
                if isinstance(node, n.Var):
                    node = replace(node, index=node.index + tuple(arg), span=span)
                elif isinstance(node, n.Norm) and node.ord is None:
                    node = replace(node, ord=self._single(arg, "a norm's order"), span=span)
                else:
                    raise _Fail("a subscript can only follow a variable, a distribution's name or a norm", where)
            elif kind == "sup":
                node = n.Pow(node, self._single(arg, "an exponent"), span=span)
            elif kind == "T":
                node = n.Apply("transpose", (node,), span=span)
            elif kind == "sample":
                if not isinstance(node, n.Var):
                    raise _Fail("a sample superscript ^{(l)} can only follow a variable", where)
                kept = tuple(x for x in arg if not (isinstance(x, n.Var) and x.name in PER_EXAMPLE_INDICES
                                                     and not x.index))
                node = replace(node, index=node.index + kept, span=span)
            else:
                if not isinstance(node, n.Var):
                    raise _Fail("a prime can only follow a variable", where)
                node = replace(node, primes=node.primes + arg, span=span)
        return node

    # -- calls --
    def arglist(self, meta, children):
        if any(isinstance(x, Token) and x.type == "DOTS" for x in children):  # `\text{ELBO}(x_1, \ldots, x_N)`
            return list(_draw_vars([x for x in children if not isinstance(x, Token) or x.type == "DOTS"]))
        return [x for x in children if not isinstance(x, Token)]

    def given(self, meta, children):
        return ("given", children[1])

    def params(self, meta, children):
        return ("params", children[0])

    def args(self, meta, children):
        vars_: List[n.Expr] = []
        given: List[n.Expr] = []
        params: List[n.Expr] = []
        has_given = False
        for child in children:
            if isinstance(child, tuple) and child[0] == "given":
                given, has_given = child[1], True
            elif isinstance(child, tuple) and child[0] == "params":
                params = child[1]
            else:
                vars_ = child
        return _Args(tuple(vars_), tuple(given), tuple(params), has_given)

    def divargs(self, meta, children):
        return _DivArgs(children[0], children[2])

    def set_call(self, meta, children):
        tok, items = children
        wrapper, base = _unwrap(str(tok))
        if "Uniform" not in (FAMILIES.canonical(f"{wrapper}:{base}"), FAMILIES.canonical(base)) and not (
                base == "U" and wrapper is None):
            raise _Fail(f"a braced set after a name is the discrete uniform \\mathcal{{U}}\\{{1, \\ldots, T\\}}; "
                        f"{base} takes ( )", _tspan(tok))
        return n.Family("UniformDiscrete", (), (items[0], items[-1]), span=_span(meta))

    def set_items(self, meta, children):
        return [c for c in children if not isinstance(c, Token)]

    def call_star(self, meta, children):
        return ("label", "*", _span(meta))

    def call_label(self, meta, children):
        (item,) = children[0] if len(children[0]) == 1 else (None,)
        if isinstance(item, n.Num) and item.value == int(item.value):
            return ("power", item, _span(meta))  # `\mathrm{MMD}^2[..]`: the call squared
        if isinstance(item, n.Var) and not item.index and item.mark is None and item.name.isalpha() \
                and item.name != "T" and item.name not in spellings.GREEK_LETTERS:  # `^A`, `\\eta^q_\\phi(..)`
            return ("label", item.name, _span(meta))
        raise _Fail("a superscript before a call's brackets is a label such as ^A or ^*, or a power such as ^2",
                    _span(meta))

    def call_example(self, meta, children):
        return ("example", None, _span(meta))  # `\\mathcal{L}^{(i)}(x)`: the per-example index, dropped

    def call(self, meta, children):
        sup = next((c for c in children[1:] if isinstance(c, tuple)), None)
        if sup is not None and sup[0] == "example":
            children, sup = [c for c in children if c is not sup], None
        if sup is None:
            return self._call(meta, children, None)
        node = self._call(meta, [c for c in children if c is not sup], sup[1] if sup[0] == "label" else None)
        if sup[0] == "power":
            return n.Pow(node, sup[1], span=_span(meta))
        return node

    def _call(self, meta, children, label):
        tok = children[0]
        mark = None
        if tok.type == "DECOR_CALL":
            mark, tok = _decorated_name(tok)
        wrapper, base = _unwrap(str(tok))
        base = base.replace("\\_", "_")  # `\text{one\_hot}`
        base = GREEK_ALIASES.get(base, base) if wrapper is None else base
        scripts = [c for c in children[1:] if isinstance(c, list)]
        script = [i for part in scripts for i in part] if scripts else None
        sub, structured = _subscript(script) if script is not None else (None, ())
        args = children[-1]
        span = _span(meta)
        if label is not None or structured:  # a labelled or structured name: a name of its own
            if isinstance(args, _DivArgs):
                raise _Fail("a divergence's name takes no superscript or structured subscript", span)
            if not (args.vars or args.given or args.params):
                raise _Fail(f"empty brackets after {base}: write its variables, as in {base}(x)", span)
            return n.Dist(base, args.vars, args.given, sub, args.params, mark, label, structured, span=span)
        if isinstance(args, _Args) and not (args.vars or args.given or args.params):
            raise _Fail(f"empty brackets after {base}: write its variables, as in {base}(x), or the name alone", span)
        if (wrapper == PLAIN_NAME or mark) and not isinstance(args, _DivArgs):  # `\mathit{E}(x)`, `\bar q(z)`: names
            return n.Dist(base, args.vars, args.given, sub, args.params, mark, span=span)
        if isinstance(args, _DivArgs):
            kind = sub if (base == "D" and sub) else base
            if "_" in kind or "," in kind:  # `D_{K,L}(q || p)`
                raise _Fail("a divergence's kind is one name such as KL or JS", span)
            if not kind[:1].isupper() and not (base == "D" and sub):
                raise _Fail(f"{base}(a || b) is not a divergence: a divergence has an upper-case name such as KL",
                            _tspan(tok))
            return n.Divergence(kind.upper(), _as_dist(args.left), _as_dist(args.right),
                                None if base == "D" else sub, span=span)
        self._no_condition_in_divergence(base, sub, args, span)
        family = FAMILIES.canonical(f"{wrapper}:{base}") or (FAMILIES.canonical(base) if wrapper != "mathcal"
                                                             else None)
        if base == "U" and wrapper is None and self._text[span.end - 1:span.end] == "]":
            family = "Uniform"  # `U[0, 1]`, the ASCII uniform
        if family == "Uniform" and len(args.vars) == 1 and not args.has_given and not args.params:
            family = None  # `\mathcal{U}(\mathbf{x})`: one argument is a named function (M2's U(x)), not a uniform
        if family is not None and not sub:
            if args.has_given:
                return n.Family(family, args.vars, args.given + args.params, span=span)
            if args.params:
                return n.Family(family, args.vars, args.params, span=span)
            return n.Family(family, (), args.vars, span=span)
        if base in ENTROPY_NAMES and not sub and len(args.vars) == 1 and not args.has_given and not args.params:
            return n.Entropy(_as_dist(args.vars[0]), span=span)
        div_kind = sub.upper() if (base == "D" and sub and "_" not in sub) else base.upper() if base.isupper() else None
        div_kind = div_kind and DIVERGENCES.canonical(div_kind)
        if div_kind and args.vars and all(isinstance(a, n.Var) and a.name in spellings.GREEK_LETTERS
                                          for a in args.vars):
            div_kind = None  # `F(\\theta, \\omega)` (f-GAN eq. 6) names an objective of parameters, not a divergence
        if div_kind and len(args.vars) == 3 and isinstance(args.vars[0], n.Var) and not args.has_given \
                and not args.params:  # `\mathrm{MMD}[\mathcal{F}, p, q]`: over a function class
            return n.Divergence(div_kind, _as_dist(args.vars[1]), _as_dist(args.vars[2]),
                                None if base == "D" else sub, function_class=args.vars[0], span=span)
        if div_kind and len(args.vars) == 2 and not args.has_given and not args.params:
            return n.Divergence(div_kind, _as_dist(args.vars[0]), _as_dist(args.vars[1]),
                                None if base == "D" else sub, span=span)
        return n.Dist(base, args.vars, args.given, sub, args.params, span=span)

    @staticmethod
    def _no_condition_in_divergence(base: str, sub: Optional[str], args: _Args, span) -> None:
        """`KL(q(z|x)|p(z))`: one bar between two distributions is a typo for `||`; say so."""
        kind = sub if (base == "D" and sub) else base
        if not (args.has_given and kind and DIVERGENCES.lookup(kind.upper()) is not None):
            return
        if any(isinstance(a, (n.Dist, n.Family)) for a in args.vars + args.given):
            raise _Fail(f"the two arguments of a divergence are separated by '||', as in "
                        f"{kind}(q(z|x) || p(z)); one '|' is a condition", span)

    # -- expectations --
    def sampler_sub(self, meta, children):
        child = children[0]
        if isinstance(child, list):
            return child
        return [_lone(child, _span(meta))]

    def postfix_name(self, meta, children):
        children = list(children)
        mark = None
        if children[0].type == "DECOR":
            mark = spellings.DECORATIONS.canonical(str(children.pop(0)).lstrip("\\"))
        head = children.pop(0)
        node = (self.greek(None, [head]) if head.type == "GREEK" else self.infinity(None, [head])
                if head.type == "INFTY" else self.name(None, [head]))
        label = "*" if any(isinstance(c, Token) and c.type == "STAR_SUP" for c in children) else None  # `x \sim p^*`
        primes = sum(len(str(c)) for c in children if isinstance(c, Token) and c.type == "PRIMES")
        index = next((tuple(c) for c in children if isinstance(c, list)), ())
        return replace(node, index=index, mark=mark, primes=primes, label=label, span=_span(meta))

    def part_plain(self, meta, children):
        return ("plain", (), list(children), _span(meta))

    def part_sim(self, meta, children):
        return ("sim", (children[0],), list(children[2:]), _span(meta))

    def part_tuple(self, meta, children):
        at = next(i for i, c in enumerate(children) if isinstance(c, Token) and c.type == "SIM")
        return ("sim", tuple(children[:at]), list(children[at + 1:]), _span(meta))

    def part_except(self, meta, children):
        sign, var = children
        if str(sign) != "-":
            raise _Fail("an expectation over all factors but one is written \\mathbb{E}_{-j}", _tspan(sign))
        return ("except", (), [n.Neg(var, span=_span(meta))], _span(meta))

    def part_dots(self, meta, children):
        return ("dots", (children[0],), [], _span(meta))

    def sampler(self, meta, children):
        """The items of one subscript, left to right, one Sampler each: names written before a `~` are its draws
        (`z_1, \\ldots, z_K \\sim q`); other bare names are variables drawn from what the checker finds."""
        if len(children) == 1 and children[0][0] == "plain" and len(children[0][2]) == 1:
            return [_lone(children[0][2][0], _span(meta))]
        out: List[n.Sampler] = []
        pending: List[object] = []
        for kind, draws, items, span in children:
            if kind == "dots" or (kind == "plain" and len(items) == 1 and isinstance(items[0], n.Var)):
                pending.extend(draws or items)
                continue
            if kind == "except":
                out.extend(_bare(pending))
                out.append(n.Sampler(tuple(items), span=span))
            elif kind == "sim":
                out.append(_sampler(items, list(pending) + list(draws), _join(_cover(pending), span)))
            else:
                out.extend(_bare(pending))
                out.append(_sampler(items, [], span))
            pending = []
        return out + _bare(pending)


def _differential(factors: List[n.Expr]) -> Optional[n.Var]:
    """The differential at the start of `factors` (`d` then a variable, or `dx` as one name), taken off it."""
    first = factors[0]
    if not isinstance(first, n.Var) or first.mark:
        return None
    if first == n.Var("d") and len(factors) > 1 and isinstance(factors[1], n.Var):
        factors.pop(0)
        return factors.pop(0)
    if len(first.name) == 2 and first.name[0] == "d" and first.name[1].isalpha():  # `dx`, `dx_0`, `dx^A`: x's
        factors.pop(0)
        return replace(first, name=first.name[1])
    return None


def _trailing_differentials(body: n.Expr) -> Tuple[n.Expr, List[n.Var]]:
    """`body` without the differentials written at its end (`p(x) f(x) dx`), looking through what takes the rest
    of the product (a sum `\\sum_i [..] d\\xi`, a negation, `\\log`)."""
    if isinstance(body, n.Mul):
        factors = list(body.factors)
        found: List[n.Var] = []
        while len(factors) >= 2:
            last, before = factors[-1], factors[-2]
            if before == n.Var("d") and isinstance(last, n.Var):
                found.insert(0, last)
                del factors[-2:]
            elif isinstance(last, n.Var) and len(last.name) == 2 and last.name[0] == "d" and last.name[1].isalpha() \
                    and not last.mark:
                found.insert(0, replace(last, name=last.name[1]))
                factors.pop()
            else:
                break
        if found and factors:
            rest = factors[0] if len(factors) == 1 else replace(body, factors=tuple(factors), span=_cover(factors))
            return rest, found
        if factors:
            inner, found = _trailing_differentials(factors[-1])
            if found:
                return replace(body, factors=tuple(factors[:-1]) + (inner,)), found
        return body, []
    if isinstance(body, (n.Sum, n.Prod)):
        inner, found = _trailing_differentials(body.body)
        return (replace(body, body=inner), found) if found else (body, [])
    if isinstance(body, n.Neg):
        inner, found = _trailing_differentials(body.arg)
        return (replace(body, arg=inner), found) if found else (body, [])
    if isinstance(body, n.Apply) and len(body.args) == 1 and body.fn == "log":
        inner, found = _trailing_differentials(body.args[0])
        return (replace(body, args=(inner,)), found) if found else (body, [])
    return body, []


def _cover(nodes_: Sequence[n.Node]) -> Optional[n.Span]:
    spans = [x.span for x in nodes_ if getattr(x, "span", None) is not None]
    if not spans:
        return None
    return n.Span(min(s.start for s in spans), max(s.end for s in spans))


def _as_dist(node: n.Expr) -> n.Expr:
    """A bare name where a distribution is expected (`\\mathbb{E}_q`, `KL(q \\| p)`, `q_\\phi`, `\\tilde p_l`) is that
    Dist (a decorated name is a name of its own)."""
    if isinstance(node, n.Var) and node.primes == 0 and node.label in (None, "*"):  # `p^*`: a starred name
        sub, script = _subscript(node.index) if node.index else (None, ())
        return n.Dist(node.name, sub=sub, mark=node.mark, label=node.label, script=script, span=node.span)
    return node


def _no_draw(node) -> None:
    if isinstance(node, n.Draw):
        raise _Fail("a draw such as x \\sim p(x) is a statement of its own or an item of a where clause", node.span)


_DECORATED = re.compile(r"\\([A-Za-z]+)\s*(?:\{\s*(\\?[A-Za-z][A-Za-z0-9]*(?:\s*\{\s*\\?[A-Za-z][A-Za-z0-9]*\s*\})?)\s*\}"
                        r"|(\\?[A-Za-z][A-Za-z0-9]*))")


def _decorated_name(tok: Token) -> Tuple[str, Token]:
    """`\\tilde{p}` -> ('tilde', the token `p`)."""
    m = _DECORATED.match(str(tok))
    name = m.group(2) or m.group(3)
    name = name if _WRAPPED.fullmatch(name) else name.lstrip("\\")
    return spellings.DECORATIONS.canonical(m.group(1)), Token.new_borrow_pos("CALL_NAME", name, tok)


def _names_only(var: n.Var) -> bool:
    """Whether a bare subscript item is a plain name that `_as_dist` can read as a distribution (`q`, `p_B`)."""
    if var.mark or var.primes or (var.label and var.label != "*"):
        return False
    return all(isinstance(i, (n.Var, n.Num)) and not (isinstance(i, n.Var) and i.index) for i in var.index)


def _lone(item: n.Expr, span) -> n.Sampler:
    """A subscript of one item: `E_q`, `E_{p_B}`, `E_{q(z|x)}` sample from that distribution (as always); a marked,
    primed or indexed-by-expression name (`E_{\\hat x}`, `E_{z'}`, `E_{x_{\\le t}}`) is a variable drawn from what the
    checker finds."""
    if isinstance(item, n.Var) and not _names_only(item):
        return n.Sampler((), (item,), span=span)
    return n.Sampler((_as_dist(item),), span=span)


def _sampler(items, draws, span) -> n.Sampler:
    """`draws ~ items`: the draws kept only when they differ from the variables of the distributions."""
    dists = [_as_dist(i) for i in items]
    drawn = _draw_vars(draws)
    produced = [v for d in dists if isinstance(d, (n.Dist, n.Family)) for v in d.vars]
    if set(drawn) == set(produced) and len(drawn) == len(produced):
        drawn = ()
    return n.Sampler(tuple(dists), tuple(drawn), span=span)


def _bare(pending) -> List[n.Sampler]:
    """Bare variables of a subscript list (`E_{t, x_0, \\epsilon}`), one Sampler each."""
    return [n.Sampler((), (v,), span=v.span) for v in _draw_vars(pending)]


def _nested(over, body: n.Expr, span, params=()) -> n.Expr:
    """`E_{a, b, c}[f]` -> E_a[E_b[E_c[f]]], the inner ones `joined` (the printers write one subscript); parameters
    written after `;` in the bracket go on the innermost."""
    if over is None:
        return n.Expect(None, body, params=tuple(params), span=span)
    for i, sampler in enumerate(reversed(over)):
        body = n.Expect(sampler, body, joined=i < len(over) - 1, params=tuple(params) if i == 0 else (), span=span)
    return body


def _draw_vars(draws: Sequence[object]) -> Tuple[n.Var, ...]:
    """`z_1, \\ldots, z_K` -> `z_{1:K}`; other draws as written."""
    out: List[n.Var] = []
    i = 0
    items = list(draws)
    while i < len(items):
        item = items[i]
        if isinstance(item, Token):  # DOTS
            if not out or i + 1 >= len(items) or isinstance(items[i + 1], Token):
                raise _Fail("'\\ldots' must stand between two draws, as in z_1,\\ldots,z_K", _tspan(item))
            first, last = out.pop(), items[i + 1]
            if first.base != last.base or len(first.index) != 1 or len(last.index) != 1:
                raise _Fail("the draws around '\\ldots' must be one variable with two indices, as in "
                            "z_1,\\ldots,z_K", _join(first.span, last.span))
            both = _join(first.span, last.span)
            out.append(replace(first, index=(n.Range(first.index[0], last.index[0], span=both),), span=both))
            i += 2
            continue
        out.append(item)
        i += 1
    return tuple(out)


def _replace_tail(node: n.Expr, old: n.Expr, new: n.Expr) -> n.Expr:
    """`node` with the open sum `old` at its tail replaced by `new` (through products and negations)."""
    if node is old:
        return new
    if isinstance(node, n.Neg):
        return replace(node, arg=_replace_tail(node.arg, old, new), span=_join(node.span, new.span))
    if isinstance(node, n.Mul):
        factors = node.factors[:-1] + (_replace_tail(node.factors[-1], old, new),)
        return replace(node, factors=factors, span=_join(node.span, new.span))
    return node  # pragma: no cover - only marked paths reach here


def _too_deep(tree: n.Node, limit: int) -> Optional[n.Node]:
    """The first node found deeper than `limit` levels (iteratively: deep trees must not recurse), or None."""
    stack = [(tree, 1)]
    work = last_work()
    while stack:
        node, depth = stack.pop()
        work.nodes += 1
        if depth > limit:
            return node
        stack.extend((child, depth + 1) for child in node.children())
    return None


# --- public functions ---------------------------------------------------------------------------------------


def parse(text: str) -> n.Program:
    """The AST of `text` (one statement a line or `;`-separated); raises FormulaSyntaxError with a caret.
    Cached on the text."""
    if not isinstance(text, str):
        raise FormulaSyntaxError(f"a formula is a string, not {type(text).__name__}")
    return _parse_cached(text)


@functools.lru_cache(maxsize=1024)
def _parse_cached(text: str) -> n.Program:
    _WORK.current = Work()
    translation = unicode_input.translate(text) if len(text) <= MAX_LENGTH else None
    if translation is None:
        return _parse_text(text)
    try:  # what the Unicode printer writes (`𝔼`, `θ`, `zₜ`): parsed as its LaTeX, spans put back on the original
        program = _parse_text(translation.text)
    except FormulaSyntaxError as err:
        span = translation.span(*err.span, len(text)) if err.span else None
        raise FormulaSyntaxError(err.message, text, span) from None
    _respan(program, translation, len(text))
    return program


def _respan(program: n.Program, translation: "unicode_input.Translation", length: int) -> None:
    """Every span of a tree parsed from a translation, moved onto the original text (the nodes were just built
    by this parse and are not shared yet, so they are updated in place)."""
    seen = set()
    for node in program.walk():
        if id(node) in seen or node.span is None:
            continue
        seen.add(id(node))
        start, end = translation.span(node.span.start, node.span.end, length)
        object.__setattr__(node, "span", n.Span(start, end))


def _parse_text(text: str) -> n.Program:
    source = _prescan(text)
    try:
        tree = _lark().parse(source)
        program = _Builder(source).transform(tree)
    except FormulaError:
        raise
    except _Fail as fail:
        raise FormulaSyntaxError(fail.message, text, fail.span or (0, len(text))) from None
    except VisitError as err:
        orig = err.orig_exc
        if isinstance(orig, _Fail):
            raise FormulaSyntaxError(orig.message, text, orig.span or (0, len(text))) from None
        if isinstance(orig, FormulaError):
            raise orig from None
        raise FormulaSyntaxError(f"the formula does not parse ({orig})", text, (0, len(text))) from None
    except UnexpectedInput as err:
        raise _syntax_error(err, text) from None
    except (LarkError, RecursionError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            StopIteration, AssertionError) as err:
        raise FormulaSyntaxError(f"the formula does not parse ({type(err).__name__})", text,
                                 (0, len(text))) from None
    deep = _too_deep(program, MAX_TREE_DEPTH)
    if deep is not None:
        where = deep.span or n.Span(0, len(text))
        raise FormulaSyntaxError(f"the formula is nested too deeply (more than {MAX_TREE_DEPTH} levels)",
                                 text, (where.start, where.end))
    return program


def _spellings_changed() -> None:
    """A spelling row was added or removed: rebuild the grammar's terminals and forget parsed texts."""
    _lark.cache_clear()
    _parse_cached.cache_clear()


spellings.on_change(_spellings_changed)

parse.cache_clear = _parse_cached.cache_clear  # type: ignore[attr-defined]
parse.cache_info = _parse_cached.cache_info  # type: ignore[attr-defined]


def parse_expr(text: str) -> n.Expr:
    """The single statement of a one-statement text (FormulaSyntaxError if there are several)."""
    program = parse(text)
    if len(program.statements) != 1:
        second = program.statements[1].span
        raise FormulaSyntaxError(f"expected one statement, found {len(program.statements)}", text,
                                 (second.start, second.end) if second else (0, len(text)))
    return program.statements[0]


def parse_signature(text: str) -> n.Dist:
    """A declaration signature such as `q(z|x)`, `p_B(z|b)`, `q(z_t|z_{t-1},x)`, `T(x,z)`: one distribution or
    function whose arguments are variables; anything else raises FormulaSyntaxError with a caret."""
    expr = parse_expr(text)
    if not isinstance(expr, n.Dist) or not expr.vars:
        span = expr.span or n.Span(0, len(text))
        raise FormulaSyntaxError("a signature is one distribution or function such as q(z|x), p(z) or D(x)",
                                 text, (span.start, span.end))
    for arg in expr.vars + expr.given + expr.params:
        if not isinstance(arg, n.Var):
            span = arg.span or expr.span
            raise FormulaSyntaxError("a signature's arguments must be variables such as z, x_t or z_{t-1}",
                                     text, (span.start, span.end))
    return expr


__all__ = ["parse", "parse_expr", "parse_signature", "DIVERGENCES", "FAMILIES", "FUNCTIONS", "RELATIONS",
           "MAX_LENGTH", "MAX_NESTING", "MAX_TREE_DEPTH", "Work", "last_work"]
