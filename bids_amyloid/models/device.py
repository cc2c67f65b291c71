"""The device and the numeric precision of every model computation (training and prediction).

``--device auto`` takes the first CUDA GPU when there is one, else the CPU; a GPU that is asked
for but missing falls back to the CPU with a warning. Training: bf16 autocast on CUDA when
enabled, on the CPU only when asked AND oneDNN has native bf16 kernels (AVX512-BF16 / AMX).

Prediction (:func:`prediction_precision`): bf16 on CUDA; on the CPU ``auto`` takes whichever of
float32 and bf16 a short probe measures faster. Native bf16 kernels are not enough: a CPU with
AVX512-BF16 but no AMX ran a 2048^3 matmul at 148 GFLOP/s in bf16 against 308 in float32 and the
whole prediction slower in bf16, while one with AMX ran it at 934 against 207.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import time
from typing import Any

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


def bf16_autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled`` (already decided); else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def return_freed_memory(device: torch.device) -> None:
    """Give memory that torch freed on the CPU back to the system (glibc ``malloc_trim``).

    glibc keeps freed blocks of a large autograd graph in its heap, so the resident size only
    grows: measured on a ViT-B/16 5-fold pass with both maps, peak RSS 3.11 GB without a trim
    after each fold and 2.85 GB with it, and 2.0 against 1.06 GB of private memory after the
    pass, at no measurable cost in time. Elsewhere (another C library, CUDA) a no-op."""
    if device.type != "cpu":
        return
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


BF16_MIN_SPEEDUP = 1.5
"""bf16 is taken on the CPU when the probe's matmul runs at least this much faster than float32:
the whole pass gains less than a matmul (AMX CPU: 4.5x on the matmul, 1.9x on prediction with
saliency), and a CPU that barely gains on the matmul loses on the rest (casts, norms in float32)."""


def probe_cpu_matmul(repeats: int = 3) -> dict[str, float]:
    """Seconds of one ViT-B/16-shaped linear layer (2048 tokens x 768 -> 3072, weight cast
    included, as autocast does it in the model) in float32 and in bf16 autocast: best of
    ``repeats`` after a warm-up; about 0.1-0.5 s in all."""
    x, w = torch.randn(2048, 768), torch.randn(3072, 768)
    timings = {}
    for label in ("float32", "bf16"):
        with bf16_autocast(torch.device("cpu"), label == "bf16"):
            torch.nn.functional.linear(x, w)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                torch.nn.functional.linear(x, w)
                best = min(best, time.perf_counter() - start)
        timings[f"{label}_s"] = best
    return timings


def prediction_precision(device: torch.device, setting: str = "auto") -> tuple[str, dict[str, Any]]:
    """'bf16' or 'float32' for prediction on ``device``, and the record of how it was chosen
    (written with the predictions). ``setting``: 'auto', 'float32' or 'bf16' (the CPU's; CUDA is
    always bf16)."""
    if device.type == "cuda":
        return "bf16", {"Setting": setting, "Rule": "CUDA: bf16 autocast"}
    if setting in ("float32", "bf16"):
        if setting == "bf16" and not cpu_has_bf16():
            log.warning("bf16 asked for on a CPU without native bf16 kernels: emulated, likely slower than float32")
        return setting, {"Setting": setting, "Rule": "as asked (--cpu-precision)"}
    if setting != "auto":
        raise ValueError(f"unknown precision setting {setting!r}")
    if not cpu_has_bf16():
        return "float32", {"Setting": "auto", "Rule": "no native bf16 kernels on this CPU: float32"}
    timings = probe_cpu_matmul()
    speedup = timings["float32_s"] / timings["bf16_s"]
    chosen = "bf16" if speedup >= BF16_MIN_SPEEDUP else "float32"
    log.info("CPU precision probe: matmul %.1f ms float32, %.1f ms bf16 (%.2fx): %s", 1e3 * timings["float32_s"],
             1e3 * timings["bf16_s"], speedup, chosen)
    return chosen, {"Setting": "auto", "Rule": f"probe: bf16 when its matmul is >= {BF16_MIN_SPEEDUP}x faster",
                    "ProbeSeconds": {k: round(v, 6) for k, v in timings.items()}, "ProbeSpeedup": round(speedup, 3)}
