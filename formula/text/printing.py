"""AST -> text: the plain-ASCII spelling and the LaTeX a paper prints (docs/language.md §1, §4).

Both printers put in only the parentheses that precedence needs, so that `parse(to_ascii(t)) == t` and
`parse(to_latex(t)) == t` for every tree the parser builds. Where ASCII has no spelling of its own (marks,
norms, families, `\\underbrace`) the ASCII printer writes the LaTeX one: mixing spellings is legal.

>>> from formula.lang.nodes import Add, Neg, Divergence, Dist, Var
>>> kl = Divergence("KL", Dist("q", (Var("z"),), (Var("x"),)), Dist("p", (Var("z"),)))
>>> to_ascii(Add((Var("a"), Neg(kl))))
'a - KL(q(z|x) || p(z))'
"""

from __future__ import annotations

import functools
import threading
from dataclasses import replace
from decimal import Decimal
from typing import Callable, Tuple

from ..errors import FormulaError
from ..lang import nodes as n
from ..lang import spellings

__all__ = ["to_ascii", "to_latex", "AsciiPrinter", "LatexPrinter", "GREEK", "format_number", "depth_guarded",
           "joined_samplers"]

GREEK = spellings.GREEK_LETTERS

# Binding strength of what a printed piece is, low to high. A child printed inside a parent that needs more
# than the child offers is parenthesised. PREFIX is a function or expectation with its argument in brackets
# (`exp(a)`, `E_q[f]`, `sg[a]`): what follows it is not swallowed, and a `^2` written after the bracket applies
# to the whole call (`exp(a)^2` is (exp a)^2), but it is not an atom (`^\top` is still bracketed).
REL, ADD, NEG, MUL, PREFIX, POW, ATOM = 0, 10, 15, 20, 25, 30, 40


class Piece(Tuple[str, int, bool]):
    """A printed sub-tree: its text, its precedence, and whether it is open to the right (`sum_t f`,
    `log p(x)`, `\nabla_x f`: the grammar gives them the rest of the product), so that a factor written
    after it would be swallowed."""

    def __new__(cls, text: str, prec: int, open_right: bool = False):
        return super().__new__(cls, (text, prec, open_right))

    text = property(lambda self: self[0])
    prec = property(lambda self: self[1])
    open_right = property(lambda self: self[2])


_CONTINUING = ("-", "+", "(", "[", "{", "|", "\\left", "\\big", "\\Big", "\\bigg", "\\Bigg")


def format_number(value: float) -> str:
    """`2.0` -> `2`, `0.5` -> `0.5`, `1e-05` -> `0.00001`: positional, shortest exact decimal."""
    if float(value).is_integer():
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")


def _uses_name(node: n.Node, name: str) -> bool:
    """Whether a variable called `name` occurs anywhere in `node` (as a value or inside an index)."""
    return any(isinstance(m, n.Var) and m.name == name for m in node.walk())


