"""The AST: one frozen dataclass per concept of the objective language (docs/language.md).

Nodes are spelling-free: ASCII and LaTeX forms of the same formula build equal trees. Every node carries
the character span it came from (`span`), which takes no part in equality or hashing, so
`parse(ascii(t)) == t` compares meaning, not positions.

Conventions the parser, printers and checker share:

* A name followed by parentheses (`q(z|x)`, `D(x)`, `p_B(z_2|b_2)`) is a `Dist`; whether it is a density or a
  declared function is decided by the checker (docs/language.md §2 rule 5).
* A bare `Dist` in value position means its density value; `log` of a `Dist` is a `LogDensity`.
* Subtraction is `Add` with a `Neg` term; `a / b` and `\\frac{a}{b}` are both `Div`.
* `E_{z ~ q(z|x)}` and `E_{q(z|x)}` are the same `Expect`: `Sampler.draws` is kept only when it differs from
  the variables of the sampling distributions (`z_1,...,z_K ~ q(z|x)`).
* Cosmetic decorations (`\\mathbf`, `\\boldsymbol`, `\\vec`, `\\bm`, `\\mathcal`, `\\mathrm`) are dropped;
  meaningful ones (`\\tilde`, `\\hat`, `\\bar`, primes) stay on the `Var`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Iterator, Optional, Tuple, Union


#: The deepest tree the language has (unary chains, powers, nested `\\log` ...). The parser refuses deeper texts,
#: and the printers, sympy and the compiler, which recurse once per level, can rely on it: every tree that
#: parses prints, compares and compiles. Brackets nest at most as deep (parser.MAX_NESTING).
MAX_TREE_DEPTH = 100


@dataclass(frozen=True)
class Span:
    """Half-open character range `[start, end)` into the formula text."""

    start: int
    end: int


@dataclass(frozen=True)
class Node:
    """Base of every AST node; `span` is where it was written (None for built nodes)."""

    span: Optional[Span] = field(default=None, compare=False, repr=False, kw_only=True)

    def children(self) -> Iterator["Node"]:
        """The direct sub-nodes, in field order (tuples are flattened)."""
        for f in fields(self):
            if f.name == "span":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple):
                for item in value:
                    if isinstance(item, Node):
                        yield item

    def _repr_latex_(self) -> str:
        """Notebooks render a parsed formula as the paper prints it (the text stage registers the printer)."""
        printer = DISPLAY.get("latex")
        return f"${printer(self)}$" if printer is not None else repr(self)

    def walk(self) -> Iterator["Node"]:
        """This node and all its descendants, pre-order (iterative: deep trees must not recurse)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(list(node.children())))


#: Printers for notebook display, filled by `formula.text.printing` (the AST does not import the text stage).
DISPLAY: dict = {}


class Expr(Node):
    """Marker base for everything that has a value."""


# --- names and indices ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range(Node):
    """An index range `1:T` (also written `1,\\ldots,T` in a sampling set)."""

    lo: "Expr"
    hi: "Expr"


@dataclass(frozen=True)
class Before(Node):
    """A prefix index: `<t` (strict) or `\\le t` (inclusive)."""

    bound: "Expr"
    inclusive: bool = False


@dataclass(frozen=True)
class After(Node):
    """A suffix index: `>t` (strict: t+1..T) or `\\geq t` (inclusive: t..T), T the sequence's last step."""

    bound: "Expr"
    inclusive: bool = False


Index = Union["Expr", Range, Before, After]
SLICES = (Range, Before, After)  # the index items that make a slice of a sequence


