"""The predictions tables: their columns (with the JSON data dictionary), :class:`Prediction`
(one row), the per-session TSV and the group TSV that :func:`gather_predictions` rebuilds.

Per session: ``sub-X/ses-Y/anat/sub-X_ses-Y_desc-amyloid_predictions.tsv`` (one row per
contrast, written by :func:`bids_amyloid.infer.predict.predict_session`); gathered:
``group/sub-all_desc-amyloid_predictions.tsv``.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bids_amyloid import __version__
from bids_amyloid.bids.derivatives import derivative_path, json_sidecar, output_uri
from bids_amyloid.bids.io import atomic_write_json, atomic_write_text, locked
from bids_amyloid.config import Config

log = logging.getLogger("bids_amyloid.infer")

GROUP_TABLE = Path("group") / "sub-all_desc-amyloid_predictions.tsv"
"""Gathered predictions, relative to the output folder."""

COLUMNS: dict[str, dict[str, Any]] = {
    "participant_id": {"LongName": "Participant identifier", "Description": "BIDS subject label with 'sub-'."},
    "session_id": {"LongName": "Session identifier",
                   "Description": "BIDS session label with 'ses-'; n/a for a dataset without sessions."},
    "mri_session_id": {"LongName": "MRI session used",
                       "Description": "Session whose MRI the prediction used (differs from session_id when a "
                                      "PET-only session borrows the subject's MRI from another session)."},
    "contrast": {"LongName": "MRI contrast", "Description": "BIDS suffix of the MRI the prediction used.",
                 "Levels": {"T1w": "T1-weighted", "T2w": "T2-weighted", "FLAIR": "FLAIR", "T2starw": "T2*-weighted"}},
    "probability": {"LongName": "Probability of amyloid-beta positivity",
                    "Description": "Ensemble of the cross-validation folds' MRI-only students: each fold's sigmoid "
                                   "output aligned at its own threshold, averaged on the logit scale (estimated "
                                   "probability that Centiloid exceeds the training cut-off).",
                    "Units": "probability (0-1)"},
    "label": {"LongName": "Predicted amyloid status",
              "Description": "positive when probability >= threshold, else negative.",
              "Levels": {"positive": "predicted amyloid-beta positive", "negative": "predicted amyloid-beta negative"}},
    "threshold": {"LongName": "Decision threshold",
                  "Description": "Mean of the per-fold thresholds chosen on each fold's VALIDATION data at training "
                                 "time (never on test data).", "Units": "probability (0-1)"},
    "uncertainty": {"LongName": "Ensemble disagreement",
                    "Description": "Population standard deviation of the fold probabilities, each aligned at its "
                                   "own fold's threshold (logit p - logit t_fold + logit threshold).",
                    "Units": "probability (0-1)"},
    "fold_min": {"LongName": "Lowest fold probability",
                 "Description": "Minimum over folds of the aligned probability.",
                 "Units": "probability (0-1)"},
    "fold_max": {"LongName": "Highest fold probability",
                 "Description": "Maximum over folds of the aligned probability.",
                 "Units": "probability (0-1)"},
    "positive_folds": {"LongName": "Folds voting positive",
                       "Description": "Number of folds whose probability reaches their own threshold (majority "
                                      "vote for reference; label uses the ensemble's mean aligned logit)."},
    "n_folds": {"LongName": "Folds in the ensemble", "Description": "Number of fold students averaged."},
    "model_id": {"LongName": "Model identifier",
                 "Description": "sha256 of the model bundle's manifest (which lists the sha256 of every bundle file)."},
    "testing_only": {"LongName": "Testing-only model",
                     "Description": "true when the bundle uses the random 'tiny' backbone: the prediction is "
                                    "MEANINGLESS and exists only to test the software.",
                     "Levels": {"true": "testing-only model", "false": "real model"}},
}
"""JSON data dictionary of the predictions tables (per session and gathered)."""


@dataclass(frozen=True)
class Prediction:
    """One row of a predictions table: one session and contrast."""

    participant_id: str
    session_id: str | None
    mri_session_id: str | None
    contrast: str
    probability: float
    label: str
    threshold: float
    uncertainty: float
    fold_min: float
    fold_max: float
    positive_folds: int
    n_folds: int
    model_id: str
    testing_only: bool

    def row(self) -> list[str]:
        values = []
        for name in COLUMNS:
            value = getattr(self, name)
            if value is None:
                values.append("n/a")
            elif isinstance(value, bool):
                values.append(str(value).lower())
            elif isinstance(value, float):
                values.append("n/a" if not np.isfinite(value) else f"{value:.6f}")
            else:
                values.append(str(value))
        return values

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Prediction:
        """The inverse of :meth:`row` (a row of :func:`read_table`)."""
        num = lambda v: float("nan") if v == "n/a" else float(v)  # noqa: E731
        ses = lambda v: None if v in (None, "", "n/a") else v  # noqa: E731
        return cls(row["participant_id"], ses(row["session_id"]), ses(row.get("mri_session_id")),
                   row["contrast"], num(row["probability"]), row["label"], num(row["threshold"]),
                   num(row["uncertainty"]), num(row["fold_min"]), num(row["fold_max"]),
                   int(row["positive_folds"]), int(row["n_folds"]), row["model_id"],
                   row.get("testing_only", "false") == "true")


def predictions_path(out_dir: Path, subject: str, session: str | None) -> Path:
    return derivative_path(out_dir, subject, session, "anat", "predictions", ".tsv", desc="amyloid")


def write_table(path: Path, rows: Sequence[Prediction] | Sequence[list[str]]) -> None:
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(r.row() if isinstance(r, Prediction) else r) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a predictions TSV as strings (``n/a`` kept)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def gather_predictions(config: Config) -> Path | None:
    """Rebuild ``group/sub-all_desc-amyloid_predictions.tsv`` from every per-session table.

    Runs under a lock, reads all per-session files (so concurrent array jobs each leave a
    complete table, and the last one sees everybody), sorts rows by participant, session and
    contrast: the result depends only on the per-session files.
    """
    out_dir = Path(config.output_dir)
    target = out_dir / GROUP_TABLE
    with locked(target):
        files = sorted(set(out_dir.glob("sub-*/ses-*/anat/*_desc-amyloid_predictions.tsv"))
                       | set(out_dir.glob("sub-*/anat/*_desc-amyloid_predictions.tsv")))
        rows = []
        for path in files:
            for row in read_table(path):
                rows.append([row.get(c, "n/a") or "n/a" for c in COLUMNS])
        if not rows:
            log.info("no per-session predictions to gather")
            return None
        index = {name: i for i, name in enumerate(COLUMNS)}
        rows.sort(key=lambda r: (r[index["participant_id"]], r[index["session_id"]], r[index["contrast"]]))
        models = sorted({r[index["model_id"]] for r in rows})
        if len(models) > 1:
            log.warning("%s gathers predictions of %d different models: %s", target, len(models),
                        ", ".join(m[:12] for m in models))
        write_table(target, rows)
        atomic_write_json(json_sidecar(target), {
            **COLUMNS,
            "Description": "All per-session amyloid predictions of this output folder, one row per session and "
                           "contrast (rebuilt from the per-session tables after every participant-level run).",
            "ModelIds": models,
            "Sources": [output_uri(p, out_dir) for p in files],
            "GeneratedBy": {"Name": "bids_amyloid", "Version": __version__},
        })
    log.info("%d prediction(s) of %d session file(s) gathered in %s", len(rows), len(files), target)
    return target
