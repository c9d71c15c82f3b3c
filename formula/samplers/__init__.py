"""Samplers: reusable objects that turn a model into draws -- Langevin dynamics from an energy or a score (with a
replay buffer, or annealed over noise levels) and ancestral sampling by a reverse process -- with a progress bar."""

from .ancestral import Ancestral
from .buffer import ReplayBuffer, UniformInit
from .langevin import AnnealedLangevin, Langevin, score_of_energy

__all__ = ["Langevin", "AnnealedLangevin", "Ancestral", "ReplayBuffer", "UniformInit", "score_of_energy"]
