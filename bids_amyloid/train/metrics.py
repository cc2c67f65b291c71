"""Classification metrics at a fixed decision threshold, and thresholds chosen on validation data.

scikit-learn does the ROC/PR arithmetic; this module adds seeded percentile-bootstrap CIs, the
threshold rules (F1 / Youden, and the rule-out / rule-in operating points for a target
sensitivity / specificity) and the calibration measures (ECE, Brier). A prediction is positive
when ``probability >= threshold``. The tables built from these: ``train.evaluation``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

METRIC_COLUMNS = ("n", "n_positive", "auc", "auc_ci_low", "auc_ci_high", "threshold", "sensitivity",
                  "specificity", "ppv", "npv", "f1", "balanced_accuracy", "accuracy", "ece", "ece_ci_low",
                  "ece_ci_high", "brier", "auc_calibrated", "ece_calibrated", "ece_calibrated_ci_low",
                  "ece_calibrated_ci_high", "brier_calibrated")


def _arrays(y: Sequence[int], p: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y_arr, p_arr = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"labels {y_arr.shape} and probabilities {p_arr.shape} differ in shape")
    return y_arr, p_arr


def safe_auc(y: Sequence[int], p: Sequence[float]) -> float:
    """ROC AUC, NaN when only one class is present."""
    y_arr, p_arr = _arrays(y, p)
    return float(roc_auc_score(y_arr, p_arr)) if len(np.unique(y_arr)) == 2 else math.nan


def _resampler(n: int, clusters: Sequence[Any] | None, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    """Indices of one bootstrap resample: ``n`` sessions drawn with replacement, or, with
    ``clusters`` (one id per session, e.g. the subject), as many clusters drawn with replacement,
    each bringing all its sessions (sessions of one subject are not independent)."""
    if clusters is None:
        return lambda: rng.integers(0, n, n)
    _, which = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    members = [np.flatnonzero(which == c) for c in range(which.max() + 1)]
    return lambda: np.concatenate([members[c] for c in rng.integers(0, len(members), len(members))])


def bootstrap_ci(statistic: Callable[[np.ndarray], Any], n: int, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95, clusters: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of ``statistic(indices)`` (a number or a vector) over ``n`` resampled
    sessions (or whole ``clusters``, see :func:`_resampler`); resamples where it is NaN (e.g. one
    class only) are skipped; all NaN -> NaN."""
    if n_boot < 1 or n < 1:
        nan = np.full(np.atleast_1d(statistic(np.arange(n))).size if n else 1, np.nan)
        return nan, nan.copy()
    draw = _resampler(n, clusters, np.random.default_rng(seed))
    values = np.array([np.atleast_1d(np.asarray(statistic(draw()), dtype=float)) for _ in range(n_boot)])
    tail = (1 - level) / 2 * 100
    low, high = np.full(values.shape[1], np.nan), np.full(values.shape[1], np.nan)
    ok = np.isfinite(values).any(axis=0)
    if ok.any():
        low[ok], high[ok] = np.nanpercentile(values[:, ok], [tail, 100 - tail], axis=0)
    return low, high