@dataclass(frozen=True)
class Var(Expr):
    """A variable or scalar symbol: `x`, `z_t`, `z_{t-1}`, `x_{1:T}`, `z'`, `\\tilde{x}`, `\\beta`.

    `name` is the base name (Greek letters spelled out: `beta`); `index` the subscript items (a sample
    superscript `z^{(l)}` is the index `l`; a per-example `x^{(i)}` is dropped); `mark` is `tilde`, `hat`
    or `bar`; `primes` counts `'`; `label` a superscript label that is part of the name (`h^e`, `x^{enc}`:
    see `superscript_is_label`).
    """

    name: str
    index: Tuple[Index, ...] = ()
    mark: Optional[str] = None
    primes: int = 0
    label: Optional[str] = None

    @property
    def base(self) -> "Var":
        """The variable without its index (what resolution by position compares, docs/language.md §2 rule 4)."""
        return Var(self.name, (), self.mark, self.primes, self.label)


#: Greek names: a superscript on them is a power (`\\gamma^t`, `\\sigma^2`).
_GREEK = frozenset(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon phi chi psi "
    "omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split())


def superscript_is_label(base: "Expr", exp: "Expr") -> bool:
    """Whether `base^exp` names a variable (`h^e`, `x^q`, `x^{enc}`) rather than a power: a Latin-letter variable
    without a label, raised to a bare Latin name that is not `T` (a transpose in some papers) and not on `e`
    (Euler's number). `(x)^n` is always a power. The parser and the printers share this rule."""
    return (isinstance(base, Var) and base.label is None and base.name not in _GREEK and base.name != "e"
            and isinstance(exp, Var) and not exp.index and exp.mark is None and not exp.primes
            and exp.label is None and exp.name not in _GREEK and exp.name != "T" and exp.name.isalpha())


def substitute(node: "Node", old: "Var", new: "Expr") -> "Node":
    """`node` with the variable `old` replaced by `new` everywhere, indices included (`\\bar\\alpha_t` at t = 1 is
    `\\bar\\alpha_1`); a sum or product binding a variable of the same name keeps its own in its body."""
    if node == old:
        return new
    if isinstance(node, (Sum, Prod)) and node.index.name == old.name and not old.index:
        return node
    changes = {}
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, Node):
            changes[f.name] = substitute(value, old, new)
        elif isinstance(value, tuple) and any(isinstance(x, Node) for x in value):
            changes[f.name] = tuple(substitute(x, old, new) if isinstance(x, Node) else x for x in value)
    return replace(node, **changes) if changes else node


@dataclass(frozen=True)
class Num(Expr):
    """A numeric literal (always non-negative; `-2` is `Neg(Num(2))`)."""

    value: float


# --- distributions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist(Expr):
    """`name_sub(vars | given ; params)`: a distribution, its density value, or a declared function call.

    `sub` is the subscript of the name as written (`phi` in `q_\\phi`, `B` in `p_B`, `data` in `p_{data}`);
    the checker decides whether it is a parameter subscript or part of the name. `vars` is empty for a bare
    reference (`\\mathbb{E}_q[f]`). Arguments are usually `Var`s but may be any expression (`D(G(z))`).
    `script` keeps the subscript's items when they are more than names and numbers (`\\hat x` in
    `\\mathbb{P}_{\\hat x}`, a call in `\\mathcal{L}_{JMkl(\\alpha)}`), so the printers write them back; `sub` is then
    their ASCII key. `label` is a superscript that is part of the name: `*` in `f^*(t)` (a convex conjugate),
    `q_j^*(z_j)`, `A` in `\\mathcal{L}^A(\\theta; x)`.
    `mark` is a decoration of the name (`bar` in `\\bar q(z)`, `tilde` in `\\tilde p_l(x, y)`): a decorated name
    is a name of its own, never the undecorated one.
    """

    name: str
    vars: Tuple[Expr, ...] = ()
    given: Tuple[Expr, ...] = ()
    sub: Optional[str] = None
    params: Tuple[Expr, ...] = ()
    mark: Optional[str] = None
    label: Optional[str] = None
    script: Tuple[Expr, ...] = ()

    @property
    def full_name(self) -> str:
        """The name with its decoration, label and subscript, as a declaration is named: `q`, `p_B`, `p_prior`,
        `q_phi`, `\\bar{q}`, `\\tilde{p}_l`, `f^*`."""
        name = f"\\{self.mark}{{{self.name}}}" if self.mark else self.name
        name = f"{name}^{self.label}" if self.label else name
        return f"{name}_{self.sub}" if self.sub else name


