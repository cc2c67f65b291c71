"""The device and the numeric precision of every model computation (training and prediction).

``--device auto`` takes the first CUDA GPU when there is one, else the CPU; a GPU that is asked
for but missing falls back to the CPU with a warning. bf16 autocast: on CUDA when enabled, on the
CPU only when asked AND oneDNN has native bf16 kernels (AVX512-BF16 / AMX); elsewhere float32.
"""
from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger("bids_amyloid.models")


def resolve_device(preference: str, local_rank: int | None = None, *, purpose: str = "training") -> torch.device:
    """'auto' -> cuda when available else cpu; cuda without a GPU -> warning and cpu.

    Under torchrun each process takes GPU ``local_rank`` (unless 'cuda:N' names one).
    """
    available = torch.cuda.is_available()
    if preference == "auto":
        kind = "cuda" if available else "cpu"
    elif preference.startswith("cuda") and not available:
        log.warning("device %r requested but CUDA is not available: falling back to the CPU for %s",
                    preference, purpose)
        kind = "cpu"
    else:
        kind = preference
    if kind == "cuda" and local_rank is not None:
        kind = f"cuda:{local_rank}"
    device = torch.device(kind)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        log.info("%s device: %s (%s)", purpose, device, torch.cuda.get_device_name(device))
    else:
        log.info("%s device: cpu (%d threads)", purpose, torch.get_num_threads())
    return device


def cpu_has_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX512-BF16 / AMX); elsewhere bf16
    is emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision(device: torch.device, *, cuda_bf16: bool = True, cpu_bf16: bool = False) -> str:
    """'bf16' (autocast) or 'float32' for ``device``."""
    if device.type == "cuda":
        return "bf16" if cuda_bf16 else "float32"
    return "bf16" if cpu_bf16 and device.type == "cpu" and cpu_has_bf16() else "float32"


def autocast(device: torch.device, *, cuda_bf16: bool = True, cpu_bf16: bool = False
             ) -> contextlib.AbstractContextManager:
    """bf16 autocast per :func:`precision`; else a no-op."""
    if precision(device, cuda_bf16=cuda_bf16, cpu_bf16=cpu_bf16) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
