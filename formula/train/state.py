"""What a trainer checkpoint holds besides the networks and the update rule, and the checks it passes before a load.

Every field is checked (present, of the right type, RNG states of this torch's size and dtype) before anything
is restored, so a bad file raises `CheckpointError` and leaves the objective, the optimizers and the trainer as
they were. The formula's text and its declarations are compared too: a checkpoint of another formula over the
same networks is refused unless the caller says `strict=False`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch
from torch import nn

from .checkpoint import CheckpointError

__all__ = ["one_line", "declarations", "rng_state", "check_fields", "check_identity", "restore_rng"]

_NUMBER = (int, float)


def one_line(objective: nn.Module) -> str:
    """The formula as one line, for messages (sympy's pretty printing may span several lines)."""
    text = getattr(objective, "text", None)
    if isinstance(text, str):
        return text
    return " ".join(str(objective).split())


def declarations(objective: nn.Module) -> List[str]:
    """Each declared distribution or function of `objective` as `Family signature` (`Normal q(z|x)`), in order."""
    found = []
    for module in objective.modules():
        signature = getattr(module, "signature_text", None) or getattr(module, "signature", None)
        if signature is not None and module is not objective:
            found.append(f"{type(module).__name__} {signature}")
    return found


def rng_state() -> Dict[str, Any]:
    """torch's CPU RNG state and, when CUDA is in use, every GPU's (under torchrun, `Trainer.save` adds every
    rank's CPU state as `ranks`)."""
    rng: Dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Put back the RNG states of `rng_state` (the GPUs' only when this machine has as many)."""
    torch.set_rng_state(rng["torch"])
    cuda = rng.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


_FIELDS = {
    "formula": str, "declarations": list, "objective": Mapping, "update": Mapping, "step": int, "epoch": int,
    "position": int, "epoch_sums": Mapping, "epoch_counts": Mapping, "history": Mapping, "rng": Mapping,
    "inputs": Mapping, "config": Mapping,
}
_CONFIG = {
    "maximize": (bool,), "batch_size": (int,), "seed": (int,), "compile": (bool,), "rule": (str,),
    "optimizer": (str, type(None)), "lr": _NUMBER, "clip_grad_norm": (*_NUMBER, type(None)), "scheduler": (bool,),
}


def check_fields(state: Mapping[str, Any], path: str) -> None:
    """Raise `CheckpointError` unless every field a trainer restores is present and well-formed."""
    for field, kind in _FIELDS.items():
        if field not in state:
            raise CheckpointError(f"the checkpoint {path!r} lacks its {field!r} entry (nothing was loaded)")
        value = state[field]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(f"the checkpoint {path!r} has {field!r} of type {type(value).__name__}, "
                                  f"which is not what Trainer.save writes (nothing was loaded)")
    for field in ("step", "epoch", "position"):
        if state[field] < 0:
            raise CheckpointError(f"the checkpoint {path!r} has a negative {field!r} ({state[field]})")
    for field in ("history", "epoch_sums", "epoch_counts"):
        for name, value in state[field].items():
            values = value if field == "history" else [value]
            if not isinstance(name, str) or not isinstance(values, list) \
                    or not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in values):
                raise CheckpointError(f"the checkpoint {path!r} has a malformed {field!r} entry {name!r}: "
                                      "expected numbers by name")
    _check_rng(state["rng"], path)
    for key, kinds in _CONFIG.items():
        value = state["config"].get(key, KeyError)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise CheckpointError(f"the checkpoint {path!r} has a missing or malformed setting {key!r} "
                                  f"({value!r}) (nothing was loaded)")
    for name, record in state["inputs"].items():
        if not isinstance(record, Mapping) or not ("schedule" in record or isinstance(
                record.get("value"), (int, float, torch.Tensor))):
            raise CheckpointError(f"the checkpoint {path!r} has a malformed record of the input {name!r}")


def _check_rng(rng: Mapping[str, Any], path: str) -> None:
    """The CPU RNG state (and the epoch's first one) must be byte tensors of this torch's size."""
    reference = torch.get_rng_state()
    for key in ("torch", "epoch"):
        value = rng.get(key, None if key == "epoch" else "missing")
        if key == "epoch" and value is None:
            continue
        if not isinstance(value, torch.Tensor) or value.dtype != reference.dtype or value.shape != reference.shape:
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"the checkpoint {path!r} has an RNG state {key!r} of {got}; torch's is "
                                  f"{reference.dtype} {tuple(reference.shape)} (nothing was loaded)")
    ranks = rng.get("ranks")
    if ranks is not None and (not isinstance(ranks, list) or not all(
            isinstance(t, torch.Tensor) and t.dtype == reference.dtype and t.shape == (2, *reference.shape)
            for t in ranks)):
        raise CheckpointError(f"the checkpoint {path!r} has malformed per-rank RNG states (nothing was loaded)")
    cuda = rng.get("cuda")
    if cuda is not None and (not isinstance(cuda, list) or not all(
            isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1 for t in cuda)):
        raise CheckpointError(f"the checkpoint {path!r} has a malformed CUDA RNG state (nothing was loaded)")


def check_identity(state: Mapping[str, Any], objective: nn.Module, path: str) -> None:
    """Raise `CheckpointError` when the checkpoint was written for another formula or other declarations."""
    differences = []
    if state["formula"] != one_line(objective):
        differences.append(f"  formula in the checkpoint: {state['formula']}\n  formula given:             "
                           f"{one_line(objective)}")
    if list(state["declarations"]) != declarations(objective):
        differences.append(f"  declarations in the checkpoint: {', '.join(state['declarations']) or '(none)'}\n"
                           f"  declarations given:             {', '.join(declarations(objective)) or '(none)'}")
    if differences:
        raise CheckpointError(f"the checkpoint {path!r} was written for another objective (nothing was loaded):\n"
                              + "\n".join(differences)
                              + "\n  pass strict=False to load its networks into this objective anyway")
