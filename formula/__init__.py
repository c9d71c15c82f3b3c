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
from .text import printing as _printing  # noqa: F401  (cheap: registers how notebooks display a parsed formula)

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "parse": "lang.parser",
    "to_ascii": "text.printing", "to_latex": "text.printing",
    "to_sympy": "text.symbolic", "pretty": "text.symbolic", "latex": "text.symbolic", "equivalent": "text.symbolic",
    "Distribution": "families.declarations", "Normal": "families.declarations", "Bernoulli": "families.declarations",
    "Binomial": "families.declarations", "Poisson": "families.declarations",
    "Categorical": "families.declarations", "OneHotCategorical": "families.declarations", "Laplace": "families.declarations",
    "Beta": "families.declarations", "Gamma": "families.declarations", "Dirichlet": "families.declarations",
    "RelaxedBernoulli": "families.declarations", "RelaxedCategorical": "families.declarations", "Deterministic": "families.declarations",
    "Data": "families.declarations", "Function": "families.declarations",
    "Declaration": "families.protocol", "Capabilities": "families.protocol", "capabilities_of": "families.protocol",
    "LazyDistribution": "families.lazy", "DeclKind": "check.kinds",
    "Flow": "families.flow", "Transform": "families.transform", "PlanarFlow": "families.planar",
    "ProductOfExperts": "families.experts", "Mixture": "families.mixture",
    "Autoregressive": "families.autoregressive", "MADE": "families.made",
    "SequenceDecoder": "families.sequence_decoder",
    "EnergyBased": "families.energy", "Langevin": "samplers", "AnnealedLangevin": "samplers", "Ancestral": "samplers",
    "DiffusionPosterior": "families.diffusion", "DiffusionReverse": "families.diffusion",
    "Schedule": "families.schedule", "Initial": "families.initial", "PerIndex": "families.per_index", "Baseline": "estimators.nvil",
    "compile": "compiler.objective", "Objective": "compiler.objective",
    "Trainer": "train.trainer", "TrainingDivergedError": "train.trainer",
    "Alternating": "train.games", "Game": "train.games", "Sources": "train.sources", "cycle_longest": "train.sources",
    "CheckpointError": "train.checkpoint",
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
