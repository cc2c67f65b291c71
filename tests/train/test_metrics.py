"""Metrics against scikit-learn and hand computation; thresholds from validation data only."""
import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from bids_amyloid.train.metrics import (
    binary_metrics,
    bootstrap_auc_ci,
    choose_threshold,
    expected_calibration_error,
    metrics_table,
)


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 60), 0, 1)
    m = binary_metrics(y, p, 0.5, n_boot=200, seed=3)
    pred = (p >= 0.5).astype(int)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(1 - y, 1 - pred))
    assert m["ppv"] == pytest.approx(precision_score(y, pred))
    assert m["npv"] == pytest.approx(precision_score(1 - y, 1 - pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["auc_ci_low"] <= m["auc"] <= m["auc_ci_high"]
    assert bootstrap_auc_ci(y, p, n_boot=200, seed=3) == (m["auc_ci_low"], m["auc_ci_high"])  # seeded


def test_ece_by_hand():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.85])
    # bin 0: conf 0.05, acc 0.5 -> 0.45 * 2/4 ; bin 8: 0.85 vs 1 -> 0.15/4 ; bin 9: 0.95 vs 1 -> 0.05/4
    assert expected_calibration_error(y, p) == pytest.approx(0.45 * 0.5 + 0.15 / 4 + 0.05 / 4)


def test_threshold_comes_from_validation_data_only():
    y_val = np.array([0, 0, 0, 1, 1, 1])
    p_val = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    y_test = np.array([0, 0, 1, 1])
    p_test = np.array([0.65, 0.7, 0.9, 0.95])  # the test-optimal threshold would be ~0.9
    t_val = choose_threshold(y_val, p_val, "f1")
    t_test = choose_threshold(y_test, p_test, "f1")
    assert t_val == pytest.approx(0.6) and t_test == pytest.approx(0.9)
    m = binary_metrics(y_test, p_test, t_val, n_boot=0)
    assert m["threshold"] == pytest.approx(0.6) and m["specificity"] == 0.0  # applied unchanged
    assert choose_threshold(y_val, p_val, "youden") == pytest.approx(0.6)


def test_metrics_table_per_fold_and_pooled():
    import pandas as pd

    frame = pd.DataFrame({"contrast": "T1w", "model": "student", "fold": [0, 0, 0, 0, 1, 1, 1, 1],
                          "label": [0, 1, 0, 1, 0, 1, 0, 1], "probability": [.1, .9, .4, .6, .2, .7, .6, .8],
                          "threshold": [.5] * 4 + [.65] * 4})
    table = metrics_table(frame, n_boot=10)
    assert list(table.fold) == ["0", "1", "pooled", "mean"]
    pooled = table.iloc[2]
    assert np.isnan(pooled.threshold) and pooled.n == 8
    assert pooled.sensitivity == 1.0 and pooled.specificity == 1.0  # each fold's own threshold applied


def test_fold_mean_row_averages_folds_on_their_own_scales():
    import pandas as pd

    # Both folds rank perfectly, but fold 1's model is shifted up: pooling mixes the two scales.
    frame = pd.DataFrame({"contrast": "T1w", "model": "teacher", "fold": [0] * 4 + [1] * 4,
                          "label": [0, 0, 1, 1] * 2, "probability": [.1, .2, .3, .4, .35, .5, .7, .9],
                          "threshold": [.25] * 4 + [.6] * 4})
    table = metrics_table(frame, n_boot=10).set_index("fold")
    assert table.loc["pooled", "auc"] < 1.0 and table.loc["mean", "auc"] == 1.0
    assert table.loc["mean", "auc_fold_sd"] == 0.0 and np.isnan(table.loc["pooled", "auc_fold_sd"])
    assert table.loc["mean", "n"] == 8 and np.isnan(table.loc["mean", "auc_ci_low"])
    assert table.loc["mean", "balanced_accuracy"] == pytest.approx(table.loc[["0", "1"], "balanced_accuracy"].mean())
