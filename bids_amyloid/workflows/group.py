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

import dataclasses
import logging
import math
import time
from typing import Any

from bids_amyloid import __version__
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.tables import Column
from bids_amyloid.config import Config
from bids_amyloid.errors import MissingInputError

log = logging.getLogger("bids_amyloid.train")

PREDICTION_COLUMNS: dict[str, Column] = {
    "participant_id": Column("BIDS subject label with 'sub-'", long_name='Participant'),
    "session_id": Column("BIDS session label with 'ses-' (n/a: no sessions)", long_name='Session'),
    "contrast": Column('MRI contrast the model reads', long_name='MRI contrast'),
    "tracer": Column('Tracer family of the PET the teacher read (PiB, florbetapir, ...; n/a for the student)', long_name='PET tracer'),
    "model": Column('Which network predicted', long_name='Model', levels={'teacher': 'PET + MRI teacher', 'student': 'MRI-only student'}),
    "fold": Column('Cross-validation fold whose held-out (or validation) part holds this session', long_name='Fold'),
    "part": Column('Part of the fold', long_name='Part', levels={'test': 'held-out fold', 'val': 'validation part of the training folds'}),
    "label": Column('Reference label', long_name='Amyloid status', levels={'0': 'negative', '1': 'positive'}),
    "centiloid": Column('Reference Centiloid value (n/a: a ready status column was used)', long_name='Centiloid'),
    "probability": Column('Predicted probability of amyloid positivity', long_name='Probability'),
    "threshold": Column("Decision threshold chosen on the fold's VALIDATION data", long_name='Threshold'),
    "prediction": Column('1 when probability >= threshold', long_name='Prediction', levels={'0': 'negative', '1': 'positive'}),
}

METRIC_COLUMNS: dict[str, Column] = {
    "contrast": Column('MRI contrast'),
    "model": Column('teacher (PET + MRI) or student (MRI only)'),
    "fold": Column("fold index; 'pooled' (all out-of-fold predictions, each with its own fold's threshold); 'mean' (the fold rows averaged: each fold's model ranks its own held-out subjects)"),
    "n": Column('sessions'),
    "n_positive": Column('amyloid-positive sessions'),
    "auc": Column('ROC AUC'),
    "auc_ci_low": Column('bootstrap 95% CI of the AUC, lower bound'),
    "auc_ci_high": Column('bootstrap 95% CI, upper bound'),
    "threshold": Column('validation threshold (n/a when pooled over folds)'),
    "sensitivity": Column('TP / (TP + FN)'),
    "specificity": Column('TN / (TN + FP)'),
    "ppv": Column('TP / (TP + FP)'),
    "npv": Column('TN / (TN + FN)'),
    "f1": Column('F1 score'),
    "balanced_accuracy": Column('(sensitivity + specificity) / 2'),
    "accuracy": Column('(TP + TN) / n'),
    "ece": Column('expected calibration error, 10 equal-width bins'),
    "brier": Column('Brier score'),
    "auc_fold_sd": Column("standard deviation of the fold AUCs (row 'mean' only)"),
}


def run_group(config: Config) -> int:
    """Train and evaluate; return the exit code (0). Errors are raised as BidsAmyloidError."""
    from bids_amyloid.train.distributed import init_distributed, shutdown

    config.validate()  # a Config built in code is checked like the command line's
    ctx = init_distributed(config.device)
    try:
        return _run(config, ctx)
    finally:
        shutdown(ctx)