@dataclass(frozen=True)
class Family(Expr):
    """An explicit family: `\\mathcal{N}(x \\mid \\mu, \\sigma^2 I)`, `\\mathcal{N}(0, I)`, `\\mathrm{Bern}(x|\\lambda)`.

    `family` is canonical (`Normal`, `Bernoulli`, `Categorical`, `Laplace`, ...); `vars` what it is over
    (empty when not written), `args` its parameters in the order written.
    """

    family: str
    vars: Tuple[Expr, ...] = ()
    args: Tuple[Expr, ...] = ()


DistLike = Union[Dist, Family]


@dataclass(frozen=True)
class Sampler(Node):
    """What an expectation samples from: a product of distributions (sampled right to left) and, when written
    differently from their variables, the draws (`z_1,...,z_K ~ q(z|x)` gives `draws=(z_{1:K},)`)."""

    dists: Tuple[Expr, ...]
    draws: Tuple[Var, ...] = ()


# --- probabilistic operators ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogDensity(Expr):
    """`log p(x|z)`: the log-density of a distribution."""

    dist: Expr


@dataclass(frozen=True)
class Expect(Expr):
    """`E_{sampler}[body]`; `over` is None for `\\mathbb{E}[f]` (resolved by the checker).

    Several items in one subscript, `\\mathbb{E}_{t, z \\sim q(z|x), \\epsilon}[f]`, are nested expectations, the
    left item outermost (sampled first); the inner ones have `joined=True`, so the printers write them back as
    one subscript. `params` are written after `;` in the bracket, `\\mathbb{E}[\\log p(\\mu_k); m_k, s_k^2]` (Blei et
    al.'s CAVI): parsed and printed, a check error. A bare variable item (`t`, `\\hat x`, `z'`) is `Sampler(dists=(), draws=(Var,))`.
    """

    over: Optional[Sampler]
    body: Expr
    joined: bool = False
    params: Tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Divergence(Expr):
    """`KL(a || b)`, `D_{JS}[a \\| b]`, `\\text{MMD}(a, b)`: `kind` is the canonical upper-case name; `sub` the
    subscript written after it (`imq` in `\\mathrm{MMD}_{imq}(a || b)`, `1` in `W_1(p, q)`; in `D_{KL}` the
    subscript is the kind and `sub` is None). `function_class` is the class a supremum runs over when written,
    `\\mathcal{F}` in Gretton et al.'s `\\mathrm{MMD}[\\mathcal{F}, p, q]`."""

    kind: str
    left: Expr
    right: Expr
    sub: Optional[str] = None
    function_class: Optional[Expr] = None


@dataclass(frozen=True)
class Entropy(Expr):
    """`H[q(z|x)]`, `\\mathcal{H}(q)`."""

    dist: Expr


@dataclass(frozen=True)
class Sum(Expr):
    """`\\sum_{t=1}^{T} body`, `\\sum_y body` (over a discrete support), `\\sum_{i \\neq j}`, `\\sum_{x_i \\in X}`.

    `lower`/`upper` are the bounds when written; `within` the set of `\\in X`; `where` a condition such as
    `i \\neq j` (a `Relation`). `\\sum_{\\ell, j}` and `\\sum_{i, j=1}^{n}` are nested sums sharing the bounds, the
    inner ones `joined=True` (the printers write them back as one subscript).
    """

    index: Var
    body: Expr
    lower: Optional[Expr] = None
    upper: Optional[Expr] = None
    within: Optional[Expr] = None
    where: Optional[Expr] = None
    joined: bool = False


@dataclass(frozen=True)
class Prod(Expr):
    """`\\prod_{t=1}^{T} body`: same fields as `Sum` (papers use it in factorisations)."""

    index: Var
    body: Expr
    lower: Optional[Expr] = None
    upper: Optional[Expr] = None
    within: Optional[Expr] = None
    where: Optional[Expr] = None
    joined: bool = False


