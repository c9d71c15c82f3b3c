"""The progress bar's line: short names for the terms so that every one fits an 80-100 column terminal.

A term's printed name can be long (`E_{q_{phi}(z|x)}[log p_{theta}(x|z)]`); the bar shows a short form of it
(`E[log p]`, `β·KL(q‖p)`: subscripts and argument lists dropped) or its `\\underbrace` label (a prose label's
words, `Our gradient…`), and the full names
are kept where there is room: the run log's metadata, the history (`term/<full name>`) and one legend line
printed when a fit starts.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Mapping, Optional, Sequence

from .updates import EVAL, INPUT, LOSS, LR, OBJECTIVE, TERM

__all__ = ["BAR_FORMAT", "MAX_SHORT", "short_names", "postfix", "legend"]

#: tqdm's layout without the rate and the percentage: `epoch 3/10 |██    | 8/20 [00:01<00:02, loss=31.2 E[log p]=-29.9]`.
BAR_FORMAT = "{desc} |{bar:6}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
#: The longest short name a term gets before it is called by its place (`t2`).
MAX_SHORT = 14

_SUBSCRIPT = re.compile(r"_\{(?:[^{}]|\{[^{}]*\})*\}|_[A-Za-z0-9]\b|\^\{[^{}]*\}")  # `_{\hat{x}}` too
_ARGUMENTS = re.compile(r"(?<=\b[A-Za-z])\([^()]*\)")
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "lambda": "λ", "mu": "μ", "tau": "τ"}
_OPERATOR = re.compile(r"\s*([-+/‖·,])\s*")  # spaces around operators go; `log p` keeps its space
_WORD = re.compile(r"\b(" + "|".join(_GREEK) + r")\b")
_PROSE = re.compile(r"\\text\{([^{}]*)\}")  # a prose \underbrace label, `\text{Our gradient penalty}`


def _words(text: str) -> str:
    """A prose label's words, cut at a word to fit the bar (`Our gradient…`)."""
    if len(text) <= MAX_SHORT:
        return text
    kept = ""
    for word in text.split():
        if len(kept) + len(word) + (1 if kept else 0) > MAX_SHORT - 1:
            break
        kept = f"{kept} {word}" if kept else word
    return (kept or text[:MAX_SHORT - 1]) + "…"


def _abbreviate(name: str) -> str:
    """`beta * KL(q_{phi}(z|x) || p(z))` -> `β·KL(q‖p)`: subscripts, argument lists and spaces dropped."""
    short = _PROSE.sub(lambda m: _words(m.group(1)), name)
    for _ in range(4):  # nested subscripts come off from the inside out
        short = _SUBSCRIPT.sub("", short)
    short = _ARGUMENTS.sub("", short)
    short = _WORD.sub(lambda m: _GREEK[m.group(1)], short)
    short = short.replace(" * ", "·").replace("||", "‖")
    return _OPERATOR.sub(r"\1", short)


def _fallback(name: str) -> str:
    """A term no `short_names` table lists (an objective without `term_names`): abbreviated when that fits."""
    short = _abbreviate(name)
    return name if len(name) <= MAX_SHORT or len(short) > MAX_SHORT else short


def short_names(names: Sequence[str]) -> Dict[str, str]:
    """Each term's name -> the one the bar shows: the name when short, else its abbreviation, else `t<k>` (its
    place in the formula); never two alike."""
    shown: Dict[str, str] = {}
    for k, name in enumerate(names, 1):
        taken = set(shown.values()) | {LOSS}
        candidates = ([name] if len(name) <= MAX_SHORT else []) + [_abbreviate(name)]
        shown[name] = next((c for c in candidates if len(c) <= MAX_SHORT and c not in taken), f"t{k}")
    return shown


def postfix(stats: Mapping[str, float], short: Mapping[str, str]) -> str:
    """The bar's postfix, `loss=31.2 E[log p]=-29.9 β·KL(q‖p)=1.26`: the loss and every term by its short name;
    at an epoch's end, when held-out values are present, those (after `eval:`) take the training ones' place."""
    held = any(k.startswith(EVAL) for k in stats)
    parts = ["eval:"] if held else []
    shown = set()
    for key, value in stats.items():
        if key.startswith(EVAL) != held:
            continue
        label = _label(key[len(EVAL):] if held else key, short)
        if label is not None and label not in shown:
            shown.add(label)
            parts.append(f"{label}={_number(value)}")
    return " ".join(parts)


def _label(key: str, short: Mapping[str, str]) -> Optional[str]:
    """What the bar calls a history key (None: not shown; inputs and learning rates are in the log). A player's
    loss is `D:loss`; its terms go by their own short names, shown once (`D/term/...` and `G/term/...` alike)."""
    if key == OBJECTIVE or key.startswith((INPUT, LR)):
        return None
    if key.startswith(TERM):
        name = key[len(TERM):]
        return short[name] if name in short else _fallback(name)
    head, slash, rest = key.partition("/")
    if slash:  # an update rule's per-player statistics: `D/loss`, `D/term/<name>`
        inner = _label(rest, short)
        return inner if inner is None or rest.startswith(TERM) else f"{head}:{inner}"
    return key


def _number(value: float) -> str:
    """4 significant digits, without an exponent up to a million (`-12346`, `-5.518`, `0.09262`)."""
    return f"{value:.0f}" if 1e4 <= abs(value) < 1e6 else f"{value:.4g}"


def legend(short: Mapping[str, str]) -> Iterable[str]:
    """`E[log p] = E_{q(z|x)}[log p(x|z)]` for every term whose bar name is not its full name."""
    return [f"{s} = {name}" for name, s in short.items() if s != name]