class _Printer:
    """Shared precedence logic; subclasses supply the spelling. Dispatch is by node class name
    (`_print_Add`, ...), the way sympy's printers dispatch."""

    # spelling, overridden per subclass
    mid = "|"
    parallel = " || "
    times = " * "
    ldots = "..."
    expect = "E"
    sample_sep = " ~ "
    spelling = "ascii"  # which spelling of a table row (formula/lang/spellings.py) this printer writes

    def spelled(self, table: spellings.Table, name: str, default: str) -> str:
        """The row's spelling for this printer, or `default` for a name the table does not hold."""
        row = table.get(name)
        return default if row is None else getattr(row, self.spelling)

    def __init__(self) -> None:
        self._local = threading.local()  # the memo of the print in progress, per thread

    def __call__(self, node: n.Node) -> str:
        return self._memoised(lambda: self.piece(node).text)

    def top(self, node: n.Node) -> str:
        """A whole text or one statement: a `\\min_G \\max_D` prefix at its start is written without brackets
        around the statement, which the parser reads as covering all of it."""
        return self._memoised(lambda: self.piece(node).text if isinstance(node, n.Program) else self.statement(node))

    def _memoised(self, make: Callable[[], str]) -> str:
        outermost = getattr(self._local, "memo", None) is None
        if outermost:
            self._local.memo = {}
        try:
            return make()
        finally:
            if outermost:
                self._local.memo = None

    def statement(self, node: n.Expr) -> str:
        heads = []
        body = node
        while isinstance(body, n.Optimize):
            heads.append(self.optimize_head(body))
            body = body.body
        text = self(body)
        leftmost = body
        while isinstance(leftmost, (n.Add, n.Relation)):
            leftmost = leftmost.terms[0] if isinstance(leftmost, n.Add) else leftmost.members[0]
        if not heads or (isinstance(body, (n.Add, n.Relation)) and not text.startswith("-")
                         and not isinstance(leftmost, n.Optimize)):
            return "".join(heads) + text
        return self(node)

    def piece(self, node: n.Node) -> Piece:
        """`node` printed, memoised for the print in progress: a parent looks at its children's pieces more than
        once (precedence, open right ends), which would otherwise cost 2^depth."""
        memo = getattr(self._local, "memo", None)
        hit = memo.get(id(node)) if memo is not None else None
        if hit is not None and hit[0] is node:
            return hit[1]
        method: Callable[[n.Node], Piece] = getattr(self, "_print_" + type(node).__name__, None)
        if method is None:
            raise TypeError(f"cannot print {type(node).__name__}")
        result = method(node)
        if memo is not None:
            memo[id(node)] = (node, result)  # holding the node keeps its id from being reused
        return result

    # --- helpers -------------------------------------------------------------------------------------
    def paren(self, text: str) -> str:
        return f"({text})"

    def at(self, node: n.Node, prec: int, closed: bool = False) -> str:
        """`node` printed where at least `prec` binds; `closed` when something follows it at this level."""
        p = self.piece(node)
        if p.prec < prec or (closed and p.open_right):
            return self.paren(p.text)
        return p.text

    def args(self, items) -> str:
        return ", ".join(self.at(a, ADD) for a in items)

    # --- programs and statements ---------------------------------------------------------------------
    def _print_Program(self, node: n.Program) -> Piece:
        lines = [self.statement(s) for s in node.statements]
        out = lines[0]
        for prev, line in zip(lines, lines[1:]):
            # A line that ends with an operator, or a next line that starts with one or with a bracket, would
            # continue the statement (or make `name (` a call): such statements are separated by `;` as well.
            joins = prev[-1:] in "-+*/=<>|,&([{^_" or line.startswith(_CONTINUING)
            out += (";\n" if joins else "\n") + line
        return Piece(out, REL)

    def _print_Relation(self, node: n.Relation) -> Piece:
        first = node.members[0]  # a leading \min_G would take the whole chain
        parts = [self.paren(self(first)) if isinstance(first, n.Optimize) else self.at(first, ADD)]
        for op, member in zip(node.ops, node.members[1:]):
            parts.append(f" {self.spelled(spellings.RELATIONS, op, op)} ")
            parts.append(self.at(member, ADD))
        return Piece("".join(parts), REL)

    def _print_Draw(self, node: n.Draw) -> Piece:
        drawn = ", ".join(self.at(v, ATOM) for v in node.vars)
        drawn = drawn if len(node.vars) == 1 else self.bracket(drawn, "(", ")")
        return Piece(f"{drawn}{self.sample_sep}{self.at(node.dist, ADD)}", REL)

    where_word = " where "

    def _print_Where(self, node: n.Where) -> Piece:
        defs = ", ".join(self.statement(d) for d in node.defs)
        return Piece(f"{self.statement(node.body)}{self.where_word}{defs}", REL)

    such_that_word = " s.t. "

    def _print_SuchThat(self, node: n.SuchThat) -> Piece:
        conditions = ", ".join(self.statement(d) for d in node.conditions)
        return Piece(f"{self.statement(node.body)}{self.such_that_word}{conditions}", REL)

    def optimize_head(self, node: n.Optimize) -> str:
        over = ", ".join(self.at(o, ADD) for o in node.over)
        return f"{self.optimize_op(node.sense)}_{{{over}}} "

    def _print_Optimize(self, node: n.Optimize) -> Piece:
        return Piece(f"{self.optimize_head(node)}{self.body(node.body)}", MUL, True)

    # --- arithmetic ----------------------------------------------------------------------------------
    def _print_Add(self, node: n.Add) -> Piece:
        out = []
        terms = node.terms
        for i, term in enumerate(terms):
            rest = terms[i + 1:]
            closed = bool(rest) and self._swallows(term, rest)
            if isinstance(term, n.Neg) and i > 0:
                body = self.paren(self(term.arg)) if isinstance(term.arg, n.Neg) else self.at(term.arg, MUL, closed)
                out.append(" - " + body)
            elif i == 0 and isinstance(term, (n.Optimize, n.ArgOpt)) and rest:  # a leading \min_G takes later terms
                out.append(self.paren(self(term)))
            else:
                text = self.at(term, ADD + 1, closed)
                out.append(text if i == 0 else " + " + text)
        last = self.piece(terms[-1]) if terms else None
        return Piece("".join(out), ADD, bool(last and last.open_right))

    def _swallows(self, term: n.Expr, rest) -> bool:
        """A sum or product written without brackets takes the later terms that use its index."""
        inner = term.arg if isinstance(term, n.Neg) else term
        while isinstance(inner, n.Mul) and inner.factors:
            inner = inner.factors[-1]
        if isinstance(inner, (n.Sum, n.Prod)):
            return any(_uses_name(r, inner.index.name) for r in rest)
        return False

    def _print_Neg(self, node: n.Neg) -> Piece:
        # the grammar's unary minus takes a whole product: `-a b` is -(a b), and `(-a) b` needs its brackets
        arg = self.piece(node.arg)
        text = self.paren(arg.text) if arg.prec < MUL or isinstance(node.arg, n.Neg) else arg.text
        return Piece("-" + text, NEG, arg.open_right and text == arg.text)

    def _print_Mul(self, node: n.Mul) -> Piece:
        texts = []
        for i, f in enumerate(node.factors):
            last = i == len(node.factors) - 1
            p = self.piece(f)
            # `a / b * c` is (a/b) c, so only a leading quotient goes bare.
            need = (p.prec < MUL or isinstance(f, n.Mul) or (not last and p.open_right)
                    or (isinstance(f, n.Div) and self.div_is_binary and i > 0))
            texts.append(self.paren(p.text) if need else p.text)
        out = texts[0]
        for t in texts[1:]:
            out += self.mul_sep(out, t) + t
        return Piece(out, MUL, self.piece(node.factors[-1]).open_right if node.factors else False)

    div_is_binary = True

    def mul_sep(self, left: str, right: str) -> str:
        return self.times

    def _print_Div(self, node: n.Div) -> Piece:
        # left-associative: `a * b / c` is (a b)/c and `a / b / c` is (a/b)/c
        num = self.at(node.num, MUL, closed=True)
        den = self.at(node.den, PREFIX, closed=True)
        return Piece(f"{num}/{den}", MUL)

    def _print_Pow(self, node: n.Pow) -> Piece:
        inner = self.piece(node.base)  # `exp(a)^2`, `E_q[f]^2`: the script applies to the bracketed call
        base = inner.text if inner.prec == PREFIX and not inner.open_right else self.at(node.base, ATOM)
        if n.superscript_is_label(node.base, node.exp):  # `x^q` would name a variable: `(x)^q` is the power
            base = self.paren(base)
        return Piece(f"{base}^{self.superscript(self.at(node.exp, ADD))}", POW)

    def superscript(self, text: str) -> str:
        return text if len(text) == 1 and text.isalnum() else self.script(text)

    @staticmethod
    def script(text: str) -> str:
        """A braced superscript; `^{(` would read as a sample index `z^{(l)}`, so that gets an inner group."""
        return f"{{{{{text}}}}}" if text.startswith("(") else f"{{{text}}}"

    def _print_Num(self, node: n.Num) -> Piece:
        return Piece(format_number(node.value), ATOM)

    # --- names -----------------------------------------------------------------------------------------
    def name(self, name: str) -> str:
        return name

    def index_item(self, item) -> str:
        if isinstance(item, n.Range):
            return f"{self.at(item.lo, ADD)}:{self.at(item.hi, ADD)}"
        if isinstance(item, n.Before):
            return f"{self.le if item.inclusive else '<'}{self.at(item.bound, ADD)}"
        if isinstance(item, n.After):
            return f"{self.ge if item.inclusive else '>'}{self.at(item.bound, ADD)}"
        return self.at(item, ADD)

    le, ge = "<=", ">="

    def subscript(self, text: str) -> str:
        return f"_{text}" if len(text) == 1 and text.isalnum() else f"_{{{text}}}"

    def plain(self, name: str, call: bool = False, sub=None) -> str:
        """`name` as this printer writes a name, escaped as `\\mathit{..}` where it would read as a keyword
        (`E`, `log`, a call `H(x)`, `KL(a, b)`, `D_{KL}(a, b)`, `sigma(a)`)."""
        if "_" in name:  # `\text{one\_hot}`: a name with an underscore is written as text
            return f"\\text{{{name.replace('_', chr(92) + '_')}}}"
        if name in ("and", "where", "with"):  # `\mathrm{and}` would read as `\text{and}`, a separator
            return f"\\mathit{{{name}}}"
        value_words, call_words = spellings.reserved_names()
        clash = name in (call_words if call else value_words) or (
            call and name == "D" and sub is not None and spellings.DIVERGENCES.lookup(sub.upper()) is not None)
        return f"\\mathit{{{name}}}" if clash else self.name(name)

    def _print_Var(self, node: n.Var) -> Piece:
        text = self.plain(node.name)
        if node.mark:
            text = f"{self.spelled(spellings.DECORATIONS, node.mark, node.mark)}{{{text}}}"
        text += "'" * node.primes
        if node.label == "*":  # `G^*`
            text += "^*"
        elif node.label is not None:
            text += "^" + self.superscript(self.plain(node.label))
        if node.index:
            items = ",".join(self.index_item(i) for i in node.index)
            text += self.subscript(items.replace(" - ", "-").replace(" + ", "+"))
        return Piece(text, ATOM)

    def dist_name(self, name: str, sub, call: bool = True, mark=None) -> str:
        text = self.plain(name, call, sub)
        if mark:
            text = f"{self.spelled(spellings.DECORATIONS, mark, mark)}{{{text}}}"
        if sub is not None:  # braced after an escaped name: `\\mathit{E}_k(` would read as E's sampler `{E}_k(`
            sub_text = ",".join(self.sub_part(part) for part in sub.split(","))
            text += f"_{{{sub_text}}}" if text.startswith("\\mathit") else self.subscript(sub_text)
        return text

    def sub_part(self, part: str) -> str:
        """One item of a name's subscript: `phi`, `data`, or a nested `theta_x` (`p_{\\theta_x}`)."""
        if "_" not in part:
            return self.name(part)
        head, _, tail = part.partition("_")
        # a word as written (`\\theta_{old}`): `\\mathrm{old}` would nest the braces deeper than a call's look-ahead reads
        tail_text = self.name(tail) if len(tail) == 1 or tail in GREEK else tail
        return self.name(head) + "_" + (tail_text if len(tail) == 1 else f"{{{tail_text}}}")

    def name_label(self, label: str) -> str:
        """A called name's superscript label: `^*`, `^A`."""
        return "^" + (label if len(label) == 1 else self.script(label))

    def signature(self, vars_, given, params) -> str:
        text = self.args(vars_)
        if given:
            text += self.mid + self.args(given)
        if params:
            text += "; " + self.args(params)
        return text

    def _print_Dist(self, node: n.Dist) -> Piece:
        bare = not (node.vars or node.given or node.params)
        plain_sub = node.sub if node.label is None and not node.script else None
        head = self.dist_name(node.name, plain_sub, call=not bare, mark=node.mark)
        if node.label is not None:  # `f^*(t)`, `\mathcal{L}^A(x)`, `\eta^q_\phi(h)`: the label before the subscript
            head += self.name_label(node.label)
        if node.script:  # `\mathbb{P}_{\hat x}`, `\mathcal{L}_{JMkl(\alpha)}`: the subscript's nodes
            head += "_{" + ",".join(self.index_item(i) for i in node.script) + "}"
        elif node.sub is not None and plain_sub is None:
            head += "_{" + ",".join(self.sub_part(part) for part in node.sub.split(",")) + "}"
        if bare:
            return Piece(head, ATOM)
        return Piece(f"{head}({self.signature(node.vars, node.given, node.params)})", ATOM)

    # --- probabilistic operators ----------------------------------------------------------------------
    def sampler(self, s: n.Sampler) -> str:
        # `\mathbb{E}_{-j}` (all factors but j, Blei et al.'s CAVI) is a negated name
        dists = " ".join("-" + self.at(d.arg, ATOM) if isinstance(d, n.Neg) else self.at(d, ATOM) for d in s.dists)
        if not s.draws:
            return dists
        draws = ", ".join(self.draw(d) for d in s.draws)
        if not s.dists:  # a bare variable: `E_{t, x_0}`, `E_{\hat x}`
            return draws
        if len(s.draws) > 1 and not any(len(d.index) == 1 and isinstance(d.index[0], n.Range) for d in s.draws):
            draws = self.bracket(draws, "(", ")")  # `(x, y) ~ p`
        return f"{draws}{self.sample_sep}{dists}"

    def draw(self, v: n.Var) -> str:
        """`z_{1:K}` is written as the paper's sampling set `z_1,...,z_K`."""
        if len(v.index) == 1 and isinstance(v.index[0], n.Range):
            base = v.base
            lo = self(replace(base, index=(v.index[0].lo,)))
            hi = self(replace(base, index=(v.index[0].hi,)))
            return f"{lo},{self.ldots},{hi}"
        return self(v)

    def _print_Sampler(self, node: n.Sampler) -> Piece:
        return Piece(self.sampler(node), ATOM)

    def _print_Expect(self, node: n.Expect) -> Piece:
        head = self.expect
        samplers, body = joined_samplers(node)
        if samplers:
            head += f"_{{{', '.join(self.sampler(s) for s in samplers)}}}"
        inner = node
        for _ in samplers[1:]:
            inner = inner.body
        params = f"; {self.args(inner.params)}" if inner.params else ""  # `\mathbb{E}[f; m_k, s_k^2]`
        return Piece(head + self.bracket(self(body) + params, "[", "]"), PREFIX)

    def bracket(self, text: str, left: str, right: str) -> str:
        return f"{left}{text}{right}"

    def _print_LogDensity(self, node: n.LogDensity) -> Piece:
        return Piece(f"{self.function('log')} {self.at(node.dist, ATOM)}", MUL, True)

    def _print_Divergence(self, node: n.Divergence) -> Piece:
        head = self.divergence_head(node.kind) if node.sub is None else self.divergence_sub_head(node.kind, node.sub)
        if node.function_class is not None:  # `\mathrm{MMD}[\mathcal{F}, p, q]`
            return Piece(head + self.bracket(self.args((node.function_class, node.left, node.right)), "[", "]"), ATOM)
        inner = f"{self.at(node.left, ADD)}{self.parallel}{self.at(node.right, ADD)}"
        return Piece(head + self.bracket(inner, "(", ")"), ATOM)

    def divergence_sub_head(self, kind: str, sub: str) -> str:
        """`MMD_{imq}`, `W_1`: the kind's own name with the subscript (never `D_{..}`, whose subscript is a kind)."""
        return self.name(kind) + self.subscript(",".join(self.name(part) for part in sub.split(",")))

    def divergence_head(self, kind: str) -> str:
        return self.spelled(spellings.DIVERGENCES, kind, kind)

    def _print_Entropy(self, node: n.Entropy) -> Piece:
        return Piece(self.entropy + self.bracket(self.at(node.dist, ADD), "[", "]"), ATOM)

    entropy = "H"

    def _print_Sum(self, node, op="sum") -> Piece:
        index = self(node.index)
        chain = [node]  # `\sum_{\ell, j}`, `\sum_{i, j=1}^{m, n}`: one subscript for the joined sums
        while isinstance(chain[-1].body, type(node)) and chain[-1].body.joined and node.where is None and all(
                getattr(chain[-1].body, f) == getattr(node, f) for f in ("lower", "within", "where")):
            chain.append(chain[-1].body)
        uppers = [s.upper for s in chain]
        same = all(u == uppers[0] for u in uppers)
        if len(chain) > 1 and (same or all(u is not None for u in uppers)):
            index = ", ".join(self(s.index) for s in chain)
            node = replace(chain[-1], lower=node.lower, within=node.within)
            upper_text = (None if uppers[0] is None else self.at(uppers[0], ADD)) if same else ", ".join(
                self.at(u, ADD) for u in uppers)
        else:
            upper_text = None if node.upper is None else self.at(node.upper, ADD)
        if node.where is not None:
            sub = self(node.where)
        elif node.within is not None:
            sub = f"{index} \\in {self.at(node.within, ADD)}"
        elif node.lower is not None:
            sub = f"{index}={self.at(node.lower, ADD)}"
        else:
            sub = index
        head = f"{self.big(op)}_{{{sub}}}"
        if upper_text is not None:
            head += f"^{self.script(upper_text)}"
        return Piece(f"{head} {self.body(node.body)}", MUL, True)

    def body(self, node: n.Expr) -> str:
        """What a prefix operator (sum, min, nabla) takes: a product, bracketed if it is more."""
        body = self.piece(node)
        # a placeholder first would multiply what comes before it (`\sum_{i} \cdot` reads `\cdot` as a product)
        closed = body.prec >= MUL and not body.text.startswith(self.placeholder)
        return body.text if closed else self.bracket(body.text, "(", ")")

    def _print_Prod(self, node: n.Prod) -> Piece:
        return self._print_Sum(node, "prod")

    def big(self, op: str) -> str:
        return op

    def _print_Family(self, node: n.Family) -> Piece:
        head = self.family_head(node.family)
        if node.family == "UniformDiscrete" and not node.vars and len(node.args) == 2:  # `\mathcal{U}\{1, ..., T\}`
            lo, hi = (self.at(a, ADD) for a in node.args)
            return Piece(f"{head}\\{{{lo}, {self.ldots}, {hi}\\}}", ATOM)
        text = self.args(node.args)
        if node.vars:
            text = self.args(node.vars) + (self.mid + text if node.args else "")
        return Piece(f"{head}({text})", ATOM)

    def family_head(self, family: str) -> str:
        return self.spelled(spellings.FAMILIES, family, f"\\mathrm{{{family}}}")

    # --- elementwise math and calculus ----------------------------------------------------------------
    def _print_Apply(self, node: n.Apply) -> Piece:
        fn = node.fn
        if fn == "transpose":
            return Piece(f"{self.at(node.args[0], ATOM)}^\\top", POW)
        if fn == "abs" and len(node.args) == 1:
            return self.abs_(self.at(node.args[0], ADD))
        if fn == "sqrt" and len(node.args) == 1:
            return Piece(self.sqrt(self.at(node.args[0], ADD)), PREFIX)
        # a function name takes the product after it: `log 1/K sum_k ...` as the IWAE paper writes it
        if fn == "log" and len(node.args) == 1 and not isinstance(node.args[0], (n.Dist, n.Family)):
            arg = self.piece(node.args[0])
            if arg.prec >= MUL and not arg.text.startswith(("(", "\\left(", "-")):
                return Piece(f"{self.function(fn)} {arg.text}", MUL, True)
        return Piece(self.function(fn) + self.call_bracket(fn, self.args(node.args)), PREFIX)

    def call_bracket(self, fn: str, text: str) -> str:
        return self.bracket(text, "(", ")")

    def function(self, fn: str) -> str:
        return self.spelled(spellings.FUNCTIONS, fn, fn)

    def abs_(self, text: str) -> Piece:
        return Piece(f"abs({text})", PREFIX)

    def sqrt(self, text: str) -> str:
        return f"sqrt({text})"

    def _print_Norm(self, node: n.Norm) -> Piece:
        text = self.bracket(self.at(node.arg, ADD), "\\|", "\\|")
        if node.ord is not None:
            text += self.subscript(self.at(node.ord, ADD))
        return Piece(text, ATOM)

    def _print_StopGrad(self, node: n.StopGrad) -> Piece:
        return Piece(self.function("sg") + self.bracket(self.at(node.arg, ADD), "[", "]"), PREFIX)

    def _print_Grad(self, node: n.Grad) -> Piece:
        wrt = ", ".join(self.at(w, ADD) for w in node.wrt)
        return Piece(f"\\nabla_{{{wrt}}} {self.body(node.arg)}", MUL, True)

    def _print_Partial(self, node: n.Partial) -> Piece:
        return Piece(f"\\frac{{\\partial {self.at(node.num, POW)}}}{{\\partial {self.at(node.wrt, POW)}}}", ATOM)

    def _print_Integral(self, node: n.Integral) -> Piece:
        head = self.integral
        if node.upper is not None:
            lower = self.at(node.lower, ADD) if node.lower is not None else ""
            head += f"_{{{lower}}}^{self.script(self.at(node.upper, ADD))}"
        elif node.over is not None:
            head += f"_{{{self(node.over)}}}"
        body = self.body(node.body)
        if node.wrt:
            diffs = " ".join(self.differential(v) for v in node.wrt)
            sep = self.differential_sep if self.always_separate or body.startswith(("(", "\\left(")) else " "
            return Piece(f"{head} {diffs}{sep}{body}", MUL, True)
        return Piece(f"{head} {body}", MUL, True)

    integral = "\\int"
    differential_sep = "\\, "  # `dx\, (a + b)`, not the call `dx(a + b)`
    always_separate = False

    def differential(self, v: n.Var) -> str:
        """`dx`, `d xi`, `d x_0`: one letter joins the `d`, a longer name stays apart (`d xi` is not `dxi`)."""
        text = self(v)
        return ("d" + text) if len(v.name) == 1 and not v.primes else f"d {text}"

    def _print_ArgOpt(self, node: n.ArgOpt) -> Piece:
        over = ", ".join(self.at(o, ADD) for o in node.over)
        return Piece(f"{self.arg_op(node.sense)}_{{{over}}} {self.body(node.body)}", MUL, True)

    def arg_op(self, sense: str) -> str:
        return f"\\arg\\{sense}"

    def _print_ArgTuple(self, node: n.ArgTuple) -> Piece:
        return Piece(self.bracket(self.args(node.items), "(", ")"), ATOM)

    def _print_Concat(self, node: n.Concat) -> Piece:
        return Piece(self.bracket(self.args(node.items), "[", "]"), ATOM)

    placeholder = "\\cdot"

    def _print_Placeholder(self, node: n.Placeholder) -> Piece:
        return Piece(self.placeholder, ATOM)

    def _print_Text(self, node: n.Text) -> Piece:
        return Piece(f"\\text{{{node.words}}}", ATOM)

    def _print_Derivative(self, node: n.Derivative) -> Piece:
        return Piece(f"\\partial{self.subscript(self.at(node.index, ADD))} {self.body(node.arg)}", MUL, True)

    def _print_Labeled(self, node: n.Labeled) -> Piece:
        return Piece(f"\\underbrace{{{self.at(node.body, ADD)}}}_{{{self.at(node.label, ADD)}}}", ATOM)

    def optimize_op(self, sense: str) -> str:
        return f"\\{sense}"


