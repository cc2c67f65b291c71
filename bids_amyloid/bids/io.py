"""Atomic writes and locks: a crash never leaves a half-written file, and concurrent jobs
(Slurm arrays writing into one output folder) never interleave a shared file."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
"""Temporary files start with this (hidden, so the BIDS validator and globbing skip them)."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The temporary name keeps the final suffixes (``.nii.gz``) so writers that infer the format
    from the name (nibabel, ANTs) behave.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    # the target's name in the temporary's name lets a re-run find its own leftovers
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_with(path: Path, writer: Callable[[Path], None]) -> Path:
    """Run ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


@contextlib.contextmanager
def locked(path: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold an exclusive lock named after ``path`` (``.<name>.lock`` beside it)."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent / f".{path.name}.lock"), timeout=timeout):
        yield


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_temporaries(folder: Path, target: str = "", *, recursive: bool = True) -> int:
    """Delete temporaries a killed run left behind (those of ``target`` only, when given).

    Call it only while holding the lock that guards ``folder`` (or ``target``), so that no live
    writer's temporary is removed. Returns how many were deleted.
    """
    count = 0
    if Path(folder).exists():
        pattern = f"{TMP_PREFIX}{target}-*" if target else f"{TMP_PREFIX}*"
        for tmp in (Path(folder).rglob(pattern) if recursive else Path(folder).glob(pattern)):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                count += 1
    return count