# --- arithmetic and elementwise math --------------------------------------------------------------------


@dataclass(frozen=True)
class Add(Expr):
    """`a + b - c` is `Add((a, b, Neg(c)))`; a parenthesised sum inside stays a nested `Add`."""

    terms: Tuple[Expr, ...]


@dataclass(frozen=True)
class Neg(Expr):
    arg: Expr


@dataclass(frozen=True)
class Mul(Expr):
    """`a * b`, `a \\cdot b`, `a \\times b` and juxtaposition `a b` alike."""

    factors: Tuple[Expr, ...]


@dataclass(frozen=True)
class Div(Expr):
    """`a / b` and `\\frac{a}{b}`."""

    num: Expr
    den: Expr


@dataclass(frozen=True)
class Pow(Expr):
    base: Expr
    exp: Expr


@dataclass(frozen=True)
class Apply(Expr):
    """Elementwise and calculus functions with a fixed meaning: `fn` is a row of `spellings.FUNCTIONS`."""

    fn: str
    args: Tuple[Expr, ...]



@dataclass(frozen=True)
class Norm(Expr):
    """`\\|a\\|`, `\\|a\\|_2` (`ord` when written); `\\|a\\|^2` is `Pow(Norm(a), Num(2))`."""

    arg: Expr
    ord: Optional[Expr] = None


@dataclass(frozen=True)
class StopGrad(Expr):
    """`\\text{sg}[a]`, `sg(a)`: the value of `a` with no gradient through it."""

    arg: Expr


@dataclass(frozen=True)
class Grad(Expr):
    """`\\nabla_{x} f`: the gradient of `arg` with respect to `wrt`."""

    wrt: Tuple[Expr, ...]
    arg: Expr


@dataclass(frozen=True)
class Partial(Expr):
    """`\\frac{\\partial f(x)}{\\partial x}`: the Jacobian of `num` with respect to `wrt`."""

    num: Expr
    wrt: Expr


@dataclass(frozen=True)
class Derivative(Expr):
    """`\\partial_i \\psi_i(\\xi; \\theta)` (Hyvarinen 2005): the derivative of `arg` along coordinate `index` of its
    variable. It parses and prints; the compiler does not evaluate it (a check error names it)."""

    index: Expr
    arg: Expr


@dataclass(frozen=True)
class Labeled(Expr):
    """`\\underbrace{body}_{label}`: a term with a name for `.terms()` and the progress bar."""

    body: Expr
    label: Expr


@dataclass(frozen=True)
class Integral(Expr):
    """`\\int_{\\xi \\in \\mathbb{R}^n} p(\\xi) f(\\xi) d\\xi`, `\\int dx\\, p(x) f(x)`, `\\int_0^1 f(t) dt`: `wrt` are
    the differentials (`dx`, `d\\mathbf{x}^{(t)}`, `\\mathrm{d}z`) in the order written, `over` a variable or a relation
    written as the subscript (`\\mathbf{x}`, `\\xi \\in \\mathbb{R}^n`), `lower`/`upper` the bounds `\\int_a^b`.
    It parses and prints; the compiler does not evaluate it (a check error names it)."""

    body: Expr
    wrt: Tuple[Var, ...] = ()
    over: Optional[Expr] = None
    lower: Optional[Expr] = None
    upper: Optional[Expr] = None


@dataclass(frozen=True)
class ArgOpt(Expr):
    """`\\arg\\min_G \\max_D V(D, G)`, `\\operatorname*{arg\\,max}_i [g_i + \\log \\pi_i]`: the point where `body` is
    least (`sense` min) or greatest (max) over `over`. Written unbracketed at the start of a sum it covers the
    whole sum. It parses and prints; the compiler does not evaluate it (a check error names it)."""

    sense: str
    over: Tuple[Expr, ...]
    body: Expr


