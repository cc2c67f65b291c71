"""Group level: cross-validated training of the PET+MRI teacher and the MRI-only student.

Reads the slice caches the participant level wrote, trains one model per ``--contrast`` with
subject-level k-fold cross-validation, and writes (rank 0 only, atomically):

- ``models/splits.json``: the subject splits (made once, reused by later runs);
- ``models/``: the model bundle (one contrast), or ``models/<contrast>/`` (several contrasts):
  per-fold students and teachers, thresholds, splits, metrics, training summary, model card;
- ``group/desc-oof_predictions.tsv`` (+ ``.json`` data dictionary): out-of-fold (held-out fold)
  predictions of every labelled session, teacher and student, with the validation threshold;
- ``group/desc-val_predictions.tsv`` (+ ``.json``): the validation predictions thresholds came from;
- ``group/desc-cv_metrics.tsv`` (+ ``.json``): metrics per contrast, model and fold, and pooled;
- ``group/group_report.html``: the group report (``bids_amyloid.report.group``);
- ``logs/group_config.json``: the configuration of the run.

Sessions without the contrast or without its slice cache are skipped (counted in the log).
Sessions without a PET slice cache train the student (labels only) but not the teacher.
``--resume`` reuses finished folds and continues an interrupted phase from its checkpoint.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from bids_amyloid import __version__
from bids_amyloid.config import Config, save_config
from bids_amyloid.errors import MissingInputError, UsageError

log = logging.getLogger("bids_amyloid.train")

PREDICTION_COLUMNS = {
    "participant_id": ("Participant", "BIDS subject label with 'sub-'", None),
    "session_id": ("Session", "BIDS session label with 'ses-' (n/a: no sessions)", None),
    "contrast": ("MRI contrast", "MRI contrast the model reads", None),
    "tracer": ("PET tracer", "Tracer family of the PET the teacher read (PiB, florbetapir, ...; n/a for the student)", None),
    "model": ("Model", "Which network predicted", {"teacher": "PET + MRI teacher", "student": "MRI-only student"}),
    "fold": ("Fold", "Cross-validation fold whose held-out (or validation) part holds this session", None),
    "part": ("Part", "Part of the fold", {"test": "held-out fold", "val": "validation part of the training folds"}),
    "label": ("Amyloid status", "Reference label", {"0": "negative", "1": "positive"}),
    "centiloid": ("Centiloid", "Reference Centiloid value (n/a: a ready status column was used)", None),
    "probability": ("Probability", "Predicted probability of amyloid positivity", None),
    "threshold": ("Threshold", "Decision threshold chosen on the fold's VALIDATION data", None),
    "prediction": ("Prediction", "1 when probability >= threshold", {"0": "negative", "1": "positive"}),
}
METRIC_DESCRIPTIONS = {
    "contrast": "MRI contrast", "model": "teacher (PET + MRI) or student (MRI only)",
    "fold": "fold index; 'pooled' (all out-of-fold predictions, each with its own fold's threshold); 'mean' "
            "(the fold rows averaged: each fold's model ranks its own held-out subjects)",
    "n": "sessions", "n_positive": "amyloid-positive sessions", "auc": "ROC AUC",
    "auc_ci_low": "bootstrap 95% CI of the AUC, lower bound", "auc_ci_high": "bootstrap 95% CI, upper bound",
    "threshold": "validation threshold (n/a when pooled over folds)", "sensitivity": "TP / (TP + FN)",
    "specificity": "TN / (TN + FP)", "ppv": "TP / (TP + FP)", "npv": "TN / (TN + FN)", "f1": "F1 score",
    "balanced_accuracy": "(sensitivity + specificity) / 2", "accuracy": "(TP + TN) / n",
    "ece": "expected calibration error, 10 equal-width bins", "brier": "Brier score",
    "auc_fold_sd": "standard deviation of the fold AUCs (row 'mean' only)",
}


def check_train_config(config: Config) -> None:
    """Combinations argparse cannot check (UsageError naming the setting)."""
    t = config.train
    if t.monitor not in ("f1", "auc"):
        raise UsageError(f"unknown validation monitor {t.monitor!r}; use 'f1' or 'auc'")
    if t.distill and not (t.phase0 or t.triplet):
        raise UsageError("distillation needs a trained teacher: keep phase 0 or the triplet phase, "
                         "or train a label-only student (--no-distill)")
    if min(t.batch_size, t.student_batch_size, t.effective_batch) < 1 or t.workers < 0:
        raise UsageError("batch sizes must be >= 1 and workers >= 0")
    if min(t.phase0_epochs, t.phase1_epochs, t.phase2_epochs) < 0 or min(
            t.phase0_patience, t.phase1_patience, t.phase2_patience) < 1:
        raise UsageError("epochs must be >= 0 and patience >= 1")
    if t.phase2_epochs < 1:
        raise UsageError("the student needs at least one phase-2 epoch")
    if t.negative_min_delta < 0 or any(v < 0 for v in t.negative_fallbacks):
        raise UsageError("Centiloid differences for negatives must be >= 0")


def run_group(config: Config) -> int:
    """Train and evaluate; return the exit code (0). Errors are raised as BidsAmyloidError."""
    from bids_amyloid.train.distributed import init_distributed, shutdown

    check_train_config(config)
    ctx = init_distributed(config.device)
    try:
        return _run(config, ctx)
    finally:
        shutdown(ctx)


def _run(config: Config, ctx) -> int:
    from bids_amyloid.bids.derivatives import init_output_dir
    from bids_amyloid.bids.layout import discover_sessions, require_labels
    from bids_amyloid.train.cv import Splits, check_class_balance, load_or_make_splits
    from bids_amyloid.train.data import build_samples
    from bids_amyloid.train.distributed import barrier, broadcast_object
    from bids_amyloid.train.runner import cross_validate
    from bids_amyloid.train.runtime import resolve_device, seed_everything

    start = time.perf_counter()
    out = Path(config.output_dir)
    labelled = require_labels(discover_sessions(config), config)
    # label problems are cheaper to report than missing caches: check them first
    check_class_balance([s.subject for s in labelled], [s.label for s in labelled], config.train.folds)
    if ctx.is_main:
        init_output_dir(out, config.bids_dir)
        save_config(config, out / "logs" / "group_config.json")
    seeds = seed_everything(config.seed)
    device = resolve_device(config.device, ctx.local_rank if ctx.active else None)
    if config.model.backbone == "tiny":
        log.warning("backbone 'tiny': random weights, TESTING ONLY -- the models are meaningless")

    per_contrast, skipped_all = {}, {}
    for contrast in config.contrasts:
        samples, skipped = build_samples(labelled, out, contrast)
        skipped_all[contrast] = dict(skipped)
        for reason, count in sorted(skipped.items()):
            log.info("%s: %d labelled session(s): %s", contrast, count, reason)
        if samples:
            per_contrast[contrast] = samples
        else:
            log.warning("%s: no labelled session has a slice cache; contrast skipped", contrast)
    if not per_contrast:
        raise MissingInputError(f"none of the {len(labelled)} labelled sessions has a slice cache in {out} for "
                                f"{config.contrasts}; run the participant level first")
    sessions = {s.key: s for samples in per_contrast.values() for s in samples}
    subjects, labels = [s.subject for s in sessions.values()], [s.label for s in sessions.values()]
    log.info("%d labelled session(s) of %d subject(s) (%d positive) for training", len(sessions),
             len(set(subjects)), sum(labels))

    splits_path = out / "models" / "splits.json"
    data = None
    if ctx.is_main:
        data = load_or_make_splits(splits_path, subjects, labels, config.train.folds, config.train.split_seed).to_json()
    splits = Splits.from_json(broadcast_object(data, ctx), splits_path)

    results = {c: cross_validate(samples, splits, config, contrast=c, device=device, ctx=ctx)
               for c, samples in per_contrast.items()}
    status = 0
    if ctx.is_main:
        summary = {"bids_amyloid_version": __version__, "seeds": seeds, "device": str(device),
                   "processes": ctx.world_size, "skipped_sessions": skipped_all,
                   "wall_time_s": round(time.perf_counter() - start, 1)}
        write_outputs(config, splits, per_contrast, results, summary)
        status = _report(config)
    barrier(ctx)
    return status


def _report(config: Config) -> int:
    """The HTML group report; its failure does not undo the (complete) models and tables."""
    from bids_amyloid.report.group import write_group_report

    try:
        write_group_report(config)
    except Exception as exc:  # a figure bug must not hide that training succeeded
        log.error("the group report failed (%s: %s); the models and tables in %s are complete",
                  type(exc).__name__, exc, config.output_dir)
        return 1
    return 0


def _tsv(frame, path: Path, columns: dict[str, Any]) -> None:
    from bids_amyloid.bids.io import atomic_write_json, write_with

    write_with(path, lambda tmp: frame.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.6g"))
    atomic_write_json(path.with_suffix(".json"), columns)


def _dictionary(columns: dict[str, tuple]) -> dict[str, Any]:
    out = {}
    for name, (long_name, description, levels) in columns.items():
        out[name] = {"LongName": long_name, "Description": description}
        if levels:
            out[name]["Levels"] = levels
    return out


def write_outputs(config: Config, splits, per_contrast: dict, results: dict, summary: dict[str, Any]) -> None:
    """Predictions, metrics and the model bundle(s) (rank 0)."""
    import pandas as pd

    from bids_amyloid.models.bundle_write import save_bundle
    from bids_amyloid.models.weights import encoder_base_state, load_slice_encoder
    from bids_amyloid.train.metrics import metrics_table
    from bids_amyloid.train.phases import PHASE0, PHASE1, PHASE2, STUDENT_DROPOUTS

    out = Path(config.output_dir)
    rows = [r for outputs in results.values() for o in outputs for r in o.predictions]
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    for part, name in (("test", "oof"), ("val", "val")):
        _tsv(frame[frame.part == part], out / "group" / f"desc-{name}_predictions.tsv", _dictionary(PREDICTION_COLUMNS))
    metrics = metrics_table(frame[frame.part == "test"], n_boot=config.train.bootstrap, seed=config.seed)
    _tsv(metrics, out / "group" / "desc-cv_metrics.tsv",
         {k: {"Description": v} for k, v in METRIC_DESCRIPTIONS.items()})
    _log_metrics(metrics)

    base = encoder_base_state(load_slice_encoder(config.model.backbone, config.model.backbone_weights))
    for contrast, outputs in results.items():
        contrast_metrics = metrics[metrics.contrast == contrast].to_dict(orient="records")
        weak = [o.fold for o in outputs if o.summary.get("teacher_weak")]
        training = {**summary, "contrast": contrast, "n_samples": len(per_contrast[contrast]),
                    "ablations": {k: getattr(config.train, k) for k in
                                  ("phase0", "triplet", "distill", "feature_kd", "logit_kd", "negatives", "augment")},
                    "recipe": {"phase0": PHASE0, "phase1": PHASE1, "phase2": PHASE2,
                               "student_dropouts": STUDENT_DROPOUTS},
                    "weak_teacher_folds": weak, "folds": [o.summary for o in outputs]}
        has_teacher = all(o.teacher_state is not None for o in outputs)
        dest = out / "models" if len(results) == 1 else out / "models" / contrast
        save_bundle(dest, config=config, students=[o.student_state for o in outputs],
                    teachers=[o.teacher_state for o in outputs] if has_teacher else None,
                    thresholds=[o.student_threshold for o in outputs], splits=splits.to_json(),
                    metrics=_nan_to_none(contrast_metrics), training_summary=_nan_to_none(training),
                    fold_ids=[o.fold for o in outputs], backbone_state=base)
        if weak:
            log.warning("%s: the teacher was near chance in fold(s) %s (see training_summary.json)", contrast, weak)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def _log_metrics(metrics) -> None:
    mean = {(r.contrast, r.model): r for r in metrics[metrics.fold == "mean"].itertuples()}
    for row in metrics[metrics.fold == "pooled"].itertuples():
        per_fold = mean[(row.contrast, row.model)]
        log.info("%s %s (out-of-fold, %d sessions): AUC %.3f [%.3f, %.3f] pooled, %.3f +- %.3f per fold; "
                 "sensitivity %.2f, specificity %.2f, F1 %.2f", row.contrast, row.model, row.n, row.auc,
                 row.auc_ci_low, row.auc_ci_high, per_fold.auc, per_fold.auc_fold_sd, row.sensitivity,
                 row.specificity, row.f1)
