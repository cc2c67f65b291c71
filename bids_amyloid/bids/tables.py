"""Every TSV table the app writes or reads: one writer, one reader, a typed schema per table.

A schema is an ordered ``{column: Column}``; :func:`write_table` writes the rows in that order
(``n/a`` for missing values, numbers to 6 significant digits, booleans as true/false) and the
schema as the table's BIDS JSON data dictionary, both atomically. :func:`read_table` reads any of
them back as a pandas DataFrame with ``n/a`` as missing.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bids_amyloid.bids.io import atomic_write_json, atomic_write_text
from bids_amyloid.bids.names import sidecar_of


@dataclass(frozen=True)
class Column:
    description: str
    long_name: str | None = None
    levels: Mapping[str, str] | None = None
    units: str | None = None

    def dictionary(self) -> dict[str, Any]:
        """The column's entry in a BIDS data dictionary."""
        entry: dict[str, Any] = {"LongName": self.long_name} if self.long_name else {}
        entry["Description"] = self.description
        if self.levels:
            entry["Levels"] = dict(self.levels)
        if self.units:
            entry["Units"] = self.units
        return entry


Schema = Mapping[str, Column]


def cell(value: Any) -> str:
    """One TSV cell: n/a for None/NaN, 6 significant digits, true/false."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def dictionary(schema: Schema) -> dict[str, Any]:
    return {name: column.dictionary() for name, column in schema.items()}


def write_table(path: Path, rows: Sequence[Mapping[str, Any]] | Any, schema: Schema,
                sidecar: Mapping[str, Any] | None = None) -> Path:
    """``rows`` (mappings, or a DataFrame) as TSV in schema order, and the data dictionary (plus
    ``sidecar`` fields: description, sources, provenance) as its JSON sidecar."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(list(schema))
    for row in rows:
        writer.writerow([cell(row.get(name)) for name in schema])
    atomic_write_text(Path(path), buffer.getvalue())
    atomic_write_json(sidecar_of(path), {**dictionary(schema), **(sidecar or {})})
    return Path(path)


def read_table(path: Path, text: Sequence[str] = ()):
    """A table written here as a DataFrame; ``n/a`` and empty cells missing; ``text`` columns stay strings."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", na_values=["n/a", ""], keep_default_na=False, dtype={c: str for c in text})


def read_rows(path: Path, text: Sequence[str] = (), missing: Any = None) -> list[dict[str, Any]]:
    """:func:`read_table` as a list of rows, missing values replaced by ``missing``."""
    frame = read_table(path, text)
    return frame.astype(object).where(frame.notna(), missing).to_dict(orient="records")