def _printed_kind(s: n.Sampler) -> str:
    """How a sampler reads in a subscript list: `bare` (a variable), `sim` (draws ~ dists), `name` (a lone name
    such as `q`, which a list reads as a variable) or `dists`."""
    if not s.dists:
        return "bare"
    if s.draws:
        return "sim"
    first = s.dists[0]
    if len(s.dists) == 1 and (isinstance(first, n.Var) or (
            isinstance(first, n.Dist) and not (first.vars or first.given or first.params))):
        return "name"
    return "dists"


def joined_samplers(node: n.Expect):
    """The samplers an expectation writes in its one subscript (its own, then those of the `joined` expectations
    inside it) and the body left inside the brackets. A list must read back the same: a bare variable right before
    a `~` item would be read as one of its draws, and a lone name in a list as a variable, so those stay nested."""
    if node.over is None:
        return [], node.body
    samplers, body = [node.over], node.body
    while isinstance(body, n.Expect) and body.joined and body.over is not None:
        kinds = [_printed_kind(s) for s in samplers + [body.over]]
        if "name" in kinds or any(a == "bare" and b == "sim" for a, b in zip(kinds, kinds[1:])):
            break
        samplers.append(body.over)
        body = body.body
    return samplers, body


class AsciiPrinter(_Printer):
    """The plain spelling of docs/language.md §1: `E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || p(z))`."""


