"""Group report ``OUT/group/group_report.html`` after the group level: out-of-fold ROC with
bootstrap bands per contrast, calibration before and after each fold's calibrator, confusion
matrices at the validation thresholds, the rule-out / rule-in zones, the metrics table, the
subgroup metrics and, when present, an ablation table.

It reads what ``workflows/group.py`` writes (and tolerates what is missing, saying so):

* ``group/desc-oof_predictions.tsv``: out-of-fold predictions (columns ``contrast``, ``model``,
  ``label``, ``probability``, ``threshold``, ``prediction``; ``part`` == 'test' rows are used);
* ``group/desc-cv_metrics.tsv``: metrics per contrast, model and fold (``fold`` 'pooled' =
  all out-of-fold predictions);
* ``group/desc-zones_metrics.tsv`` and ``group/desc-subgroup_metrics.tsv``: zones and subgroups;
* ``group/*ablation*.tsv``: any ablation comparison table, shown as it is;
* ``models/[<contrast>/]bundle.json`` + ``training_summary.json``: bundle ids, testing-only flag,
  the ablation settings of this run; ``logs/group_config.json``: the configuration.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bids_amyloid import __version__
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.io import sha256_file
from bids_amyloid.bids.tables import cell, read_rows
from bids_amyloid.config import Config
from bids_amyloid.report import figures
from bids_amyloid.report import html as H

log = logging.getLogger("bids_amyloid.report")

METRIC_SHOWN = ["contrast", "model", "n", "n_positive", "auc", "auc_ci_low", "auc_ci_high", "sensitivity",
                "specificity", "ppv", "npv", "f1", "balanced_accuracy", "ece", "ece_calibrated", "brier",
                "brier_calibrated"]
METRIC_HEADERS = {"n_positive": "positive", "auc_ci_low": "AUC CI low", "auc_ci_high": "AUC CI high",
                  "balanced_accuracy": "bal. acc.", "auc": "AUC", "ppv": "PPV", "npv": "NPV", "f1": "F1",
                  "ece": "ECE", "brier": "Brier", "auc_fold_sd": "AUC SD (folds)",
                  "ece_calibrated": "ECE calibrated", "brier_calibrated": "Brier calibrated"}
ZONE_SHOWN = ["contrast", "model", "zone", "n", "fraction", "fraction_ci_low", "fraction_ci_high",
              "predictive_value", "predictive_value_ci_low", "predictive_value_ci_high", "share_of_positives",
              "share_of_negatives"]
ZONE_HEADERS = {"fraction": "share of sessions", "fraction_ci_low": "CI low", "fraction_ci_high": "CI high",
                "predictive_value": "NPV / PPV", "predictive_value_ci_low": "CI low",
                "predictive_value_ci_high": "CI high", "share_of_positives": "of all positives",
                "share_of_negatives": "of all negatives"}
SUBGROUP_SHOWN = ["contrast", "model", "subgroup_column", "subgroup", "n", "n_positive", "auc", "auc_ci_low",
                  "auc_ci_high", "sensitivity", "specificity", "ece_calibrated"]


def _read_tsv(path: Path) -> list[dict[str, str]]:
    """Rows with every value as its text (the report formats numbers itself)."""
    return [{k: cell(v) for k, v in row.items()} for row in read_rows(path, text=("fold",))]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _number(value: str | None) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def oof_curves(rows: list[dict[str, str]]) -> dict[str, dict[str, list]]:
    """'<contrast> <model>' -> {'y', 'p', 'pred'} from the held-out rows (n/a values dropped)."""
    curves: dict[str, dict[str, list]] = defaultdict(lambda: {"y": [], "p": [], "pred": [], "q": []})
    for row in rows:
        if row.get("part", "test") != "test":
            continue
        y, p = _number(row.get("label")), _number(row.get("probability"))
        if y is None or p is None:
            continue
        t = _number(row.get("threshold"))
        pred = _number(row.get("prediction"))
        if pred is None:
            pred = float(p >= t) if t is not None else None
        key = f"{row.get('contrast', '?')} {row.get('model', 'student')}".strip()
        curves[key]["y"].append(int(y))
        curves[key]["p"].append(p)
        curves[key]["pred"].append(None if pred is None else int(pred))
        curves[key]["q"].append(_number(row.get("calibrated_probability")))
    # students first, then teachers
    return dict(sorted(curves.items(), key=lambda kv: (not kv[0].endswith("student"), kv[0])))


def _bundles(layout: Derivatives) -> list[dict[str, Any]]:
    found = []
    for folder in layout.bundles():
        meta_path = folder / "bundle.json"
        meta = _read_json(meta_path) or {}
        summary = _read_json(meta_path.parent / "training_summary.json") or {}
        manifest = meta_path.parent / "manifest.json"
        found.append({"path": meta_path.parent, "meta": meta, "summary": summary,
                      "model_id": sha256_file(manifest) if manifest.is_file() else "n/a"})
    return found


def _auc_ci(layout: Derivatives) -> dict[str, tuple[float, float, float]]:
    """'<contrast> <model>' -> (AUC, CI low, CI high) of the pooled rows of the metrics table."""
    if not layout.cv_metrics.is_file():
        return {}
    value = lambda text: float("nan") if _number(text) is None else _number(text)  # noqa: E731
    return {f"{r['contrast']} {r['model']}": (value(r["auc"]), value(r["auc_ci_low"]), value(r["auc_ci_high"]))
            for r in _read_tsv(layout.cv_metrics) if r.get("fold") == "pooled"}


def _evaluation(layout: Derivatives, config: Config) -> tuple[list[str], list[tuple[str, str]]]:
    body, nav = [], []
    oof_path = layout.oof_predictions
    if not oof_path.is_file():
        body.append(H.section("Out-of-fold evaluation", H.note(f"{oof_path.name} not found: no group-level results "
                                                               "yet."), "evaluation"))
        return body, [("Evaluation", "evaluation")]
    curves = oof_curves(_read_tsv(oof_path))
    usable = {k: (v["y"], v["p"]) for k, v in curves.items() if len(set(v["y"])) == 2}
    parts = [H.note("Each session is predicted by the fold model that never saw its subject (held-out fold); "
                    "thresholds were chosen on each fold's validation part, never on the held-out fold. "
                    f"Bands: 95 % percentile bootstrap over sessions ({config.train.bootstrap} resamples); the AUC "
                    "confidence intervals are those of the metrics table (subjects resampled, each with all its "
                    "sessions).")]
    if usable:
        parts.append('<div class="grid">')
        parts.append(H.figure(figures.roc_figure(usable, seed=config.seed, n_boot=config.train.bootstrap,
                                                 auc_ci=_auc_ci(layout)), "ROC of the out-of-fold predictions per "
                              "contrast and model, with 95 % bootstrap bands and AUC [95 % CI]."))
        parts.append(H.figure(figures.calibration_figure(usable, title="Before calibration (out of fold)"),
                              "Calibration of the models' own probabilities: observed fraction of amyloid-positive "
                              "sessions per predicted-probability bin (10 equal-width bins); below, sessions per bin."))
        calibrated = {k: (curves[k]["y"], curves[k]["q"]) for k in usable if None not in curves[k]["q"]}
        if calibrated:
            parts.append(H.figure(figures.calibration_figure(calibrated, title="After calibration (out of fold)"),
                                  "The same sessions after calibration: each fold's calibrator was fitted on its own "
                                  "validation part and applied to its held-out fold."))
        parts.append("</div>")
    else:
        parts.append(H.note("Both classes are needed for ROC and calibration; the held-out predictions have one."))
    confusion = [H.figure(figures.confusion_figure(v["y"], v["pred"], k), f"{k}: confusion matrix at the "
                          "validation-chosen threshold of each fold.")
                 for k, v in curves.items() if v["y"] and None not in v["pred"]]
    if confusion:
        parts += ["<h3>Confusion matrices</h3>", '<div class="grid">', *confusion, "</div>"]
    body.append(H.section("Out-of-fold evaluation", "\n".join(parts), "evaluation"))
    nav.append(("Evaluation", "evaluation"))
    return body, nav


def _metrics(layout: Derivatives) -> tuple[list[str], list[tuple[str, str]]]:
    path = layout.cv_metrics
    if not path.is_file():
        return [H.section("Metrics", H.note(f"{path.name} not found."), "metrics")], [("Metrics", "metrics")]
    rows = _read_tsv(path)
    summary = [r for r in rows if r.get("fold") in ("pooled", "mean")]
    folds = [r for r in rows if r.get("fold") not in ("pooled", "mean")]
    numeric = [c for c in METRIC_SHOWN if c not in ("contrast", "model")]
    parts = [H.table(summary or rows, ["fold"] + METRIC_SHOWN + ["auc_fold_sd"], METRIC_HEADERS,
                     numeric + ["auc_fold_sd"]),
             H.note("'pooled': all out-of-fold predictions together, each with its own fold's validation threshold. "
                    "'mean': the per-fold metrics averaged (AUC SD over folds). Each fold's model has its own "
                    "probability scale, so the pooled AUC can be well below the per-fold AUCs.")]
    if folds and summary:
        parts.append("<details><summary>Per fold</summary>"
                     + H.table(folds, ["fold", "threshold"] + METRIC_SHOWN, METRIC_HEADERS, numeric + ["threshold"])
                     + "</details>")
    body = [H.section("Metrics", "\n".join(parts), "metrics")]
    nav = [("Metrics", "metrics")]
    for title, short, anchor, block in (("Rule-out / rule-in zones", "Zones", "zones", _zones(layout)),
                                        ("Subgroups", "Subgroups", "subgroups", _subgroup_block(layout))):
        if block:
            body.append(H.section(title, block, anchor))
            nav.append((short, anchor))
    ablations = layout.ablation_tables()
    if ablations:
        ab_parts = []
        for ab in ablations:
            ab_rows = _read_tsv(ab)
            columns = list(ab_rows[0]) if ab_rows else []
            ab_parts.append(f"<h3>{H.esc(ab.name)}</h3>")
            numeric = [c for c in columns if _number(ab_rows[0].get(c)) is not None]
            ab_parts.append(H.table(ab_rows, columns, numeric=numeric))
        body.append(H.section("Ablations", "\n".join(ab_parts), "ablations"))
        nav.append(("Ablations", "ablations"))
    return body, nav


def _zones(layout: Derivatives) -> str:
    """The pooled out-of-fold zones table and what it means ('' when the table is absent)."""
    if not layout.zone_metrics.is_file():
        return ""
    rows = _read_tsv(layout.zone_metrics)
    pooled = [r for r in rows if r.get("fold") == "pooled"]
    numeric = [c for c in ZONE_SHOWN if c not in ("contrast", "model", "zone")]
    parts = [H.note("Each fold chose, on its validation part only, a rule-out threshold that keeps the target "
                    "sensitivity and a rule-in threshold that keeps the target specificity (on calibrated "
                    "probabilities). Out of fold: the share of sessions in each zone with its 95 % bootstrap CI, the "
                    "NPV of the rule-out zone and the PPV of the rule-in zone. Sessions outside the intermediate zone "
                    "are the PET scans a pre-screen would save; 'of all positives' in the rule-out row is the share "
                    "of amyloid-positive sessions it would miss."),
             H.table(pooled, ZONE_SHOWN, ZONE_HEADERS, numeric)]
    folds = [r for r in rows if r.get("fold") != "pooled"]
    if folds:
        parts.append("<details><summary>Per fold</summary>" + H.table(folds, ["fold"] + ZONE_SHOWN, ZONE_HEADERS,
                                                                       numeric) + "</details>")
    return "\n".join(parts)


def _subgroup_block(layout: Derivatives) -> str:
    if not layout.subgroup_metrics.is_file():
        return ""
    rows = _read_tsv(layout.subgroup_metrics)
    numeric = [c for c in SUBGROUP_SHOWN if c not in ("contrast", "model", "subgroup_column", "subgroup")]
    return "\n".join([H.note("Pooled out-of-fold metrics per PET tracer and per --subgroup-column value, with "
                              "bootstrap 95 % CIs of the AUC. Small subgroups have wide intervals."),
                       H.table(rows, SUBGROUP_SHOWN, {**METRIC_HEADERS, "subgroup_column": "column",
                                                      "ece_calibrated": "ECE calibrated"}, numeric)])


def write_group_report(config: Config) -> Path:
    """Write ``OUT/group/group_report.html`` from the group-level outputs."""
    layout = Derivatives(config.output_dir)
    out_dir = layout.root
    bundles = _bundles(layout)
    body = []
    if any(b["meta"].get("backbone", {}).get("testing_only") for b in bundles):
        body.append(H.banner("TESTING ONLY: the models use the random 'tiny' backbone. Every number below is "
                             "meaningless and exists only to test the software."))
    metric_body, metric_nav = _metrics(layout)
    eval_body, eval_nav = _evaluation(layout, config)
    body += metric_body[:1] + eval_body + metric_body[1:]
    nav = metric_nav[:1] + eval_nav + metric_nav[1:]
    prov = []
    if bundles:
        rows = []
        for b in bundles:
            meta, summary = b["meta"], b["summary"]
            rows.append({"bundle": str(b["path"].relative_to(out_dir)) if b["path"].is_relative_to(out_dir)
                         else str(b["path"]), "contrast": summary.get("contrast", "n/a"),
                         "model_id": b["model_id"][:16], "backbone": meta.get("backbone", {}).get("kind", "n/a"),
                         "folds": len(meta.get("folds", [])),
                         "thresholds": ", ".join(f"{f.get('threshold', float('nan')):.3f}"
                                                 for f in meta.get("folds", [])),
                         "ablation settings": ", ".join(f"{k}={v}"
                                                        for k, v in (summary.get("ablations") or {}).items()),
                         "weak teacher folds": summary.get("weak_teacher_folds", "n/a")})
        prov.append(H.table(rows, list(rows[0])))
    config_json = _read_json(layout.run_config("group"))
    if config_json:
        prov.append(H.json_details("Configuration of the group run", config_json))
    prov.append(H.note(f"Report written by bids_amyloid {__version__} on "
                       f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. {H.DISCLAIMER}"))
    body.append(H.section("Models and provenance", "\n".join(prov), "provenance"))
    nav.append(("Provenance", "provenance"))
    text = H.page("bids_amyloid: group report", "Cross-validated MRI-only amyloid-beta prediction "
                  "(student distilled from a PET + MRI teacher)", nav, "\n".join(body))
    path = H.write_page(layout.group_report, text)
    log.info("group report: %s", path)
    return path
