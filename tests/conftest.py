"""Test-wide settings: one torch thread (the tiny models here run fastest that way on a 2-core CI machine), and
the `--device` and `--dtype` options (CPU float32 by default; `python -m pytest --device cuda` on a GPU machine)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared test helpers: models.py, toy_objectives.py
torch.set_num_threads(1)


def pytest_addoption(parser):
    """`--device cuda` / `--dtype float64` run the same suite on a GPU or in another float dtype (CPU float32
    by default): factories without an explicit device or dtype follow them, and the `device`/`dtype` fixtures
    name them for tests that build tensors themselves."""
    parser.addoption("--device", default="cpu", help="torch device the tests run on (cpu, cuda, cuda:1, ...)")
    parser.addoption("--dtype", default="float32", choices=("float32", "float64"),
                     help="torch's default floating dtype during the tests")


def pytest_configure(config):
    device, dtype = config.getoption("--device"), getattr(torch, config.getoption("--dtype"))
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {device}: this machine has no CUDA device")
    torch.set_default_dtype(dtype)
    if device != "cpu":
        torch.set_default_device(device)


@pytest.fixture
def device(request) -> torch.device:
    """The device the suite runs on (`--device`)."""
    return torch.device(request.config.getoption("--device"))


@pytest.fixture
def dtype(request) -> torch.dtype:
    """torch's default floating dtype for the suite (`--dtype`)."""
    return getattr(torch, request.config.getoption("--dtype"))