class LatexPrinter(_Printer):
    """What a paper prints: `\\mathbb{E}_{q(z \\mid x)}\\left[\\log p(x \\mid z)\\right]`, `\\frac{a}{b}`, `\\beta`."""

    mid = " \\mid "
    parallel = " \\,\\|\\, "
    ldots = "\\ldots"
    expect = "\\mathbb{E}"
    sample_sep = " \\sim "
    entropy = "\\mathcal{H}"
    le, ge = "\\le ", "\\geq "
    spelling = "latex"
    div_is_binary = False
    where_word = " \\quad \\text{where} \\quad "
    such_that_word = " \\quad \\text{s.t.} \\quad "

    def paren(self, text: str) -> str:
        return f"\\left({text}\\right)"

    def bracket(self, text: str, left: str, right: str) -> str:
        return f"\\left{left}{text}\\right{right}"

    def name(self, name: str) -> str:
        if name in GREEK or name == "infty":
            return "\\" + name
        if len(name) > 1:
            return f"\\mathrm{{{name}}}"
        return name

    def mul_sep(self, left: str, right: str) -> str:
        if right[:1].isdigit() or right[:1] in "(.[-" or right.startswith(("\\left", "\\cdot")):
            return " \\cdot "
        return " "

    def _print_Div(self, node: n.Div) -> Piece:
        return Piece(f"\\frac{{{self.at(node.num, ADD)}}}{{{self.at(node.den, ADD)}}}", ATOM)

    def divergence_head(self, kind: str) -> str:
        # an unregistered kind: D_{\mathrm{kind}}, unless \mathrm{kind} is a keyword (`\mathrm{E}` is E)
        default = self.plain(kind, True) if kind in spellings.reserved_names()[0] else f"D_{{\\mathrm{{{kind}}}}}"
        return self.spelled(spellings.DIVERGENCES, kind, default)

    def superscript(self, text: str) -> str:
        return self.script(text)

    def function(self, fn: str) -> str:
        return self.spelled(spellings.FUNCTIONS, fn, f"\\operatorname{{{fn}}}")

    def abs_(self, text: str) -> Piece:
        return Piece(f"\\left|{text}\\right|", ATOM)

    def call_bracket(self, fn: str, text: str) -> str:
        # a call-only command (`\sigma`) is the function only right before `(`: keep the bracket plain
        row = spellings.FUNCTIONS.get(fn)
        call_only = row is not None and row.latex.lstrip("\\") in row.call_commands
        return f"({text})" if call_only else self.bracket(text, "(", ")")

    def sqrt(self, text: str) -> str:
        return f"\\sqrt{{{text}}}"

    def big(self, op: str) -> str:
        return "\\" + op

    def differential(self, v: n.Var) -> str:
        return "\\mathrm{d}" + self(v)

    always_separate = True  # `\int \mathrm{d}x \, q(z \mid x) p(x)`


def depth_guarded(fn: Callable) -> Callable:
    """`fn`, with a RecursionError (a hand-built tree deeper than `nodes.MAX_TREE_DEPTH`, or a caller already
    deep in its own stack) raised as a FormulaError instead of a crash."""

    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise FormulaError(f"the formula is nested too deeply to print or compare here (the language's limit "
                               f"is {n.MAX_TREE_DEPTH} levels)") from None

    return guarded


_ASCII = AsciiPrinter()
_LATEX = LatexPrinter()


@depth_guarded
def to_ascii(node: n.Node) -> str:
    """The plain-ASCII spelling of a `Program` or any `Expr`; `parse` reads it back to an equal tree."""
    return _ASCII.top(node)


@depth_guarded
def to_latex(node: n.Node) -> str:
    """The LaTeX a paper prints for a `Program` or any `Expr`; `parse` reads it back to an equal tree."""
    return _LATEX.top(node)


n.DISPLAY["latex"] = to_latex
