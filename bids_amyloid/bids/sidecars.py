"""JSON sidecars as real datasets have them: missing, broken, draft-form, misspelt, ``"n/a"`` numbers.

:func:`read_sidecar` merges the sidecars that apply to a file by the BIDS inheritance principle
(the nearest wins) and never raises: a file that is not valid JSON is reported and skipped.
:func:`lookup` finds a key whatever its nesting (draft ``{"Tracer": {"Name": ...}}`` or flat
``"Tracer.Name"``) and spelling (case, ``_``, a missing or extra plural ``s``). :func:`number`
reads ``"n/a"`` and numeric strings. PyBIDS is not asked for metadata: one broken JSON file stops
its whole index.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ENTITY = re.compile(r"([a-zA-Z]+)-([a-zA-Z0-9]+)")


@dataclass(frozen=True)
class Sidecar:
    """The metadata that applies to one file, and what went wrong reading it."""

    values: dict[str, Any] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    """JSON files merged (nearest last)."""
    problems: tuple[str, ...] = ()
    """Files that could not be read, with the reason."""

    @property
    def own(self) -> bool:
        """True when at least one sidecar applies (even a broken one)."""
        return bool(self.files or self.problems)


def _parts(name: str) -> tuple[dict[str, str], str]:
    stem = name.split(".")[0]
    entities = dict(_ENTITY.findall(stem))
    return entities, stem.rsplit("_", 1)[-1]


def read_sidecar(path: Path, root: Path) -> Sidecar:
    """Merged sidecar of ``path`` (an image inside the dataset ``root``) by BIDS inheritance."""
    path, root = Path(path), Path(root)
    entities, suffix = _parts(path.name)
    folders = []
    folder = path.parent
    while True:
        folders.append(folder)
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    merged: dict[str, Any] = {}
    used, problems = [], []
    for folder in reversed(folders):  # top level first: nearer files override
        for candidate in sorted(folder.glob(f"*_{suffix}.json")) + sorted(folder.glob(f"{suffix}.json")):
            cand_entities, cand_suffix = _parts(candidate.name)
            if cand_suffix != suffix or any(entities.get(k) != v for k, v in cand_entities.items()):
                continue
            try:
                data = json.loads(candidate.read_text(encoding="utf-8", errors="replace"))
            except (OSError, ValueError) as exc:
                problems.append(f"{candidate}: not valid JSON ({exc})")
                continue
            if not isinstance(data, dict):
                problems.append(f"{candidate}: not a JSON object")
                continue
            merged.update(data)
            used.append(candidate)
    return Sidecar(merged, tuple(used), tuple(problems))


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _find(meta: Mapping[str, Any], wanted: str) -> list[Any]:
    """Values whose key is ``wanted`` up to case and punctuation, else up to the letter s
    (FrameTimeStart / FrameTimesStart, FrameDurations)."""
    exact = [v for k, v in meta.items() if _key(k) == _key(wanted)]
    return exact or [v for k, v in meta.items() if _key(k).replace("s", "") == _key(wanted).replace("s", "")]


def lookup(meta: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """``meta["Time"]["FrameTimes"]`` for ``"Time.FrameTimes"``, tolerant of nesting and spelling."""
    flat = _find(meta, dotted)  # a flat "Tracer.Name" key
    if flat:
        return flat[0]
    head, _, rest = dotted.partition(".")
    for value in _find(meta, head) if rest else []:
        if isinstance(value, Mapping):
            found = lookup(value, rest, None)
            if found is not None:
                return found
    return default


def number(value: Any) -> float | None:
    """A finite float from a number or numeric string; None for ``"n/a"``, empty, NaN or anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def numbers(value: Any) -> list[float | None] | None:
    """A list of :func:`number` values (a scalar becomes a one-element list); None when absent."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [number(v) for v in value]
    return [number(value)]
