"""Classification metrics at a fixed decision threshold, and thresholds chosen on validation data.

scikit-learn does the ROC/PR arithmetic; this module adds the bootstrap CI of the AUC (seeded),
the threshold rules and the calibration measures (ECE, Brier). A prediction is positive when
``probability >= threshold``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

METRIC_COLUMNS = ("n", "n_positive", "auc", "auc_ci_low", "auc_ci_high", "threshold", "sensitivity",
                  "specificity", "ppv", "npv", "f1", "balanced_accuracy", "accuracy", "ece", "brier")


def _arrays(y: Sequence[int], p: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"labels {y_arr.shape} and probabilities {p_arr.shape} differ in shape")
    return y_arr, p_arr


def safe_auc(y: Sequence[int], p: Sequence[float]) -> float:
    """ROC AUC, NaN when only one class is present."""
    y_arr, p_arr = _arrays(y, p)
    return float(roc_auc_score(y_arr, p_arr)) if len(np.unique(y_arr)) == 2 else math.nan


def bootstrap_auc_ci(y: Sequence[int], p: Sequence[float], *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the AUC (resamples with one class only are skipped)."""
    y_arr, p_arr = _arrays(y, p)
    if len(np.unique(y_arr)) < 2 or n_boot < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_arr), len(y_arr))
        if y_arr[idx].min() != y_arr[idx].max():
            values.append(roc_auc_score(y_arr[idx], p_arr[idx]))
    if not values:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def choose_threshold(y: Sequence[int], p: Sequence[float], rule: str = "f1") -> float:
    """Decision threshold from VALIDATION data: F1-optimal ('f1') or Youden's J ('youden').

    Ties go to the threshold closest to 0.5. One class only: 0.5 (nothing to optimise).
    """
    y_arr, p_arr = _arrays(y, p)
    if len(np.unique(y_arr)) < 2:
        return 0.5
    if rule == "f1":
        precision, recall, thresholds = precision_recall_curve(y_arr, p_arr)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
    elif rule == "youden":
        fpr, tpr, thresholds = roc_curve(y_arr, p_arr, drop_intermediate=False)
        keep = np.isfinite(thresholds)
        score, thresholds = (tpr - fpr)[keep], thresholds[keep]
    else:
        raise ValueError(f"unknown threshold rule {rule!r}")
    best = np.flatnonzero(np.isclose(score, score.max()))
    return float(thresholds[best[np.argmin(np.abs(thresholds[best] - 0.5))]])


def expected_calibration_error(y: Sequence[int], p: Sequence[float], bins: int = 10) -> float:
    """ECE over ``bins`` equal-width probability bins: sum_b (n_b / n) |mean(y_b) - mean(p_b)|."""
    y_arr, p_arr = _arrays(y, p)
    if not len(y_arr):
        return math.nan
    which = np.minimum((p_arr * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(y_arr[mask].mean() - p_arr[mask].mean())
    return float(ece)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def binary_metrics(y: Sequence[int], p: Sequence[float], threshold: float | Sequence[float], *,
                   n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """All metrics of :data:`METRIC_COLUMNS`. ``threshold`` may be one value or one per sample
    (pooled out-of-fold predictions, each with its own fold's validation threshold)."""
    y_arr, p_arr = _arrays(y, p)
    thr = np.broadcast_to(np.asarray(threshold, dtype=float), p_arr.shape)
    pred = (p_arr >= thr).astype(int)
    tp = int(((pred == 1) & (y_arr == 1)).sum())
    tn = int(((pred == 0) & (y_arr == 0)).sum())
    fp = int(((pred == 1) & (y_arr == 0)).sum())
    fn = int(((pred == 0) & (y_arr == 1)).sum())
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    ppv, npv = _ratio(tp, tp + fp), _ratio(tn, tn + fn)
    low, high = bootstrap_auc_ci(y_arr, p_arr, n_boot=n_boot, seed=seed)
    unique_thr = np.unique(thr)
    return {
        "n": int(len(y_arr)),
        "n_positive": int(y_arr.sum()),
        "auc": safe_auc(y_arr, p_arr),
        "auc_ci_low": low,
        "auc_ci_high": high,
        "threshold": float(unique_thr[0]) if len(unique_thr) == 1 else math.nan,
        "sensitivity": sens,
        "specificity": spec,
        "ppv": ppv,
        "npv": npv,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (sens + spec) / 2 if not (math.isnan(sens) or math.isnan(spec)) else math.nan,
        "accuracy": _ratio(tp + tn, len(y_arr)),
        "ece": expected_calibration_error(y_arr, p_arr),
        "brier": float(np.mean((p_arr - y_arr) ** 2)) if len(y_arr) else math.nan,
    }


def monitor_score(y: Sequence[int], p: Sequence[float], monitor: str) -> tuple[float, float]:
    """Validation score compared lexicographically for early stopping: (F1 at 0.5, AUC) for
    'f1' (the method's), (AUC, F1 at 0.5) for 'auc'. NaN counts as 0."""
    y_arr, p_arr = _arrays(y, p)
    pred = p_arr >= 0.5
    tp = float((pred & (y_arr == 1)).sum())
    f1 = _ratio(2 * tp, 2 * tp + float((pred & (y_arr == 0)).sum()) + float((~pred & (y_arr == 1)).sum()))
    auc = safe_auc(y_arr, p_arr)
    f1, auc = (0.0 if math.isnan(v) else v for v in (f1, auc))
    return (f1, auc) if monitor == "f1" else (auc, f1)


def fold_mean(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each metric averaged over the folds (NaN folds skipped), sessions summed, plus the SD of
    the fold AUCs. Every fold's model has its own probability scale, so the pooled AUC mixes
    scales and can sit far below what each model achieves on its own held-out subjects."""
    out: dict[str, float] = {}
    for key in METRIC_COLUMNS:
        values = np.array([row[key] for row in per_fold], dtype=float)
        if key in ("n", "n_positive"):
            out[key] = int(values.sum())
        else:
            out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    aucs = np.array([row["auc"] for row in per_fold], dtype=float)
    aucs = aucs[np.isfinite(aucs)]
    out["auc_fold_sd"] = float(aucs.std(ddof=1)) if len(aucs) > 1 else math.nan
    out["auc_ci_low"] = out["auc_ci_high"] = out["threshold"] = math.nan  # CIs belong to one set of predictions
    return out


def metrics_table(frame, *, n_boot: int = 1000, seed: int = 0):
    """Metrics per (contrast, model, fold), pooled over folds ('pooled') and averaged over folds
    ('mean', see :func:`fold_mean`), from a predictions table with columns contrast, model, fold,
    label, probability, threshold (one row per prediction)."""
    import pandas as pd

    rows = []
    for (contrast, model), group in frame.groupby(["contrast", "model"], sort=False):
        parts = [(str(fold), part) for fold, part in group.groupby("fold")] + [("pooled", group)]
        per_fold = []
        for fold, part in parts:
            values = binary_metrics(part["label"].to_numpy(), part["probability"].to_numpy(),
                                    part["threshold"].to_numpy(), n_boot=n_boot, seed=seed)
            rows.append({"contrast": contrast, "model": model, "fold": fold, **values})
            if fold != "pooled":
                per_fold.append(values)
        rows.append({"contrast": contrast, "model": model, "fold": "mean", **fold_mean(per_fold)})
    return pd.DataFrame(rows, columns=["contrast", "model", "fold", *METRIC_COLUMNS, "auc_fold_sd"])
