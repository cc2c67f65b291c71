"""Amyloid labels from the dataset's TSV tables and from an external table (``--labels-file``).

Places, later wins: ``participants.tsv`` (one value per subject), ``phenotype/*.tsv`` (rows with
``participant_id`` and optionally ``session_id``), ``sub-*/sub-*_sessions.tsv`` (one value per
session), then the external table, which users keep next to the read-only dataset (OASIS-3 and
ADNI labels come that way). Column names match case-insensitively. A Centiloid value gives the
label ``centiloid > threshold``; a ready status column overrides it. Missing values (``n/a``,
empty) mean "unknown", never "negative".

External table: TSV or CSV (detected), keys in ``participant_id`` (or ``subject_id``, ``subject``)
and optionally ``session_id`` (or ``session``, ``oasis_session_id``, ``visit``), each with or without
its ``sub-`` / ``ses-`` prefix. A session key holding an OASIS-3 style PET session id
(``OAS30001_AV45_d2430``) is read as its last part (``d2430``), and its first part is the subject
when no subject column exists. Keys given twice with different values are unknown (warned).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bids_amyloid.config import LabelConfig
from bids_amyloid.errors import DataError, InputIOError, MissingInputError, UsageError

log = logging.getLogger("bids_amyloid.bids")

POSITIVE = {"1", "1.0", "positive", "pos", "true", "yes", "+", "amyloid positive"}
NEGATIVE = {"0", "0.0", "negative", "neg", "false", "no", "-", "amyloid negative"}
MISSING = {"", "n/a", "na", "nan", "none"}
SUBJECT_KEYS = ("participant_id", "subject_id", "subject", "participant")
SESSION_KEYS = ("session_id", "session", "oasis_session_id", "session_label", "visit")


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
    external_keys: list[tuple[str, str | None]] = field(default_factory=list)
    """Keys of the rows of ``--labels-file`` (to report rows that match no session)."""

    def lookup(self, subject: str, session: str | None) -> LabelValue | None:
        return self.values.get((subject, session)) or self.values.get((subject, None))


def _read_table(path: Path, sep: str = "\t") -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputIOError(f"cannot read {path}: {exc}") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a valid {'TSV' if sep == chr(9) else 'CSV'} table: {exc}") from exc


def _separator(path: Path) -> str:
    """Tab or comma: from the extension, else from the header line."""
    if path.suffix.lower() == ".csv":
        return ","
    if path.suffix.lower() == ".tsv":
        return "\t"
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
    except OSError as exc:
        raise InputIOError(f"cannot read {path}: {exc}") from exc
    return "\t" if header.count("\t") >= header.count(",") else ","


def _column(frame: pd.DataFrame, *names: str | None) -> str | None:
    for name in names:
        if not name:
            continue
        matches = [c for c in frame.columns if c.strip().lower() == name.lower()]
        if matches:
            return matches[0]
    return None


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


def _keys(row, subject: str | None, sub_col: str | None, ses_col: str | None) -> tuple[str, str | None]:
    ses_raw = str(row[ses_col]).strip() if ses_col else ""
    parts = ses_raw.split("_") if "_" in ses_raw and not ses_raw.startswith("ses-") else []
    sub = subject or (_strip("sub-", str(row[sub_col])) if sub_col else (parts[0] if parts else ""))
    ses = (parts[-1] if parts else _strip("ses-", ses_raw)) or None
    return sub, ses


def _rows(path: Path, config: LabelConfig, subject: str | None, sep: str = "\t", external: bool = False
          ) -> tuple[dict, set[str], list]:
    """Label values of one table; ``subject`` is given for a sessions.tsv (no participant_id)."""
    frame = _read_table(path, sep)
    cl_col = _column(frame, config.centiloid_column)
    status_col = _column(frame, config.label_column)
    found = {c.lower() for c in (cl_col, status_col) if c}
    sub_col = None if subject else _column(frame, *(SUBJECT_KEYS if external else ("participant_id",)))
    ses_col = _column(frame, *(SESSION_KEYS if external else ("session_id",)))
    if external and not found:
        wanted = config.label_column or config.centiloid_column
        raise MissingInputError(f"{path}: no column {wanted!r} (columns: {', '.join(frame.columns)}); "
                                "set --centiloid-column or --label-column")
    if external and sub_col is None and ses_col is None:
        raise DataError(f"{path}: no key column; name the subject column participant_id (and the session "
                        f"column session_id), found {', '.join(frame.columns)}")
    values: dict = {}
    keys, conflicts = [], set()
    for _, row in frame.iterrows() if found else ():
        sub, ses = _keys(row, subject, sub_col, ses_col)
        if not sub:
            continue
        row_id = f"sub-{sub}" + (f" ses-{ses}" if ses else "")
        centiloid = parse_centiloid(row[cl_col], path, row_id) if cl_col else None
        if status_col:
            label = parse_status(row[status_col], path, row_id)
        elif centiloid is not None:
            label = int(centiloid > config.centiloid_threshold)  # strictly greater (method.md)
        else:
            label = None
        keys.append((sub, ses))
        if centiloid is None and label is None:
            continue
        value = LabelValue(centiloid, label, str(path))
        previous = values.get((sub, ses))
        if previous is not None and (previous.centiloid, previous.label) != (centiloid, label):
            conflicts.add((sub, ses))
        values[(sub, ses)] = value
    for key in sorted(conflicts, key=str):
        log.warning("%s: %s has two different values; its label is unknown", path,
                    f"sub-{key[0]}" + (f" ses-{key[1]}" if key[1] else ""))
        values[key] = LabelValue(None, None, str(path))
    return values, found, keys


def _dataset_tables(bids_dir: Path) -> list[tuple[Path, str | None]]:
    """The dataset's tables in the order they are read (later wins), each with its subject when
    the table is a sessions.tsv (which has no participant_id)."""
    tables: list[tuple[Path, str | None]] = []
    if (bids_dir / "participants.tsv").exists():
        tables.append((bids_dir / "participants.tsv", None))
    tables += [(p, None) for p in sorted((bids_dir / "phenotype").glob("*.tsv"))]
    for path in sorted(bids_dir.glob("sub-*/sub-*_sessions.tsv")):
        tables.append((path, path.parent.name[len("sub-"):]))
    return tables


def read_labels(bids_dir: Path, config: LabelConfig) -> LabelTable:
    """Collect labels from participants.tsv, phenotype/*.tsv, sessions.tsv and --labels-file (later wins)."""
    bids_dir = Path(bids_dir)
    merged: dict = {}
    found: set[str] = set()
    for path, subject in _dataset_tables(bids_dir):
        values, columns, _ = _rows(path, config, subject)
        merged.update(values)
        found |= columns
    external: list = []
    if config.labels_file is not None:
        path = Path(config.labels_file)
        if not path.is_file():
            raise MissingInputError(f"--labels-file {path}: file not found")
        values, columns, external = _rows(path, config, None, _separator(path), external=True)
        merged.update(values)
        found |= columns
    return LabelTable(merged, found, external)


def report_unmatched(table: LabelTable, sessions: set[tuple[str, str | None]], path: Path | None) -> None:
    """Warn about ``--labels-file`` rows that match no session of the dataset (first few named)."""
    subjects = {sub for sub, _ in sessions}
    unmatched = [k for k in table.external_keys
                 if (k[1] is None and k[0] not in subjects) or (k[1] is not None and k not in sessions)]
    if unmatched:
        named = ", ".join(f"sub-{s}" + (f" ses-{t}" if t else "") for s, t in unmatched[:5])
        log.warning("--labels-file %s: %d of %d row(s) match no session of the dataset, e.g. %s", path,
                    len(unmatched), len(table.external_keys), named)
    elif table.external_keys:
        log.info("--labels-file %s: all %d row(s) match a session", path, len(table.external_keys))


@dataclass
class ColumnTable:
    """Values of named columns (site, diagnosis, ...) keyed by (subject, session); session None =
    a subject-wide value (participants.tsv). A session's own value wins over its subject's."""

    values: dict[str, dict[tuple[str, str | None], str]]

    def lookup(self, column: str, subject: str, session: str | None) -> str | None:
        table = self.values.get(column, {})
        return table.get((subject, session)) or table.get((subject, None))


def read_columns(bids_dir: Path, columns: list[str] | tuple[str, ...], labels_file: Path | None = None) -> ColumnTable:
    """The values of ``columns`` from the tables labels come from (same places, same order, later
    wins; matched case-insensitively; n/a and empty are missing). A column that no table has is a
    UsageError naming the tables read."""
    bids_dir = Path(bids_dir)
    tables = [(path, subject, "\t", False) for path, subject in _dataset_tables(bids_dir)]
    if labels_file is not None and Path(labels_file).is_file():
        tables.append((Path(labels_file), None, _separator(Path(labels_file)), True))
    values: dict[str, dict[tuple[str, str | None], str]] = {c: {} for c in columns}
    found: set[str] = set()
    for path, subject, sep, external in tables:
        frame = _read_table(path, sep)
        sub_col = None if subject else _column(frame, *(SUBJECT_KEYS if external else ("participant_id",)))
        ses_col = _column(frame, *(SESSION_KEYS if external else ("session_id",)))
        wanted = {c: _column(frame, c) for c in columns}
        wanted = {c: col for c, col in wanted.items() if col and col not in (sub_col, ses_col)}
        if not wanted or (subject is None and sub_col is None):
            continue
        found |= set(wanted)
        for _, row in frame.iterrows():
            key = _keys(row, subject, sub_col, ses_col)
            if not key[0]:
                continue
            for column, col in wanted.items():
                text = str(row[col]).strip()
                if text.lower() not in MISSING:
                    values[column][key] = text
    missing = [c for c in columns if c not in found]
    if missing:
        read = ", ".join(str(p.relative_to(bids_dir)) if p.is_relative_to(bids_dir) else str(p)
                         for p, *_ in tables) or "no table"
        raise UsageError(f"no column {missing} in the dataset's tables ({read}); name a column of participants.tsv, "
                         "sub-*/sub-*_sessions.tsv, phenotype/*.tsv or --labels-file")
    return ColumnTable(values)
