"""Labels follow the Centiloid rule; PET follows the Centiloid; the MRI correlate is weaker."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from bids_amyloid.synth import pet, truth

from helpers import synth_measure as sm


def test_labels_follow_centiloid_rule(cohort):
    s = cohort.sessions
    assert ((s["centiloid"] > 20.6).astype(int) == s["label"]).all()
    assert s.loc[s["tracer"] != "n/a", "label"].nunique() == 2  # both classes even at n=6


def test_truth_json(cohort):
    meta = json.loads(cohort.truth_json.read_text())
    for key in ("seed", "parameters", "anatomy", "version", "oracle_auc", "oracle_definition", "model"):
        assert key in meta
    assert meta["anatomy"]["head"] and meta["anatomy"]["regions"]
    o = meta["oracle_auc"]
    assert o["pet"] > o["mri"] + 0.1 and o["mri"] > 0.6 and 0.3 <= o["prevalence"] <= 0.45


def test_oracle_scales_with_effect_sizes():
    base = truth.oracle_aucs(1.0, 1.0, ("PiB", "AV45"))
    assert truth.oracle_aucs(3.0, 1.0, ("PiB", "AV45"))["mri"] > base["mri"] + 0.1
    assert truth.oracle_aucs(0.0, 1.0, ("PiB", "AV45"))["mri"] < base["mri"] - 0.1
    assert truth.oracle_aucs(1.0, 0.3, ("PiB", "AV45"))["pet"] < base["pet"]


def test_oracle_beats_naive_scores():
    """The oracle is Bayes-optimal: no simple statistic of the same observations does better."""
    rng = np.random.default_rng(1)
    n = 100_000
    a = rng.normal(0, truth.SD_A, n)
    load = truth.load_of(truth.BETA_AGE * a + rng.normal(0, 1, n))
    label = truth.centiloid_of(load) + rng.normal(0, truth.SD_CL, n) > truth.THRESHOLD
    y = 2 * load + rng.normal(0, truth.SD_R, n) + rng.normal(0, truth.SD_V, n)
    assert truth.auc(y, label) <= truth.oracle_aucs(1.0, 1.0, ("PiB", "AV45"))["mri"] + 0.01


@pytest.mark.parametrize("key", ["PiB", "AV45", "FBB"])
def test_centiloid_transforms(key):
    tr = pet.TRACERS[key]
    for cl in (-10.0, 0.0, 20.6, 100.0):
        assert tr.cl_slope * pet.suvr_from_centiloid(cl, tr) + tr.cl_intercept == pytest.approx(cl)


def test_florbetaben_is_rowe_2017():
    fbb = pet.TRACERS["FBB"]
    assert (fbb.cl_slope, fbb.cl_intercept, fbb.label) == (153.4, -154.9, "18FFBB")
    assert truth.PET_SD["FBB"] == truth.PET_SD["AV45"] and "FBB" not in pet.OTHER_TRACERS


def test_pet_images_follow_centiloid(cohort, stats_cohort):
    src = sm.source()
    for c in (cohort, stats_cohort):
        rows = c.images[(c.images["suffix"] == "pet") & (c.images["tracer"] == "PiB")]
        measured = [sm.pet_suvr(sm.to_template(c.root / r.path, r.template_to_scanner, src), src)
                    for r in rows.itertuples()]
        assert spearmanr(rows["suvr_target"], measured)[0] > 0.8


def test_mri_correlate_is_measurable_but_weaker_than_pet(stats_cohort):
    src = sm.source()
    c = stats_cohort
    t1 = c.images[c.images["suffix"] == "T1w"].merge(c.sessions, on=["participant_id", "session_id"])
    ratio = np.array([sm.mri_roi_ratio(sm.to_template(c.root / r.path, r.template_to_scanner, src), src)
                      for r in t1.itertuples()])
    assert spearmanr(t1["thinning_regional"], ratio)[0] < -0.3  # GM loss darkens the ROI
    pets = c.images[c.images["suffix"] == "pet"].merge(c.sessions, on=["participant_id", "session_id"])
    suvr = np.array([sm.pet_suvr(sm.to_template(c.root / r.path, r.template_to_scanner, src), src)
                     for r in pets.itertuples()])
    mri_auc = truth.auc(-ratio, t1["label"].to_numpy())
    pet_auc = truth.auc(suvr, pets["label"].to_numpy())
    assert pet_auc > 0.95 and pet_auc > mri_auc
