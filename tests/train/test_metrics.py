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
    bootstrap_ci,
    choose_threshold,
    expected_calibration_error,
    rule_in_threshold,
    rule_out_threshold,
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


def test_operating_points_keep_their_targets_on_validation_data():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.4 + 0.2 * y + rng.normal(0, 0.2, 200), 0, 1)
    for target in (0.8, 0.9, 1.0):
        t = rule_out_threshold(y, p, target)
        assert (p[y == 1] >= t).mean() >= target  # sensitivity kept
        tighter = p[(p > t) & (y == 1)].min()  # the next positive up: ruling it out too breaks the target
        assert (p[y == 1] >= tighter + 1e-9).mean() < target
        t = rule_in_threshold(y, p, target)
        assert (p[y == 0] < t).mean() >= target  # specificity kept
        looser = p[(p < t) & (y == 0)].max()
        assert (p[y == 0] < looser).mean() < target
    assert np.isnan(rule_out_threshold([0, 0], [0.1, 0.2], 0.9)) and np.isnan(rule_in_threshold([1], [0.3], 0.9))


def test_operating_points_lie_halfway_between_scores():
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.5, 0.6, 0.9])
    assert rule_out_threshold(y, p, 1.0) == pytest.approx(0.25)  # keeps the positive at 0.3
    assert rule_in_threshold(y, p, 1.0) == pytest.approx(0.55)  # spares the negative at 0.5
    assert rule_in_threshold(y, p, 2 / 3) == pytest.approx(0.25)


def test_bootstrap_ci_skips_undefined_resamples_and_is_seeded():
    y = np.array([0, 1] * 10)
    low, high = bootstrap_ci(lambda idx: y[idx].mean() if y[idx].min() != y[idx].max() else np.nan, len(y),
                             n_boot=200, seed=5)
    assert 0 < low[0] < 0.5 < high[0] < 1
    assert (low, high) == tuple(bootstrap_ci(lambda idx: y[idx].mean(), len(y), n_boot=200, seed=5))
    vector = bootstrap_ci(lambda idx: np.array([y[idx].mean(), np.nan]), len(y), n_boot=20, seed=0)
    assert np.isfinite(vector[0][0]) and np.isnan(vector[0][1])


def test_calibrated_metrics_use_the_same_resamples():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.2, 80), 0.01, 0.99)
    m = binary_metrics(y, p ** 3, 0.2, calibrated=p, n_boot=100, seed=0)
    assert m["ece_calibrated"] < m["ece"]
    assert m["ece_ci_low"] <= m["ece"] <= m["ece_ci_high"]
    assert m["ece_calibrated_ci_low"] <= m["ece_calibrated"] <= m["ece_calibrated_ci_high"]
    assert m["auc_calibrated"] == pytest.approx(m["auc"])  # a monotone map keeps the ranking
    assert m["brier_calibrated"] == pytest.approx(np.mean((p - y) ** 2))
    assert np.isnan(binary_metrics(y, p, 0.5, n_boot=0)["ece_calibrated"])


def test_cluster_bootstrap_resamples_whole_subjects_and_widens_the_ci():
    # 20 subjects with 5 identical sessions each: resampling sessions pretends there are 100
    # independent ones; resampling subjects knows there are 20.
    rng = np.random.default_rng(4)
    y_subject = np.array([0, 1] * 10)
    p_subject = np.clip(0.5 + 0.2 * (y_subject - 0.5) + rng.normal(0, 0.25, 20), 0.01, 0.99)
    y, p = np.repeat(y_subject, 5), np.repeat(p_subject, 5)
    subjects = np.repeat([f"sub-{i:02d}" for i in range(20)], 5)
    seen = []
    bootstrap_ci(lambda idx: seen.append(idx) or 0.0, len(y), n_boot=3, seed=0, clusters=subjects)
    for idx in seen:  # every drawn subject comes with all five of its sessions
        assert len(idx) == 100 and all(np.sum(subjects[idx] == s) % 5 == 0 for s in set(subjects[idx]))
    by_session = bootstrap_auc_ci(y, p, n_boot=300, seed=1)
    by_subject = bootstrap_auc_ci(y, p, n_boot=300, seed=1, clusters=subjects)
    assert by_subject[1] - by_subject[0] > 1.5 * (by_session[1] - by_session[0])
    plain = binary_metrics(y, p, 0.5, n_boot=50, seed=0)
    clustered = binary_metrics(y, p, 0.5, n_boot=50, seed=0, clusters=subjects)
    assert clustered["auc"] == plain["auc"] and clustered["auc_ci_low"] != plain["auc_ci_low"]
