"""Mixed precision for `Trainer(amp=...)`: the networks run under `torch.autocast`, the densities stay float32.

`amp=True` is bfloat16 on every device (CPU autocast, and CUDA, where bf16 keeps float32's exponent range so no
loss scaling is needed); `amp="bfloat16"` says the same. Each declared network's outputs (the parameters of a
distribution, a function's value) are cast back to float32 while autocast is on, so log-densities, KLs and their
sums over pixels and time are computed in float32; only the networks' matrix products run in low precision.
`amp="float16"` runs the networks in float16 with a `torch.amp.GradScaler` (`grad_scaler`): the loss is scaled
before backward, the gradients unscaled before the finite check, the clipping and the optimizer step, and a step
whose gradients overflow is skipped with a smaller scale (history key `skipped`), never reported as a divergence.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, List, Optional, Tuple

import torch
from torch import nn

from ..errors import FormulaInputError
from ..families.protocol import Declaration

__all__ = ["amp_dtype", "autocast", "float32_outputs", "with_autocast", "grad_scaler"]

_NAMES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def amp_dtype(amp: Any, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for `Trainer(amp=amp)` on `device` (None: full precision)."""
    if amp is None or amp is False:
        return None
    dtype = torch.bfloat16 if amp is True else _NAMES.get(amp, amp) if isinstance(amp, str) else amp
    if dtype not in (torch.bfloat16, torch.float16):
        raise FormulaInputError(f"Trainer(amp=...) takes True, False, 'bfloat16' or 'float16', got {amp!r}")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise FormulaInputError(f"{device} does not support bfloat16; train without amp= on it")
    return dtype


def grad_scaler(device: torch.device, dtype: Optional[torch.dtype]) -> Optional[Any]:
    """The loss scaler float16 needs (None for bfloat16 and full precision, whose exponent range needs none)."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> ContextManager[Any]:
    """`torch.autocast` for `device` in `dtype`, or nothing when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def with_autocast(evaluate: Callable[..., Tuple[torch.Tensor, Any]], device: torch.device,
                  dtype: Optional[torch.dtype]) -> Callable[..., Tuple[torch.Tensor, Any]]:
    """`evaluate` run under autocast, its values and terms handed back in float32 (backward runs outside)."""
    if dtype is None:
        return evaluate

    def run(**inputs: Any) -> Tuple[torch.Tensor, Any]:
        with autocast(device, dtype):
            values, terms = evaluate(**inputs)
        return values.float(), {name: t.float() for name, t in terms.items()}

    return run


def _float32(value: Any) -> Any:
    """Floating tensors in `value` (a tensor, or a dict/tuple/list of them) as float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_float32(v) for v in value)
    return value


def _hook(module: nn.Module, args: Any, output: Any) -> Any:
    """A network's forward hook: its outputs in float32 while autocast is on for its device."""
    device = next((p.device.type for p in module.parameters()), "cpu")
    return _float32(output) if torch.is_autocast_enabled(device) else None


def float32_outputs(objective: nn.Module) -> List[Any]:
    """Make every declared network of `objective` hand float32 outputs back under autocast; the hooks' handles."""
    handles = []
    for module in objective.modules():
        net = getattr(module, "net", None)
        if isinstance(module, Declaration) and isinstance(net, nn.Module):
            handles.append(net.register_forward_hook(_hook))
    return handles
