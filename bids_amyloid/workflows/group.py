"""Group level: cross-validated training of the PET+MRI teacher and the MRI-only student.

Reads the slice caches the participant level wrote, trains one model per ``--contrast`` with
subject-level k-fold cross-validation, and writes (rank 0 only, atomically):

- ``models/splits.json``: the subject splits (made once, reused by later runs);
- ``models/``: the model bundle (one contrast), or ``models/<contrast>/`` (several contrasts):
  per-fold students and teachers, thresholds, splits, metrics, training summary, model card;
- ``group/desc-oof_predictions.tsv`` (+ ``.json`` data dictionary): out-of-fold (held-out fold)
  predictions of every labelled session, teacher and student, with the validation threshold;
- ``group/desc-val_predictions.tsv`` (+ ``.json``): the validation predictions thresholds came from;
- ``group/desc-cv_metrics.tsv`` (+ ``.json``): metrics per contrast, model and fold, and pooled,
  calibration before and after;
- ``group/desc-zones_metrics.tsv`` (+ ``.json``): the rule-out / intermediate / rule-in zones;
- ``group/desc-subgroup_metrics.tsv`` (+ ``.json``): metrics per tracer and ``--subgroup-column``;
- ``group/group_report.html``: the group report (``bids_amyloid.report.group``);
- ``logs/group_config.json``: the configuration of the run.

Every fold's thresholds, calibrator and operating points come from its validation part only
(``train.runner``). ``--cv-group-column`` holds out whole groups (leave-site-out, ``train.cv``).
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
from bids_amyloid.config import Config
from bids_amyloid.errors import MissingInputError
from bids_amyloid.workflows.group_tables import METRIC_COLUMNS, PREDICTION_COLUMNS, SUBGROUP_COLUMNS, ZONE_COLUMNS

log = logging.getLogger("bids_amyloid.train")

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
    from bids_amyloid.train.cv import check_class_balance
    from bids_amyloid.train.data import build_samples
    from bids_amyloid.train.distributed import barrier
    from bids_amyloid.train.runner import cross_validate
    from bids_amyloid.models.device import resolve_device
    from bids_amyloid.train.runtime import seed_everything

    start = time.perf_counter()
    layout = Derivatives(config.output_dir)
    labelled = require_labels(discover_sessions(config), config)
    # label problems are cheaper to report than missing caches: check them first
    check_class_balance([s.subject for s in labelled], [s.label for s in labelled], config.train.folds)
    columns = _read_columns(config)
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

    splits = _splits(config, layout, list(sessions.values()), columns, ctx)
    results = {c: cross_validate(samples, splits, config, contrast=c, device=device, ctx=ctx)
               for c, samples in per_contrast.items()}
    status = 0
    if ctx.is_main:
        summary = {"bids_amyloid_version": __version__, "seeds": seeds, "device": str(device),
                   "processes": ctx.world_size, "skipped_sessions": skipped_all,
                   "wall_time_s": round(time.perf_counter() - start, 1)}
        write_outputs(config, splits, per_contrast, results, summary, columns)
        status = _report(config)
    barrier(ctx)
    return status


def _splits(config: Config, layout: Derivatives, samples: list, columns, ctx):
    """The saved splits, or new ones (rank 0), shared with every process; leave-group-out with
    ``--cv-group-column``."""
    from bids_amyloid.train.cv import Splits, load_or_make_splits, subject_groups
    from bids_amyloid.train.distributed import broadcast_object

    group_column, groups = config.train.cv_group_column, None
    if group_column:
        keys = [(s.subject, s.session) for s in samples]
        groups = subject_groups(keys, lambda sub, ses: columns.lookup(group_column, sub, ses), group_column)
    data = None
    if ctx.is_main:
        data = load_or_make_splits(layout.splits, [s.subject for s in samples], [s.label for s in samples],
                                   config.train.folds, config.train.split_seed, groups=groups,
                                   group_column=group_column).to_json()
    return Splits.from_json(broadcast_object(data, ctx), layout.splits)


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


def _read_columns(config: Config):
    """The subgroup and CV-group columns' values (None when no column is asked for)."""
    from bids_amyloid.bids.labels import read_columns

    wanted = list(dict.fromkeys([*config.train.subgroup_columns, *filter(None, [config.train.cv_group_column])]))
    return read_columns(config.bids_dir, wanted, config.labels.labels_file) if wanted else None