@dataclass(frozen=True)
class ArgTuple(Expr):
    """`(\\theta, \\phi)` written as one argument, as in `\\mathcal{L}(\\vec{x}; (\\theta, \\phi))`, or the drawn tuple
    of `(x, y) \\sim p`. It parses and prints; as a value it is a check error."""

    items: Tuple[Expr, ...]


@dataclass(frozen=True)
class Concat(Expr):
    """`[a, b]`: vectors joined along their last dimension, as DRAW writes an RNN's input
    `\\mathrm{RNN}^{enc}(h_{t-1}, [r_t, h^{dec}_{t-1}])`. It parses and prints; as a value it is a check error."""

    items: Tuple[Expr, ...]


@dataclass(frozen=True)
class Placeholder(Expr):
    """`\\cdot` where an argument goes: `p_E(\\cdot|\\mathbf{x})`, `\\sigma(\\cdot)`, `\\|\\cdot\\|_2` (a function left
    unapplied). It parses and prints; as a value it is a check error."""


@dataclass(frozen=True)
class Text(Expr):
    """Prose as a label: `\\text{Original critic loss}` under an `\\underbrace` (WGAN-GP eq. 3)."""

    words: str


# --- statements ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation(Expr):
    """A chain `a = b >= c =: L`: `ops[i]` relates `members[i]` and `members[i+1]`; ops are rows of `spellings.RELATIONS`.

    A factorisation (`p(x,z) = p(x|z) p(z)`) and a named objective (`L(x) = ...`) are relations too; the
    checker decides which member is the objective.
    """

    members: Tuple[Expr, ...]
    ops: Tuple[str, ...]


@dataclass(frozen=True)
class Draw(Expr):
    """`\\epsilon \\sim \\mathcal{U}[0, 1]`, `(x, y) \\sim \\tilde p_l`: the variables `vars` are drawn from `dist`.
    A statement of its own (like a factorisation line) or an item of a `Where` clause."""

    vars: Tuple[Expr, ...]
    dist: Expr


@dataclass(frozen=True)
class Where(Expr):
    """`body \\quad \\text{where} \\quad \\hat x = \\epsilon x + (1 - \\epsilon) \\tilde x, \\epsilon \\sim \\mathcal{U}[0, 1]`:
    a statement with side definitions; each of `defs` is a `Relation` (a definition, `=`) or a `Draw`."""

    body: Expr
    defs: Tuple[Expr, ...]


@dataclass(frozen=True)
class SuchThat(Expr):
    """`\\max_\\theta L(\\theta) \\quad \\text{s.t.} \\quad D_{KL}(q \\| p) \\leq \\epsilon`: a statement with side conditions
    (`Relation`s or `Draw`s, as a `Where`'s). It parses and prints; the compiler does not evaluate it (a check error
    names it)."""

    body: Expr
    conditions: Tuple[Expr, ...]


@dataclass(frozen=True)
class Optimize(Expr):
    """`\\min_G \\max_D V(D,G)`: `sense` is `min` or `max`; `over` the players whose parameters it moves."""

    sense: str
    over: Tuple[Expr, ...]
    body: Expr


@dataclass(frozen=True)
class Program(Node):
    """A whole text: statements in order (factorisations first, then the objective)."""

    statements: Tuple[Expr, ...]

    @property
    def objective(self) -> Expr:
        """The last statement, which by docs/language.md §2 holds the objective."""
        return self.statements[-1]


__all__ = [
    "MAX_TREE_DEPTH", "superscript_is_label", "substitute", "Span", "Node", "Expr", "Range", "Before", "After", "SLICES", "Index", "Var", "Num", "Dist", "Family", "DistLike", "Sampler",
    "LogDensity", "Expect", "Divergence", "Entropy", "Sum", "Prod", "Add", "Neg", "Mul", "Div", "Pow", "Apply",
    "Norm", "StopGrad", "Grad", "Partial", "Labeled", "Derivative", "Integral", "ArgOpt", "ArgTuple", "Concat", "Placeholder", "Text", "SuchThat", "Relation", "Draw", "Where", "Optimize", "Program",
]
