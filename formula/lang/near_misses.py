"""The fix for a near miss: what a syntax error says when the text around it shows what was meant (issue 13).

`hint(text, at, token, expected)` looks at the text before the offending token (`at`, its start) and at the token
(a terminal name, `$END` at the end) and returns the fix in words, or None: a list that ends with `,`
(`\\sum_{\\ell,}`, `z_{t,}`, `\\mathcal{L}(x,)`), empty braces (`\\arg\\max_{}`), a `_` or `\\sim` with nothing after
it, `\\arg\\min` without its subscript, a doubled star (`G^{**}`), a decoration without a name (`\\tilde(x)`), prose
outside an `\\underbrace` label, an `\\underbrace` without its label ... The parser keeps its caret; only the words
change. Each rule is one row of `RULES`: a new near miss is a row.
"""

from __future__ import annotations

import re
from typing import Callable, Collection, List, NamedTuple, Optional

__all__ = ["hint", "unclosed_hint", "RULES", "Rule"]

_CLOSERS = {"_RBRACE", "_RPAR", "_RSQB", "_RBRACE_ESC", "$END"}


class Rule(NamedTuple):
    """`before` is searched at the end of the text before the token; `tokens` the token types it applies to
    (empty: any); `expected` a terminal the parser must have wanted (None: any)."""

    before: "re.Pattern[str]"
    tokens: Collection[str]
    message: str
    expected: Optional[str] = None
    when: Optional[Callable[[str, str], bool]] = None  # (text before, token value) -> applies


def _underbrace_closed(before: str) -> bool:
    """Whether the `}` that `before` ends with closes an `\\underbrace{`."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        c = before[i]
        if c == "}" and (i == 0 or before[i - 1] != "\\"):
            depth += 1
        elif c == "{" and (i == 0 or before[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return bool(re.search(r"\\underbrace\s*$", before[:i]))
    return False


RULES: List[Rule] = [
    Rule(re.compile(r",\s*$"), _CLOSERS,
         "a list ends with an item, not ',': drop the ',' or write the next item, as in \\sum_{\\ell, j}, z_{t,k} "
         "or L(x, y)"),
    Rule(re.compile(r"(?:[{(\[]|\\\{)\s*$"), {"_COMMA"},
         "a list starts with an item: write the first one before the ',', as in \\sum_{\\ell, j}"),
    Rule(re.compile(r"[_^]\s*\{\s*$"), {"_RBRACE"},
         "empty braces: write the script inside them, as in \\arg\\max_{i}, \\partial_{i} or x_{t}"),
    Rule(re.compile(r"(?<!\\)_\s*$"), _CLOSERS | {"_COMMA"},
         "a '_' needs its subscript right after it, as in q_{\\phi_x}(z|x) or \\|a\\|_2"),
    Rule(re.compile(r"(?:\\sim|~|\u223c)\s*$"), (),
         "'\\sim' needs the distribution it draws from after it, as in z \\sim q(z|x) or (x, y) \\sim \\tilde p_l"),
    Rule(re.compile(r":\s*$"), _CLOSERS,
         "a range needs both ends, as in x_{1:T}"),
    Rule(re.compile(r"(?:\\arg\s*\\(?:min|max)|\\arg(?:min|max)|\\(?:operatorname\*?|mathrm|text)\s*\{\s*arg[^}]*\}"
                    r"|\barg\s*(?:min|max))\s*$"), (),
         "\\arg\\min and \\arg\\max need what they range over as a subscript, as in \\arg\\min_{G} V(G)",
         "_UNDERSCORE"),
    Rule(re.compile(r"\\(?:min|max|inf|sup|nabla)\s*$"), (),
         "\\min, \\max and \\nabla need what they range over as a subscript, as in \\min_{G} or \\nabla_{x}",
         "_UNDERSCORE"),
    Rule(re.compile(r"\^\s*\{?\s*\*?\s*$"), {"MULOP"},
         "a star superscript is one star, ^* or ^{*}, as in f^*(t) or G^*",
         when=lambda before, value: value.strip() == "*"),
    Rule(re.compile(r"\\(?:tilde|widetilde|hat|widehat|bar|overline|check|breve|dot|ddot)\s*$"), {"_LPAR", "_LSQB"},
         "a decoration takes the name it marks: write \\tilde{x}, or \\tilde{p}(x) for a decorated distribution"),
    Rule(re.compile(r""), {"PROSE"},
         "a \\text{..} sentence is only an \\underbrace label, as in \\underbrace{..}_{\\text{critic loss}}; a name is "
         "one word, as in \\text{ELBO}"),
    Rule(re.compile(r"\}\s*$"), (),
         "an \\underbrace needs its label as a subscript after it, as in \\underbrace{..}_{L_0} or "
         "\\underbrace{..}_{\\text{critic loss}}", "_UNDERSCORE",
         when=lambda before, value: _underbrace_closed(before)),
    Rule(re.compile(r"(?:\\(?:text|textrm|mathrm)\s*\{\s*(?:where|with)\s*\}|\bwhere)\s*$"), {"$END"},
         "\\text{where} needs the definitions it introduces after it, as in \\text{where} \\hat x = \\epsilon x"),
    Rule(re.compile(r"(?:\\(?:text|textrm|mathrm)\s*\{\s*(?:s\.\s*t\.|subject\s+to)\s*\}|\bs\.t\.)\s*$"), {"$END"},
         "\\text{s.t.} needs the conditions after it, as in \\max_\\theta L \\quad \\text{s.t.} \\quad D \\leq \\delta"),
    Rule(re.compile(r"(?:\\[lc]?dots|\.\.\.)\s*$"), {"SIM"},
         "'\\ldots' stands between two draws: write the last one before '\\sim', as in z_1, \\ldots, z_K \\sim q(z)"),
    Rule(re.compile(r""), {"SIM"},
         "one '\\sim' draws what is left of it from one distribution: write further draws after ',', as in "
         "z \\sim q, \\epsilon \\sim \\mathcal{N}(0, I)"),
    Rule(re.compile(r"(?:\\cdot|\\times|\*|/)\s*$"), {"$END"},
         "a product needs its second factor after the operator (a lone \\cdot where an argument goes is a "
         "placeholder, as in \\sigma(\\cdot))"),
]


def hint(text: str, at: int, token: str, value: str, expected: Collection[str]) -> Optional[str]:
    """The fix for the token of type `token` (value `value`) found at `at` in `text`, or None."""
    before = text[:at]
    for rule in RULES:
        if rule.tokens and token not in rule.tokens:
            continue
        if rule.expected is not None and rule.expected not in expected:
            continue
        if not rule.before.search(before):
            continue
        if rule.when is not None and not rule.when(before, value):
            continue
        return rule.message
    return None


_COMMAND_BEFORE = re.compile(r"(\\[A-Za-z]+|[_^])\s*$")

_UNCLOSED = {
    "\\underbrace": "close it with '}' and give it a label, as in \\underbrace{..}_{L_0}",
    "_": "close the subscript with '}', as in p_{\\theta_x}",
    "^": "close the superscript with '}', as in f^{*} or \\mathcal{L}^{A}",
}


def unclosed_hint(text: str, at: int, opener: str) -> Optional[str]:
    """What to do about the `{` opened at `at` and never closed, when a command or script right before it says
    what it belongs to (`\\underbrace{`, `_{`, `^{`, `\\tilde{`, `\\frac{`)."""
    if opener != "{":
        return None
    m = _COMMAND_BEFORE.search(text[:at])
    if m is None:
        return None
    command = m.group(1)
    return _UNCLOSED.get(command, f"close the '{{' of {command} with '}}'")
