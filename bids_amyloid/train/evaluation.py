"""The out-of-fold evaluation tables of the group level, from the predictions table.

* :func:`metrics_table`: discrimination and calibration per (contrast, model, fold), pooled over
  the folds and averaged over them;
* :func:`zone_table`: how the rule-out / intermediate / rule-in zones split the sessions, with
  the NPV of rule-out and the PPV of rule-in (how many PET scans the model would save, at what
  error rate);
* :func:`subgroup_table`: the pooled metrics per value of a subgroup column (tracer, site, ...).

Every CI is a seeded percentile bootstrap (``train.metrics``) that resamples subjects, each with
all its sessions (a subject's sessions are not independent), when the table has a
``participant_id`` column. The predictions table has one row per prediction with columns
contrast, model, fold, label, probability, threshold, calibrated_probability and zone
(``workflows.group_tables.PREDICTION_COLUMNS``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bids_amyloid.models.calibration import ZONES
from bids_amyloid.train.metrics import METRIC_COLUMNS, binary_metrics, bootstrap_ci

ZONE_COLUMNS = ("zone", "n", "fraction", "fraction_ci_low", "fraction_ci_high", "n_positive", "positive_fraction",
                "predictive_value", "predictive_value_ci_low", "predictive_value_ci_high", "share_of_positives",
                "share_of_negatives")
SUBGROUP_KEYS = ("contrast", "model", "subgroup_column", "subgroup")


def _metrics(part: pd.DataFrame, n_boot: int, seed: int) -> dict[str, float]:
    calibrated = part["calibrated_probability"].to_numpy(float) if "calibrated_probability" in part else None
    return binary_metrics(part["label"].to_numpy(), part["probability"].to_numpy(), part["threshold"].to_numpy(),
                          calibrated=calibrated, n_boot=n_boot, seed=seed, clusters=_subjects(part))


def _subjects(part: pd.DataFrame):
    """The bootstrap clusters: the subject of each row (None: rows resampled one by one)."""
    return part["participant_id"].to_numpy() if "participant_id" in part else None


def fold_mean(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each metric averaged over the folds (NaN folds skipped), sessions summed, plus the SD of
    the fold AUCs. Every fold's model has its own probability scale, so the pooled AUC mixes
    scales and can sit far below what each model achieves on its own held-out subjects."""
    out: dict[str, float] = {}
    for key in METRIC_COLUMNS:
        values = np.array([row[key] for row in per_fold], dtype=float)
        if key in ("n", "n_positive"):
            out[key] = int(values.sum())
        elif "_ci_" in key or key == "threshold":
            out[key] = math.nan  # CIs and thresholds belong to one set of predictions
        else:
            out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    aucs = np.array([row["auc"] for row in per_fold], dtype=float)
    aucs = aucs[np.isfinite(aucs)]
    out["auc_fold_sd"] = float(aucs.std(ddof=1)) if len(aucs) > 1 else math.nan
    return out


def _per_fold(frame: pd.DataFrame):
    """(contrast, model, fold name, rows) per fold, then 'pooled' (all folds together)."""
    for (contrast, model), group in frame.groupby(["contrast", "model"], sort=False):
        for fold, part in group.groupby("fold"):
            yield contrast, model, str(fold), part
        yield contrast, model, "pooled", group


def metrics_table(frame: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Metrics per (contrast, model, fold), pooled over folds ('pooled') and averaged over folds
    ('mean', see :func:`fold_mean`)."""
    rows, per_fold = [], []
    for contrast, model, fold, part in _per_fold(frame):
        values = _metrics(part, n_boot, seed)
        rows.append({"contrast": contrast, "model": model, "fold": fold, **values})
        if fold != "pooled":
            per_fold.append(values)
        else:
            rows.append({"contrast": contrast, "model": model, "fold": "mean", **fold_mean(per_fold)})
            per_fold = []
    return pd.DataFrame(rows, columns=["contrast", "model", "fold", *METRIC_COLUMNS, "auc_fold_sd"])


def zone_rows(labels: Sequence[int], zones: Sequence[str], *, n_boot: int = 1000, seed: int = 0,
              clusters: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """One row per zone (and 'n/a' where a fold had no operating points): sessions, fraction,
    positives, NPV (rule-out) or PPV (rule-in), and the share of all positives / negatives it holds."""
    y = np.asarray(labels, dtype=int)
    z = np.asarray(zones, dtype=object)
    names = list(ZONES) + (["n/a"] if (z == "n/a").any() else [])

    def stats(idx: np.ndarray) -> np.ndarray:
        yy, zz = y[idx], z[idx]
        out = []
        for name in names:
            inside = zz == name
            pos = yy[inside].mean() if inside.any() else math.nan
            value = {"rule-out": 1 - pos, "rule-in": pos}.get(name, math.nan)
            out += [inside.mean(), value]
        return np.array(out)

    point = stats(np.arange(len(y))) if len(y) else np.full(2 * len(names), math.nan)
    low, high = bootstrap_ci(stats, len(y), n_boot=n_boot, seed=seed, clusters=clusters)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    rows = []
    for i, name in enumerate(names):
        inside = z == name
        k = int(y[inside].sum())
        rows.append({"zone": name, "n": int(inside.sum()), "fraction": point[2 * i], "fraction_ci_low": low[2 * i],
                     "fraction_ci_high": high[2 * i], "n_positive": k,
                     "positive_fraction": k / inside.sum() if inside.any() else math.nan,
                     "predictive_value": point[2 * i + 1], "predictive_value_ci_low": low[2 * i + 1],
                     "predictive_value_ci_high": high[2 * i + 1],
                     "share_of_positives": k / n_pos if n_pos else math.nan,
                     "share_of_negatives": (inside.sum() - k) / n_neg if n_neg else math.nan})
    return rows


def zone_table(frame: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`zone_rows` per (contrast, model, fold) and pooled over the folds."""
    rows = [{"contrast": contrast, "model": model, "fold": fold, **row}
            for contrast, model, fold, part in _per_fold(frame)
            for row in zone_rows(part["label"].to_numpy(), part["zone"].to_numpy(), n_boot=n_boot, seed=seed,
                                 clusters=_subjects(part))]
    return pd.DataFrame(rows, columns=["contrast", "model", "fold", *ZONE_COLUMNS])


def subgroup_table(frame: pd.DataFrame, columns: Sequence[str], *, n_boot: int = 1000, seed: int = 0
                   ) -> pd.DataFrame:
    """The pooled out-of-fold metrics per (contrast, model) and value of each subgroup column of
    ``frame`` (a missing value is the subgroup 'n/a')."""
    rows = []
    for (contrast, model), group in frame.groupby(["contrast", "model"], sort=False):
        for column in columns:
            values = group[column].astype(object).where(group[column].notna(), "n/a").astype(str)
            for value in sorted(values.unique()):
                part = group[values == value]
                rows.append({"contrast": contrast, "model": model, "subgroup_column": column, "subgroup": value,
                             **_metrics(part, n_boot, seed)})
    return pd.DataFrame(rows, columns=[*SUBGROUP_KEYS, *METRIC_COLUMNS])
