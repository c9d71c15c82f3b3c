"""formula: write a deep generative model's objective as the paper writes it, get a trainable PyTorch objective.

Names are imported on first use (PEP 562), so `import formula` stays cheap and a command-line call that only
prints a formula never imports torch.

>>> import formula as fm
>>> fm.equivalent("E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))",
...               r"\\mathbb{E}_{q_\\phi(z|x)}\\left[\\log p_\\theta(x|z)\\right] - D_{KL}(q_\\phi(z|x) \\| p(z))")
True
"""

from importlib import import_module

from .errors import FormulaCheckError, FormulaError, FormulaInputError, FormulaSyntaxError

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "parse": "parsing",
    "to_ascii": "printing", "to_latex": "printing",
    "to_sympy": "symbolic", "pretty": "symbolic", "latex": "symbolic", "equivalent": "symbolic",
    "Distribution": "distributions", "Normal": "distributions", "Bernoulli": "distributions",
    "Categorical": "distributions", "OneHotCategorical": "distributions", "Laplace": "distributions",
    "Beta": "distributions", "Gamma": "distributions", "Dirichlet": "distributions",
    "RelaxedBernoulli": "distributions", "RelaxedCategorical": "distributions", "Deterministic": "distributions",
    "Data": "distributions", "Function": "distributions",
    "compile": "objective", "Objective": "objective",
    "Trainer": "training", "TrainingDivergedError": "training",
    "CheckpointError": "checkpoint",
}

__all__ = ["FormulaError", "FormulaSyntaxError", "FormulaCheckError", "FormulaInputError", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'formula' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
