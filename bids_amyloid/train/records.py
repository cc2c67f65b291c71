"""What cross-validation produces per fold (``train.runner``) for the group level to write:
prediction rows, phase and fold summaries, the fold's trained tensors and decision rule."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from bids_amyloid.models.calibration import FoldDecision

@dataclass(frozen=True)
class PredictionRow:
    """One row of the out-of-fold / validation predictions tables (``workflows.group``)."""

    participant_id: str
    session_id: str | None
    contrast: str
    tracer: str | None
    model: str
    fold: int
    part: str
    label: int
    centiloid: float | None
    probability: float
    threshold: float
    prediction: int
    calibrated_probability: float
    rule_out_threshold: float | None
    rule_in_threshold: float | None
    zone: str


@dataclass
class PhaseSummary:
    phase: str
    epochs: int
    best_epoch: int
    best_score: list[float]
    history: list[dict[str, Any]]


@dataclass
class FoldSummary:
    """What happened in one fold (the bundle's training_summary.json lists one per fold)."""

    fold: int
    n_sessions: dict[str, int]
    teacher_phases: list[PhaseSummary] = field(default_factory=list)
    negative_rules: dict[str, int] | None = None
    teacher_val_auc: float | None = None
    teacher_weak: bool = False
    student_phase: PhaseSummary | None = None
    student_decision: dict[str, Any] | None = None
    teacher_decision: dict[str, Any] | None = None
    """Thresholds, calibrator and operating points (``FoldDecision.to_json()``)."""


@dataclass
class FoldOutput:
    fold: int
    student_state: dict[str, torch.Tensor]
    """Trainable tensors of the student (``AmyloidNet.trainable_state_dict()``)."""
    student_decision: dict[str, Any]
    """``FoldDecision.to_json()``: threshold, calibrator, rule-out / rule-in thresholds."""
    teacher_state: dict[str, torch.Tensor] | None = None
    teacher_decision: dict[str, Any] | None = None
    predictions: list[PredictionRow] = field(default_factory=list)
    """One row per (model, sample) of the validation and test parts."""
    summary: FoldSummary | None = None

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> FoldOutput:
        """The inverse of ``dataclasses.asdict`` (a finished fold saved in the work dir)."""
        summary = dict(data["summary"])
        summary["teacher_phases"] = [PhaseSummary(**p) for p in summary["teacher_phases"]]
        if summary["student_phase"] is not None:
            summary["student_phase"] = PhaseSummary(**summary["student_phase"])
        return cls(**{**data, "predictions": [PredictionRow(**r) for r in data["predictions"]],
                      "summary": FoldSummary(**summary)})

    @property
    def decision(self) -> FoldDecision:
        """The student's decision rule (what the bundle stores for this fold)."""
        return FoldDecision.from_json(self.student_decision)