def _subgroups(config: Config, oof, columns):
    """The out-of-fold rows with one column per subgroup column (tracer first) and its name list."""
    names = list(dict.fromkeys(["tracer", *config.train.subgroup_columns,
                                *filter(None, [config.train.cv_group_column])]))
    frame = oof[["contrast", "model", "label", "probability", "threshold", "calibrated_probability", "tracer"]].copy()
    for name in names[1:]:
        frame[name] = [columns.lookup(name, sub[len("sub-"):], ses[len("ses-"):] if isinstance(ses, str) else None)
                       for sub, ses in zip(oof.participant_id, oof.session_id)]
    return frame, names


def write_outputs(config: Config, splits, per_contrast: dict, results: dict, summary: dict[str, Any],
                  columns=None) -> None:
    """Predictions, metrics and the model bundle(s) (rank 0)."""
    import pandas as pd

    from bids_amyloid.bids.tables import write_table
    from bids_amyloid.models.bundle_write import save_bundle
    from bids_amyloid.models.weights import encoder_base_state, load_slice_encoder
    from bids_amyloid.train.evaluation import metrics_table, subgroup_table, zone_table

    layout = Derivatives(config.output_dir)
    rows = [dataclasses.asdict(r) for outputs in results.values() for o in outputs for r in o.predictions]
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    for part, path in (("test", layout.oof_predictions), ("val", layout.val_predictions)):
        write_table(path, frame[frame.part == part], PREDICTION_COLUMNS)
    oof, boot = frame[frame.part == "test"], {"n_boot": config.train.bootstrap, "seed": config.seed}
    metrics = metrics_table(oof, **boot)
    write_table(layout.cv_metrics, metrics, METRIC_COLUMNS)
    zones = zone_table(oof, **boot)
    write_table(layout.zone_metrics, zones, ZONE_COLUMNS)
    write_table(layout.subgroup_metrics, subgroup_table(*_subgroups(config, oof, columns), **boot), SUBGROUP_COLUMNS)
    _log_metrics(metrics, zones)

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
                    thresholds=[o.decision.threshold for o in outputs], decisions=[o.decision for o in outputs],
                    splits=splits.to_json(),
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


def _log_metrics(metrics, zones) -> None:
    mean = {(r.contrast, r.model): r for r in metrics[metrics.fold == "mean"].itertuples()}
    pooled_zones = zones[zones.fold == "pooled"].set_index(["contrast", "model", "zone"])
    for row in metrics[metrics.fold == "pooled"].itertuples():
        per_fold = mean[(row.contrast, row.model)]
        log.info("%s %s (out-of-fold, %d sessions): AUC %.3f [%.3f, %.3f] pooled, %.3f +- %.3f per fold; "
                 "sensitivity %.2f, specificity %.2f, F1 %.2f; ECE %.3f -> %.3f calibrated", row.contrast, row.model,
                 row.n, row.auc, row.auc_ci_low, row.auc_ci_high, per_fold.auc, per_fold.auc_fold_sd, row.sensitivity,
                 row.specificity, row.f1, row.ece, row.ece_calibrated)
        z = {name: pooled_zones.loc[(row.contrast, row.model, name)] for name in ("rule-out", "rule-in")
             if (row.contrast, row.model, name) in pooled_zones.index}
        if len(z) == 2:
            log.info("%s %s zones: rule-out %.0f %% of sessions (NPV %.2f), rule-in %.0f %% (PPV %.2f)", row.contrast,
                     row.model, 100 * z["rule-out"].fraction, z["rule-out"].predictive_value,
                     100 * z["rule-in"].fraction, z["rule-in"].predictive_value)
