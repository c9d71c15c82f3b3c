"""What the sample-based divergences need of their arguments, known torch-free (so `formula check` accepts them):
`MMD(a || b)` draws from both sides (an explicit family such as \\mathcal{N}(0, I) may be the right one). The
estimator is registered by `formula.compiler.mmd`, which fills the same table."""

from __future__ import annotations

from . import critic_divergences, defined_expectations  # noqa: F401  (register their checks)
from .divergences import Needs, register_spec

MMD_NEEDS = {"left": Needs.SAMPLES, "right": Needs.SAMPLES | Needs.FAMILY}

register_spec("MMD", **MMD_NEEDS)

__all__ = ["MMD_NEEDS"]
