"""Per-epoch training checkpoints in the work dir (atomic), and what resuming needs.

A checkpoint holds the TRAINABLE tensors only (LoRA, heads; the frozen backbone is rebuilt from
its weights folder), the optimizer and scheduler states, the early-stopping state, the best
tensors so far, every RNG state, and a fingerprint of the settings that shape training, so
``--resume`` refuses a checkpoint written with other settings. Checkpoints are read with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bids_amyloid.bids.io import atomic_path
from bids_amyloid.errors import DataError, UsageError

log = logging.getLogger("bids_amyloid.train")

FORMAT_VERSION = 1


def trainable_state(net: nn.Module) -> dict[str, Tensor]:
    """CPU copies of the parameters that require grad (the frozen base is not stored)."""
    return {n: p.detach().cpu().clone() for n, p in net.named_parameters() if p.requires_grad}


def load_trainable_state(net: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into ``net``'s parameters; every trainable parameter must be present."""
    params = dict(net.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    unknown = [n for n in state if n not in params]
    if missing or unknown:
        raise DataError(f"checkpoint does not fit the network (missing {missing[:3]}, unknown {unknown[:3]})")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    np.random.set_state(_as_tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    """RNG states as tensors, lists and numbers, so ``weights_only`` loading accepts them."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.astype(np.int64))
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _numpy_state(value: Any) -> Any:
    """Inverse of :func:`_plain` for NumPy's state tuple (its key array)."""
    return [v.numpy().astype(np.uint32) if isinstance(v, Tensor) else v for v in value]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the previous checkpoint intact."""
    payload = dict(state, format_version=FORMAT_VERSION)
    payload["rng"] = _plain(rng_state())
    with atomic_path(Path(path)) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, expected_fingerprint: str, *, restore_rng: bool = True) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (None when absent); RNG states restored unless told otherwise."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: unreadable checkpoint ({exc}); delete it or run without --resume") from exc
    if state.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: checkpoint format {state.get('format_version')} is not {FORMAT_VERSION}")
    if state.get("fingerprint") != expected_fingerprint:
        raise UsageError(f"{path} was written with other training settings; run without --resume "
                         "(or with the settings of the interrupted run)")
    if restore_rng:
        rng = state["rng"]
        rng["numpy"] = _numpy_state(rng["numpy"])
        set_rng_state(rng)
    return state
