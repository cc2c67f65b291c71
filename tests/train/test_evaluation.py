"""The out-of-fold tables: metrics per fold / pooled / mean, zones with NPV and PPV, subgroups."""
import numpy as np
import pandas as pd
import pytest

from bids_amyloid.train.evaluation import metrics_table, subgroup_table, zone_rows, zone_table


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


def test_zone_rows_count_sessions_and_predictive_values():
    labels = [0, 0, 0, 1, 0, 1, 1, 1, 0, 1]
    zones = ["rule-out"] * 4 + ["intermediate"] * 3 + ["rule-in"] * 3
    rows = {r["zone"]: r for r in zone_rows(labels, zones, n_boot=200, seed=0)}
    out, mid, inside = rows["rule-out"], rows["intermediate"], rows["rule-in"]
    assert (out["n"], mid["n"], inside["n"]) == (4, 3, 3) and out["fraction"] == pytest.approx(0.4)
    assert out["predictive_value"] == pytest.approx(0.75)  # NPV: 3 of 4 ruled out are negative
    assert inside["predictive_value"] == pytest.approx(2 / 3)  # PPV
    assert np.isnan(mid["predictive_value"]) and mid["positive_fraction"] == pytest.approx(2 / 3)
    assert out["share_of_positives"] == pytest.approx(1 / 5)  # the positives rule-out would miss
    assert inside["share_of_negatives"] == pytest.approx(1 / 5)
    assert out["fraction_ci_low"] <= 0.4 <= out["fraction_ci_high"]
    assert out["predictive_value_ci_low"] <= 0.75 <= out["predictive_value_ci_high"]
    assert "n/a" not in rows
    assert {r["zone"] for r in zone_rows([0, 1], ["n/a", "rule-in"], n_boot=10)} == {
        "rule-out", "intermediate", "rule-in", "n/a"}


def test_zone_table_per_fold_and_pooled():
    frame = pd.DataFrame({"contrast": "T1w", "model": "student", "fold": [0, 0, 1, 1], "label": [0, 1, 0, 1],
                          "zone": ["rule-out", "rule-in", "intermediate", "rule-in"]})
    table = zone_table(frame, n_boot=10)
    assert list(table.fold.unique()) == ["0", "1", "pooled"]
    pooled = table[table.fold == "pooled"].set_index("zone")
    assert pooled.loc["rule-in", "n"] == 2 and pooled.loc["rule-in", "predictive_value"] == 1.0


def test_subgroup_table_per_value_with_missing_values():
    frame = pd.DataFrame({"contrast": "T1w", "model": "student", "label": [0, 1] * 6,
                          "probability": np.linspace(0.1, 0.9, 12), "threshold": 0.5,
                          "calibrated_probability": np.linspace(0.1, 0.9, 12),
                          "site": ["A"] * 6 + ["B"] * 4 + [None] * 2, "tracer": "PiB"})
    table = subgroup_table(frame, ["tracer", "site"], n_boot=10)
    assert list(zip(table.subgroup_column, table.subgroup)) == [("tracer", "PiB"), ("site", "A"), ("site", "B"),
                                                                ("site", "n/a")]
    assert list(table.n) == [12, 6, 4, 2]