def _run(config: Config, ctx) -> int:
    from bids_amyloid.bids.dataset import init_output_dir, write_run_config
    from bids_amyloid.bids.layout import discover_sessions, require_labels
    from bids_amyloid.train.cv import Splits, check_class_balance, load_or_make_splits
    from bids_amyloid.train.data import build_samples
    from bids_amyloid.train.distributed import barrier, broadcast_object
    from bids_amyloid.train.runner import cross_validate
    from bids_amyloid.models.device import resolve_device
    from bids_amyloid.train.runtime import seed_everything

    start = time.perf_counter()
    layout = Derivatives(config.output_dir)
    labelled = require_labels(discover_sessions(config), config)
    # label problems are cheaper to report than missing caches: check them first
    check_class_balance([s.subject for s in labelled], [s.label for s in labelled], config.train.folds)
    if ctx.is_main:
        init_output_dir(layout.root, config.bids_dir)
        write_run_config(config, layout.run_config("group"))
    seeds = seed_everything(config.seed)
    device = resolve_device(config.device, ctx.local_rank if ctx.active else None, purpose="training")
    if config.model.backbone == "tiny":
        log.warning("backbone 'tiny': random weights, TESTING ONLY -- the models are meaningless")

    per_contrast, skipped_all = {}, {}
    for contrast in config.contrasts:
        samples, skipped = build_samples(labelled, layout, contrast)
        skipped_all[contrast] = dict(skipped)
        for reason, count in sorted(skipped.items()):
            log.info("%s: %d labelled session(s): %s", contrast, count, reason)
        if samples:
            per_contrast[contrast] = samples
        else:
            log.warning("%s: no labelled session has a slice cache; contrast skipped", contrast)
    if not per_contrast:
        raise MissingInputError(f"none of the {len(labelled)} labelled sessions has a slice cache in {layout.root} for "
                                f"{config.contrasts}; run the participant level first")
    sessions = {s.key: s for samples in per_contrast.values() for s in samples}
    subjects, labels = [s.subject for s in sessions.values()], [s.label for s in sessions.values()]
    log.info("%d labelled session(s) of %d subject(s) (%d positive) for training", len(sessions),
             len(set(subjects)), sum(labels))

    splits_path = layout.splits
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
                  type(exc).__name__, exc, config.output_dir, exc_info=bool(config.verbose))
        return 1
    return 0


def write_outputs(config: Config, splits, per_contrast: dict, results: dict, summary: dict[str, Any]) -> None:
    """Predictions, metrics and the model bundle(s) (rank 0)."""
    import pandas as pd

    from bids_amyloid.bids.tables import write_table
    from bids_amyloid.models.bundle_write import save_bundle
    from bids_amyloid.models.weights import encoder_base_state, load_slice_encoder
    from bids_amyloid.train.metrics import metrics_table

    layout = Derivatives(config.output_dir)
    rows = [dataclasses.asdict(r) for outputs in results.values() for o in outputs for r in o.predictions]
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    for part, path in (("test", layout.oof_predictions), ("val", layout.val_predictions)):
        write_table(path, frame[frame.part == part], PREDICTION_COLUMNS)
    metrics = metrics_table(frame[frame.part == "test"], n_boot=config.train.bootstrap, seed=config.seed)
    write_table(layout.cv_metrics, metrics, METRIC_COLUMNS)
    _log_metrics(metrics)

    base = encoder_base_state(load_slice_encoder(config.model.backbone, config.model.backbone_weights))
    for contrast, outputs in results.items():
        contrast_metrics = metrics[metrics.contrast == contrast].to_dict(orient="records")
        weak = [o.fold for o in outputs if o.summary.teacher_weak]
        training = {**summary, "contrast": contrast, "n_samples": len(per_contrast[contrast]),
                    "ablations": {k: getattr(config.train, k) for k in
                                  ("phase0", "triplet", "distill", "feature_kd", "logit_kd", "negatives", "augment")},
                    "recipe": dataclasses.asdict(config.train.recipe),
                    "weak_teacher_folds": weak, "folds": [dataclasses.asdict(o.summary) for o in outputs]}
        has_teacher = all(o.teacher_state is not None for o in outputs)
        save_bundle(layout.bundle_dir(contrast, len(results)), config=config, students=[o.student_state for o in outputs],
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