def bootstrap_auc_ci(y: Sequence[int], p: Sequence[float], *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95, clusters: Sequence[Any] | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI of the AUC (resamples with one class only are skipped)."""
    y_arr, p_arr = _arrays(y, p)
    if len(np.unique(y_arr)) < 2 or n_boot < 1:
        return math.nan, math.nan

    def auc(idx: np.ndarray) -> float:
        return roc_auc_score(y_arr[idx], p_arr[idx]) if y_arr[idx].min() != y_arr[idx].max() else math.nan

    low, high = bootstrap_ci(auc, len(y_arr), n_boot=n_boot, seed=seed, level=level, clusters=clusters)
    return float(low[0]), float(high[0])


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


def rule_out_threshold(y: Sequence[int], p: Sequence[float], sensitivity: float) -> float:
    """The highest threshold that keeps ``sensitivity`` on VALIDATION data (ruled out: p < t),
    halfway between the last positive kept and the next lower score; NaN without positives."""
    y_arr, p_arr = _arrays(y, p)
    positives = np.sort(p_arr[y_arr == 1])[::-1]
    if not len(positives):
        return math.nan
    kept = positives[max(1, math.ceil(sensitivity * len(positives) - 1e-9)) - 1]
    below = p_arr[p_arr < kept]
    return float((kept + below.max()) / 2) if below.size else float(kept)


def rule_in_threshold(y: Sequence[int], p: Sequence[float], specificity: float) -> float:
    """The lowest threshold that keeps ``specificity`` on VALIDATION data (ruled in: p >= t),
    halfway between the last negative left out and the next higher score; NaN without negatives."""
    y_arr, p_arr = _arrays(y, p)
    negatives = np.sort(p_arr[y_arr == 0])
    if not len(negatives):
        return math.nan
    spared = negatives[max(1, math.ceil(specificity * len(negatives) - 1e-9)) - 1]
    above = p_arr[p_arr > spared]
    return float((spared + above.min()) / 2) if above.size else float(np.nextafter(spared, np.inf))


def expected_calibration_error(y: Sequence[int], p: Sequence[float], bins: int = 10) -> float:
    """ECE over ``bins`` equal-width probability bins: sum_b (n_b / n) |mean(y_b) - mean(p_b)|."""
    y_arr, p_arr = _arrays(y, p)
    if not len(y_arr):
        return math.nan
    which = np.minimum((p_arr * bins).astype(int), bins - 1)
    gap = np.bincount(which, weights=y_arr - p_arr, minlength=bins)  # per bin: n_b (mean y - mean p)
    return float(np.abs(gap).sum() / len(y_arr))


def _ece_ci(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int, clusters: Sequence[Any] | None
            ) -> tuple[float, float, float]:
    low, high = bootstrap_ci(lambda idx: expected_calibration_error(y[idx], p[idx]), len(y), n_boot=n_boot, seed=seed,
                             clusters=clusters)
    return expected_calibration_error(y, p), float(low[0]), float(high[0])


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def binary_metrics(y: Sequence[int], p: Sequence[float], threshold: float | Sequence[float], *,
                   calibrated: Sequence[float] | None = None, n_boot: int = 1000, seed: int = 0,
                   clusters: Sequence[Any] | None = None) -> dict[str, float]:
    """All metrics of :data:`METRIC_COLUMNS`. ``threshold`` may be one value or one per sample
    (pooled out-of-fold predictions, each with its own fold's validation threshold).
    ``calibrated``: the same predictions calibrated (the ``*_calibrated`` metrics; NaN without).
    ``clusters``: one id per prediction (the subject): the CIs resample whole clusters."""
    y_arr, p_arr = _arrays(y, p)
    ece, ece_low, ece_high = _ece_ci(y_arr, p_arr, n_boot, seed, clusters)
    after = {"auc_calibrated": math.nan, "ece_calibrated": math.nan, "ece_calibrated_ci_low": math.nan,
             "ece_calibrated_ci_high": math.nan, "brier_calibrated": math.nan}
    if calibrated is not None:
        _, q_arr = _arrays(y_arr, calibrated)
        if np.isfinite(q_arr).all():
            e, lo, hi = _ece_ci(y_arr, q_arr, n_boot, seed, clusters)  # same resamples: a paired comparison
            after = {"auc_calibrated": safe_auc(y_arr, q_arr), "ece_calibrated": e, "ece_calibrated_ci_low": lo,
                     "ece_calibrated_ci_high": hi, "brier_calibrated": _brier(y_arr, q_arr)}
    thr = np.broadcast_to(np.asarray(threshold, dtype=float), p_arr.shape)
    pred = (p_arr >= thr).astype(int)
    tp = int(((pred == 1) & (y_arr == 1)).sum())
    tn = int(((pred == 0) & (y_arr == 0)).sum())
    fp = int(((pred == 1) & (y_arr == 0)).sum())
    fn = int(((pred == 0) & (y_arr == 1)).sum())
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    ppv, npv = _ratio(tp, tp + fp), _ratio(tn, tn + fn)
    low, high = bootstrap_auc_ci(y_arr, p_arr, n_boot=n_boot, seed=seed, clusters=clusters)
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
        "ece": ece,
        "ece_ci_low": ece_low,
        "ece_ci_high": ece_high,
        "brier": _brier(y_arr, p_arr),
        **after,
    }


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2)) if len(y) else math.nan


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
