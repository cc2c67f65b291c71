"""Tensors on disk: safetensors read and write, a file-independent tensor digest, and the sha256
checksum manifests that weights folders and model bundles carry."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bids_amyloid.bids.io import atomic_path, sha256_file
from bids_amyloid.errors import DataError


def tensor_digest(state: Mapping[str, Tensor]) -> str:
    """sha256 over sorted keys, dtypes, shapes and bytes (floating tensors as float32).

    Identifies backbone weights independently of the file that holds them, so a bundle can
    say which backbone it was trained on and a loaded encoder can be checked against it.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()
        tensor = tensor.contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def verify_manifest(folder: Path, manifest_name: str = "manifest.json") -> dict[str, Any]:
    """Check every file listed in ``folder/manifest_name``; DataError naming a bad/missing file."""
    folder = Path(folder)
    manifest_path = folder / manifest_name
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path}: checksum manifest missing (incomplete or not a weights folder)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path}: unreadable checksum manifest ({exc})") from exc
    for name, expected in files.items():
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DataError(f"{manifest_path}: refusing file name {name!r}")
        if not path.is_file():
            raise DataError(f"{path}: file listed in {manifest_path.name} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise DataError(f"{path}: checksum mismatch (corrupt, truncated or modified file; "
                            f"expected sha256 {expected[:12]}..., got {actual[:12]}...)")
    return manifest


def load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc


def save_safetensors(state: Mapping[str, Tensor], path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write tensors atomically (contiguous CPU copies; shared storage is not allowed)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)
