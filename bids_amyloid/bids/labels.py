"""Amyloid labels from the dataset's TSV tables.

Three places can hold them (most specific wins): ``sub-*/sub-*_sessions.tsv`` (one value per
session), ``phenotype/*.tsv`` (rows with ``participant_id`` and optionally ``session_id``), and
``participants.tsv`` (one value per subject). Column names match case-insensitively. A Centiloid
value gives the label ``centiloid > threshold``; a ready status column overrides it. Missing values
(``n/a``, empty) mean "unknown", never "negative".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bids_amyloid.config import LabelConfig
from bids_amyloid.errors import DataError, InputIOError

POSITIVE = {"1", "1.0", "positive", "pos", "true", "yes", "+", "amyloid positive"}
NEGATIVE = {"0", "0.0", "negative", "neg", "false", "no", "-", "amyloid negative"}
MISSING = {"", "n/a", "na", "nan", "none"}


@dataclass(frozen=True)
class LabelValue:
    centiloid: float | None
    label: int | None
    source: str
    """File the value came from (for error messages and provenance)."""


@dataclass
class LabelTable:
    """Labels keyed by (subject, session); session None = subject-wide value."""

    values: dict[tuple[str, str | None], LabelValue]
    columns_found: set[str]
    """The configured columns that exist in at least one table."""

    def lookup(self, subject: str, session: str | None) -> LabelValue | None:
        return self.values.get((subject, session)) or self.values.get((subject, None))


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputIOError(f"cannot read {path}: {exc}") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a valid TSV table: {exc}") from exc


def _column(frame: pd.DataFrame, name: str | None) -> str | None:
    if not name:
        return None
    matches = [c for c in frame.columns if c.strip().lower() == name.lower()]
    return matches[0] if matches else None


def parse_centiloid(raw: str, path: Path, row_id: str) -> float | None:
    text = raw.strip()
    if text.lower() in MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: Centiloid value {raw!r} for {row_id} is not a number (use n/a if missing)") from None
    if not math.isfinite(value):
        raise DataError(f"{path}: Centiloid value {raw!r} for {row_id} is not finite")
    return value


def parse_status(raw: str, path: Path, row_id: str) -> int | None:
    text = raw.strip().lower()
    if text in MISSING:
        return None
    if text in POSITIVE:
        return 1
    if text in NEGATIVE:
        return 0
    raise DataError(f"{path}: amyloid status {raw!r} for {row_id} is not one of 0/1, positive/negative, n/a")


def _strip(prefix: str, value: str) -> str:
    value = value.strip()
    return value[len(prefix):] if value.startswith(prefix) else value


def _rows(path: Path, config: LabelConfig, subject: str | None) -> tuple[dict, set[str]]:
    """Label values of one table; ``subject`` is given for a sessions.tsv (no participant_id)."""
    frame = _read_tsv(path)
    cl_col = _column(frame, config.centiloid_column)
    status_col = _column(frame, config.label_column)
    found = {c.lower() for c in (cl_col, status_col) if c}
    if not found:
        return {}, found
    values = {}
    for _, row in frame.iterrows():
        sub = subject or _strip("sub-", str(row.get("participant_id", "")))
        if not sub:
            continue
        ses_raw = row.get("session_id")
        ses = _strip("ses-", str(ses_raw)) if ses_raw is not None and str(ses_raw).strip() else None
        row_id = f"sub-{sub}" + (f" ses-{ses}" if ses else "")
        centiloid = parse_centiloid(row[cl_col], path, row_id) if cl_col else None
        if status_col:
            label = parse_status(row[status_col], path, row_id)
        elif centiloid is not None:
            label = int(centiloid > config.centiloid_threshold)  # strictly greater (method.md)
        else:
            label = None
        if centiloid is None and label is None:
            continue
        values[(sub, ses)] = LabelValue(centiloid, label, str(path))
    return values, found


def read_labels(bids_dir: Path, config: LabelConfig) -> LabelTable:
    """Collect labels from participants.tsv, phenotype/*.tsv and sessions.tsv (later wins)."""
    bids_dir = Path(bids_dir)
    tables: list[tuple[Path, str | None]] = []
    if (bids_dir / "participants.tsv").exists():
        tables.append((bids_dir / "participants.tsv", None))
    tables += [(p, None) for p in sorted((bids_dir / "phenotype").glob("*.tsv"))]
    for path in sorted(bids_dir.glob("sub-*/sub-*_sessions.tsv")):
        tables.append((path, path.parent.name[len("sub-"):]))
    merged: dict = {}
    found: set[str] = set()
    for path, subject in tables:
        values, columns = _rows(path, config, subject)
        merged.update(values)
        found |= columns
    return LabelTable(merged, found)
