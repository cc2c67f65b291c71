"""TSV tables with their BIDS JSON data dictionary, written atomically."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bids_amyloid.bids.io import atomic_write_json, atomic_write_text


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_table(path: Path, rows: Sequence[Mapping[str, Any]], columns: Mapping[str, Mapping[str, Any]]) -> Path:
    """``rows`` as TSV (``n/a`` for missing values) with ``columns`` as its JSON data dictionary."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in columns])
    atomic_write_text(Path(path), buffer.getvalue())
    atomic_write_json(Path(path).with_suffix(".json"), {k: dict(v) for k, v in columns.items()})
    return Path(path)
