"""The predictions tables: their columns (with the JSON data dictionary), :class:`Prediction`
(one row), the per-session TSV and the group TSV that :func:`gather_predictions` rebuilds.

Per session one row per contrast (written by :func:`bids_amyloid.infer.predict.predict_session`),
and the gathered table of every session; their names: ``bids.derivatives``.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bids_amyloid import __version__
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.io import locked
from bids_amyloid.bids.names import output_uri
from bids_amyloid.bids.tables import Column, read_rows, write_table
from bids_amyloid.config import Config

log = logging.getLogger("bids_amyloid.infer")

PREDICTIONS: dict[str, Column] = {
    "participant_id": Column("BIDS subject label with 'sub-'.", long_name='Participant identifier'),
    "session_id": Column("BIDS session label with 'ses-'; n/a for a dataset without sessions.", long_name='Session identifier'),
    "mri_session_id": Column("Session whose MRI the prediction used (differs from session_id when a PET-only session borrows the subject's MRI from another session).", long_name='MRI session used'),
    "contrast": Column('BIDS suffix of the MRI the prediction used.', long_name='MRI contrast', levels={'T1w': 'T1-weighted', 'T2w': 'T2-weighted', 'FLAIR': 'FLAIR', 'T2starw': 'T2*-weighted'}),
    "probability": Column("Ensemble of the cross-validation folds' MRI-only students: with a calibrated bundle the mean of the folds' calibrated probabilities (each fold calibrated on its own validation part); otherwise each fold's sigmoid output aligned at its own threshold, averaged on the logit scale (estimated probability that Centiloid exceeds the training cut-off).", long_name='Probability of amyloid-beta positivity', units='probability (0-1)'),
    "label": Column('positive when probability >= threshold, else negative.', long_name='Predicted amyloid status', levels={'positive': 'predicted amyloid-beta positive', 'negative': 'predicted amyloid-beta negative'}),
    "zone": Column("Operating zone of the probability: below rule_out_threshold, from rule_in_threshold on, or between (n/a: the bundle predates calibration, or a fold has no operating points).", long_name='Operating zone', levels={'rule-out': 'below the rule-out threshold: amyloid-beta negative at the validation NPV; PET could be spared', 'intermediate': 'between the thresholds: uncertain, refer for amyloid PET or a blood test', 'rule-in': 'from the rule-in threshold on: likely amyloid-beta positive; confirm before acting', 'n/a': 'zones unavailable for this model'}),
    "threshold": Column("Mean of the per-fold thresholds chosen on each fold's VALIDATION data at training time (never on test data), mapped by each fold's calibrator when the bundle is calibrated.", long_name='Decision threshold', units='probability (0-1)'),
    "rule_out_threshold": Column("Mean of the per-fold rule-out thresholds: each keeps the training's target sensitivity (--rule-out-sensitivity) on its fold's validation data (n/a: unavailable).", long_name='Rule-out threshold', units='probability (0-1)'),
    "rule_in_threshold": Column("Mean of the per-fold rule-in thresholds: each keeps the training's target specificity (--rule-in-specificity) on its fold's validation data (n/a: unavailable).", long_name='Rule-in threshold', units='probability (0-1)'),
    "uncertainty": Column("Population standard deviation of the fold probabilities, each calibrated (or, without calibration, aligned at its own fold's threshold: logit p - logit t_fold + logit threshold).", long_name='Ensemble disagreement', units='probability (0-1)'),
    "fold_min": Column('Minimum over folds of the calibrated (or aligned) probability.', long_name='Lowest fold probability', units='probability (0-1)'),
    "fold_max": Column('Maximum over folds of the calibrated (or aligned) probability.', long_name='Highest fold probability', units='probability (0-1)'),
    "positive_folds": Column("Number of folds whose probability reaches their own threshold (majority vote for reference; label uses the ensemble's mean aligned logit).", long_name='Folds voting positive'),
    "n_folds": Column('Number of fold students averaged.', long_name='Folds in the ensemble'),
    "calibrated": Column("true when every fold's probability was calibrated (bundle format >= 1.1 trained with calibration).", long_name='Calibrated probability', levels={'true': 'calibrated', 'false': 'not calibrated (aligned at the fold thresholds)'}),
    "model_id": Column("sha256 of the model bundle's manifest (which lists the sha256 of every bundle file).", long_name='Model identifier'),
    "testing_only": Column("true when the bundle uses the random 'tiny' backbone: the prediction is MEANINGLESS and exists only to test the software.", long_name='Testing-only model', levels={'true': 'testing-only model', 'false': 'real model'}),
}
"""Schema of the predictions tables (per session and gathered)."""


@dataclass(frozen=True)
class Prediction:
    """One row of a predictions table: one session and contrast."""

    participant_id: str
    session_id: str | None
    mri_session_id: str | None
    contrast: str
    probability: float
    label: str
    zone: str
    threshold: float
    rule_out_threshold: float | None
    rule_in_threshold: float | None
    uncertainty: float
    fold_min: float
    fold_max: float
    positive_folds: int
    n_folds: int
    calibrated: bool
    model_id: str
    testing_only: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Prediction:
        """A row of :func:`read_predictions` (n/a values as None or NaN; columns an older version did
        not write: zone 'n/a', no operating points, not calibrated)."""
        text = lambda v: None if v is None or v != v else str(v)  # noqa: E731
        number = lambda v: None if v is None or v != v else float(v)  # noqa: E731
        return cls(row["participant_id"], text(row["session_id"]), text(row.get("mri_session_id")), row["contrast"],
                   float(row["probability"]), row["label"], text(row.get("zone")) or "n/a", float(row["threshold"]),
                   number(row.get("rule_out_threshold")), number(row.get("rule_in_threshold")),
                   float(row["uncertainty"]), float(row["fold_min"]), float(row["fold_max"]),
                   int(row["positive_folds"]), int(row["n_folds"]), bool(row.get("calibrated", False)),
                   row["model_id"], bool(row.get("testing_only", False)))


def write_predictions(path: Path, predictions: Sequence[Prediction] | Sequence[dict[str, Any]],
                      sidecar: dict[str, Any]) -> Path:
    rows = [dataclasses.asdict(p) if isinstance(p, Prediction) else p for p in predictions]
    return write_table(path, rows, PREDICTIONS, sidecar)


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """Rows of a predictions table (n/a as None; testing_only and calibrated as bools)."""
    rows = read_rows(path, text=("participant_id", "session_id", "mri_session_id", "model_id", "label", "zone"))
    for row in rows:
        row["testing_only"] = str(row.get("testing_only")).lower() == "true"
        row["calibrated"] = str(row.get("calibrated")).lower() == "true"
        row["zone"] = row.get("zone") or "n/a"
    return rows


def gather_predictions(config: Config) -> Path | None:
    """Rebuild the gathered table (``Derivatives.all_predictions``) from every per-session table.

    Runs under a lock and reads all per-session files (so concurrent array jobs each leave a
    complete table, and the last one sees everybody); rows sorted by participant, session and
    contrast: the result depends only on the per-session files.
    """
    layout = Derivatives(config.output_dir)
    target = layout.all_predictions
    with locked(target):
        files = layout.session_predictions()
        rows = [row for path in files for row in read_predictions(path)]
        if not rows:
            log.info("no per-session predictions to gather")
            return None
        rows.sort(key=lambda r: (r["participant_id"], r["session_id"] or "", r["contrast"]))
        models = sorted({r["model_id"] for r in rows})
        if len(models) > 1:
            log.warning("%s gathers predictions of %d different models: %s", target, len(models),
                        ", ".join(m[:12] for m in models))
        write_predictions(target, rows, {
            "Description": "All per-session amyloid predictions of this output folder, one row per session and "
                           "contrast (rebuilt from the per-session tables after every participant-level run).",
            "ModelIds": models, "Sources": [output_uri(p, layout.root) for p in files],
            "GeneratedBy": {"Name": "bids_amyloid", "Version": __version__}})
    log.info("%d prediction(s) of %d session file(s) gathered in %s", len(rows), len(files), target)
    return target
