"""BIDS names of derivative files, their JSON sidecars and BIDS URIs (the naming primitives).

``sub-<s>[/ses-<t>]/<datatype>/sub-<s>[_ses-<t>][_<entity>-<value>...]_<suffix><ext>``; the
layout of the whole output folder (which file is which) is ``bids.derivatives.Derivatives``.
"""
from __future__ import annotations

from pathlib import Path

ENTITY_ORDER = ("sub", "ses", "trc", "run", "from", "to", "space", "res", "label", "mode", "desc")


def bids_name(subject: str, session: str | None, suffix: str, ext: str, **entities: str | None) -> str:
    """Build ``sub-S[_ses-T][_key-value...]_suffix.ext`` with entities in BIDS order."""
    parts = [f"sub-{subject}"]
    if session:
        parts.append(f"ses-{session}")
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"unknown BIDS entities {sorted(unknown)}")
    for key in ENTITY_ORDER[2:]:
        value = entities.get(key)
        if value is not None:
            parts.append(f"{key}-{value}")
    return "_".join(parts) + f"_{suffix}{ext}"


def session_dir(out_dir: Path, subject: str, session: str | None, datatype: str) -> Path:
    folder = Path(out_dir) / f"sub-{subject}"
    if session:
        folder = folder / f"ses-{session}"
    return folder / datatype


def derivative_path(out_dir: Path, subject: str, session: str | None, datatype: str, suffix: str, ext: str,
                    **entities: str | None) -> Path:
    """Full path of one derivative file."""
    return session_dir(out_dir, subject, session, datatype) / bids_name(subject, session, suffix, ext, **entities)


def sidecar_of(path: Path) -> Path:
    """The JSON sidecar of a file: everything after the first dot of the name -> ``.json``."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + ".json")


def session_key(subject: str, session: str | None) -> str:
    """``sub-X_ses-Y`` (or ``sub-X``): the one id of a session in logs and tables."""
    return f"sub-{subject}" + (f"_ses-{session}" if session else "")


def bids_uri(path: Path, root: Path, dataset: str = "raw") -> str:
    """``bids:<dataset>:<relative path>`` for ``Sources`` fields."""
    return f"bids:{dataset}:{Path(path).resolve().relative_to(Path(root).resolve()).as_posix()}"


def output_uri(path: Path, root: Path) -> str:
    """``bids::<path>`` for a file inside the output dataset ``root``, else its absolute path."""
    try:
        return bids_uri(path, root, dataset="")
    except ValueError:
        return str(Path(path).resolve())
