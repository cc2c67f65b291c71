"""Calibrators fitted on validation data, their JSON form, and the zones of the operating points."""
import numpy as np
import pytest

from bids_amyloid.models.calibration import Calibrator, FoldDecision, fit_calibrator, logit, zone
from bids_amyloid.train.metrics import expected_calibration_error


def _overconfident(n: int, seed: int = 0):
    """Labels drawn from a true probability, and a model that is overconfident and shifted."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < true).astype(int)
    p = 1 / (1 + np.exp(-(3 * logit(true) + 1.5)))
    return y, p, true


@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_calibration_fitted_on_one_part_lowers_ece_on_another(method):
    y_val, p_val, _ = _overconfident(400, seed=1)
    y_test, p_test, _ = _overconfident(2000, seed=2)
    calibrator = fit_calibrator(y_val, p_val, method)
    assert calibrator.method == method and calibrator.n == 400
    before, after = expected_calibration_error(y_test, p_test), expected_calibration_error(y_test, calibrator(p_test))
    assert after < 0.6 * before, (before, after)
    grid = np.linspace(0.001, 0.999, 200)
    assert np.all(np.diff(calibrator(grid)) >= -1e-12)  # monotone: the ranking (AUC) is kept


def test_platt_recovers_a_known_scaling_and_smooths_small_sets():
    y, p, _ = _overconfident(5000, seed=3)
    c = fit_calibrator(y, p, "platt")
    assert c.params["a"] == pytest.approx(1 / 3, abs=0.05) and c.params["b"] == pytest.approx(-0.5, abs=0.15)
    separable = fit_calibrator([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], "platt")  # ML would be a step (a -> inf)
    assert 0.5 < separable(0.9) < 0.9 and 0.1 < separable(0.1) < 0.5  # Platt's targets keep it finite


def test_platt_never_inverts_the_ranking():
    c = fit_calibrator([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], "platt")  # anti-correlated on validation
    assert c.params["a"] == 0.0  # flat: the base rate, not a flipped model
    assert c(0.1) == pytest.approx(c(0.9))


def test_auto_and_none_and_one_class():
    y, p, _ = _overconfident(300)
    assert fit_calibrator(y, p, "auto").method == "platt"
    y_big, p_big, _ = _overconfident(1000)
    assert fit_calibrator(y_big, p_big, "auto").method == "isotonic"
    assert fit_calibrator(y, p, "none") is None
    assert fit_calibrator([1, 1, 1], [0.2, 0.5, 0.9], "platt") is None
    with pytest.raises(ValueError):
        fit_calibrator(y, p, "beta")


@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_decision_json_round_trip(method):
    y, p, _ = _overconfident(300)
    decision = FoldDecision(0.4, fit_calibrator(y, p, method), 0.12, 0.7)
    again = FoldDecision.from_json(decision.to_json())
    assert again == decision
    assert np.allclose(again.calibrate(p), decision.calibrate(p))


def test_decision_of_a_bundle_made_before_calibration():
    old = FoldDecision.from_json({"fold": 0, "threshold": 0.42, "student": "fold-00_student.safetensors"})
    assert old == FoldDecision(0.42) and old.calibrator is None and old.rule_out is None
    assert np.allclose(old.calibrate([0.1, 0.8]), [0.1, 0.8])
    assert FoldDecision.from_json({"threshold": 0.4, "rule_out_threshold": float("nan")}).rule_out is None
    with pytest.raises(ValueError):
        Calibrator("beta", {})(0.5)


def test_zones():
    assert [zone(p, 0.2, 0.7) for p in (0.1, 0.2, 0.5, 0.7, 0.9)] == [
        "rule-out", "intermediate", "intermediate", "rule-in", "rule-in"]
    assert zone(0.45, 0.5, 0.4) == "rule-in"  # overlapping operating points: rule-in wins
    assert zone(0.3, 0.5, 0.4) == "rule-out"
    assert zone(0.3, None, 0.4) == "n/a"
