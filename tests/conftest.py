"""Test-wide settings: one torch thread (the tiny models here run fastest that way on a 2-core CI machine)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared test helpers: models.py, toy_objectives.py
torch.set_num_threads(1)
