"""predict_session / check_model on a tiny bundle and a brain-shaped session."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bids_amyloid.errors import DataError, UsageError
from bids_amyloid.space.template import template_mask_array
from bids_amyloid.infer import loading, volumes
from bids_amyloid.infer.predict import check_model, ensemble_prediction, predict_session
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.tables import cell, read_rows
from bids_amyloid.infer.table import PREDICTIONS, read_predictions

from helpers import brains as bf


def saliency_paths(out, subject, session, contrast, method):
    return Derivatives(out).session(subject, session).saliency(contrast, method)


def predictions_path(out, subject, session):
    return Derivatives(out).session(subject, session).predictions()


def _json(path):
    return json.loads(path.with_name(path.name.split(".")[0] + ".json").read_text())


def _logit(x):
    return np.log(x) - np.log1p(-x)


def test_ensemble_rule_equal_thresholds():
    p = ensemble_prediction([0.2, 0.6, 0.7], [0.5, 0.5, 0.5], subject="01", session=None, contrast="T1w",
                            model_id="m", testing_only=False)
    # equal thresholds: nothing to align; the folds' logits are averaged
    assert p.probability == pytest.approx(1 / (1 + np.exp(-np.mean(_logit(np.array([0.2, 0.6, 0.7]))))))
    # mean logit -0.045: just below the threshold although 2 of 3 folds are above theirs
    assert p.label == "negative" and p.threshold == pytest.approx(0.5) and p.probability < 0.5
    above = ensemble_prediction([0.2, 0.6, 0.75], [0.5] * 3, subject="01", session=None, contrast="T1w",
                                model_id="m", testing_only=False)
    assert above.label == "positive" and above.probability >= 0.5  # >= threshold, as in training
    assert p.uncertainty == pytest.approx(np.std([0.2, 0.6, 0.7]))
    assert (p.fold_min, p.fold_max) == pytest.approx((0.2, 0.7))
    assert p.positive_folds == 2 and p.n_folds == 3 and p.session_id is None
    assert cell(p.session_id) == "n/a"


def test_ensemble_aligns_each_fold_at_its_own_threshold():
    # Fold 0 works on a high scale and is far below its own threshold (logit -2.0); fold 1 is a
    # little above its own (+0.54). The plain mean (0.615 vs 0.595) would say positive; measured
    # against each fold's own threshold the evidence is negative.
    p = ensemble_prediction([0.93, 0.30], [0.99, 0.20], subject="01", session="01", contrast="T1w",
                            model_id="m", testing_only=False)
    assert p.threshold == pytest.approx(0.595) and p.positive_folds == 1
    assert p.label == "negative" and p.probability < p.threshold
    aligned = _logit(np.array([0.93, 0.30])) - _logit(np.array([0.99, 0.20])) + _logit(0.595)
    assert p.probability == pytest.approx(1 / (1 + np.exp(-aligned.mean())))
    assert (p.fold_min, p.fold_max) == pytest.approx(tuple(1 / (1 + np.exp(-aligned))))
    saturated = ensemble_prediction([1.0, 0.0], [0.5, 0.5], subject="01", session="01", contrast="T1w",
                                    model_id="m", testing_only=False)
    assert np.isfinite(saturated.probability) and saturated.probability == pytest.approx(0.5)


def _platt(a: float, b: float):
    from bids_amyloid.models.calibration import Calibrator

    return Calibrator("platt", {"a": a, "b": b}, 20, 8)


def test_calibrated_ensemble_averages_calibrated_probabilities_and_gives_zones():
    from bids_amyloid.models.calibration import FoldDecision

    decisions = [FoldDecision(0.6, _platt(0.5, -0.3), 0.15, 0.55), FoldDecision(0.3, _platt(1.2, 0.4), 0.25, 0.65)]
    p = ensemble_prediction([0.7, 0.2], decisions, subject="01", session="01", contrast="T1w", model_id="m",
                            testing_only=False)
    q = [d.calibrate(x) for d, x in zip(decisions, [0.7, 0.2])]
    assert p.calibrated and p.probability == pytest.approx(np.mean(q))
    assert p.threshold == pytest.approx(np.mean([d.calibrate(d.threshold) for d in decisions]))
    assert (p.rule_out_threshold, p.rule_in_threshold) == pytest.approx((0.2, 0.6))
    assert p.zone == "intermediate" and (p.fold_min, p.fold_max) == pytest.approx((min(q), max(q)))
    low = ensemble_prediction([0.05, 0.02], decisions, subject="01", session="01", contrast="T1w", model_id="m",
                              testing_only=False)
    assert low.zone == "rule-out" and low.label == "negative"
    high = ensemble_prediction([0.999, 0.99], decisions, subject="01", session="01", contrast="T1w", model_id="m",
                               testing_only=False)
    assert high.zone == "rule-in" and high.label == "positive"


def test_uncalibrated_ensemble_aligns_its_operating_points_too():
    from bids_amyloid.models.calibration import FoldDecision

    decisions = [FoldDecision(0.4, None, 0.2, 0.6), FoldDecision(0.6, None, 0.3, 0.8)]
    p = ensemble_prediction([0.5, 0.5], decisions, subject="01", session=None, contrast="T1w", model_id="m",
                            testing_only=False)
    shift = _logit(0.5) - _logit(np.array([0.4, 0.6]))
    expected = 1 / (1 + np.exp(-np.mean(_logit(np.array([0.2, 0.3])) + shift)))
    assert not p.calibrated and p.threshold == pytest.approx(0.5)
    assert p.rule_out_threshold == pytest.approx(expected)
    no_zones = ensemble_prediction([0.5, 0.5], [0.4, 0.6], subject="01", session=None, contrast="T1w",
                                   model_id="m", testing_only=False)
    assert no_zones.zone == "n/a" and no_zones.rule_out_threshold is None
    assert no_zones.probability == pytest.approx(p.probability)  # the same aligned rule as before zones


def _as_format_1_0(bundle_dir):
    """Rewrite a bundle as bids_amyloid wrote it before calibration (format 1.0, threshold-only folds)."""
    from bids_amyloid.bids.io import sha256_file

    meta_path = bundle_dir / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = "1.0"
    meta.pop("calibration")
    meta["folds"] = [{k: f[k] for k in ("fold", "threshold", "student", "teacher")} for f in meta["folds"]]
    meta_path.write_text(json.dumps(meta, indent=2))
    manifest_path = bundle_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = "1.0"
    manifest["files"]["bundle.json"] = sha256_file(meta_path)
    manifest_path.write_text(json.dumps(manifest, indent=2))


def _predict_without_maps(out, bundle, brain_inputs):
    shutil.copytree(brain_inputs, out)
    loading.clear_cache()
    config = bf.infer_config(out, bundle)
    config.infer.saliency = ()
    return predict_session(bf.session(), bf.record_for(out), config)


def test_an_old_bundle_predicts_as_before_with_zones_unavailable(tmp_path, tiny_bundle, brain_inputs):
    old = tmp_path / "old"
    shutil.copytree(tiny_bundle, old)
    _as_format_1_0(old)
    (before,) = _predict_without_maps(tmp_path / "new-out", tiny_bundle, brain_inputs)
    (after,) = _predict_without_maps(tmp_path / "out", old, brain_inputs)
    out = tmp_path / "out"
    assert after.probability == pytest.approx(before.probability, abs=1e-9) and after.label == before.label
    assert after.zone == "n/a" and not after.calibrated and after.rule_in_threshold is None
    (row,) = read_predictions(predictions_path(out, "01", "01"))
    assert row["zone"] == "n/a" and row["calibrated"] is False
    model = _json(predictions_path(out, "01", "01"))["Models"]["T1w"]
    assert model["OperatingPoints"].startswith("unavailable") and model["Calibration"] == [None] * 3


def test_calibrated_bundle_writes_zones(tmp_path, brain_inputs):
    from bids_amyloid.models.calibration import FoldDecision

    decisions = [FoldDecision(0.4 + 0.05 * k, _platt(0.8, 0.1 * k), 0.3, 0.7) for k in range(3)]
    bundle = bf.make_bundle(tmp_path / "models", tmp_path, decisions=decisions)
    assert bundle.version == "1.1" and bundle.decisions == decisions
    out = tmp_path / "out"
    (prediction,) = _predict_without_maps(out, bundle.path, brain_inputs)
    assert prediction.calibrated and prediction.zone in ("rule-out", "intermediate", "rule-in")
    assert (prediction.rule_out_threshold, prediction.rule_in_threshold) == pytest.approx((0.3, 0.7))
    (row,) = read_predictions(predictions_path(out, "01", "01"))
    assert row["zone"] == prediction.zone and row["calibrated"] is True
    model = _json(predictions_path(out, "01", "01"))["Models"]["T1w"]
    assert model["Calibration"][0]["method"] == "platt" and model["OperatingPoints"]["rule_out_sensitivity"] == 0.9
    assert "calibrated" in model["EnsembleRule"].split(";")[0]
    card = (bundle.path / "model_card.md").read_text()
    assert "calibration (fitted on each fold's validation part): platt, platt, platt" in card
    assert "[0.3, 0.7)" in card


def test_prediction_table_and_dictionary(predicted):
    config, _, predictions = predicted
    table = predictions_path(config.output_dir, "01", "01")
    assert table.name == "sub-01_ses-01_desc-amyloid_predictions.tsv"
    header = table.read_text().splitlines()[0].split("\t")
    assert header == list(PREDICTIONS)
    (row,) = read_predictions(table)
    assert row["participant_id"] == "sub-01" and row["session_id"] == "ses-01" and row["contrast"] == "T1w"
    p, lo, hi, t = (float(row[k]) for k in ("probability", "fold_min", "fold_max", "threshold"))
    assert 0 < lo <= p <= hi < 1 and t == pytest.approx(0.45)
    assert row["label"] == ("positive" if p >= t else "negative") and row["testing_only"] is True
    assert float(row["uncertainty"]) > 0 and row["n_folds"] == 3
    meta = _json(table)
    for column in PREDICTIONS:
        assert meta[column]["LongName"] and meta[column]["Description"]
    assert set(meta["label"]["Levels"]) == {"positive", "negative"}
    assert meta["Models"]["T1w"]["ModelId"] == row["model_id"] and meta["Models"]["T1w"]["TestingOnly"] is True
    model = meta["Models"]["T1w"]
    assert model["Precision"] in ("float32", "bf16") and model["PrecisionChoice"]["Setting"] == "auto"
    assert model["PrecisionChoice"]["Rule"] and model["SaliencyGradient"] == "folds"
    assert meta["GeneratedBy"]["Version"] and meta["RandomSeed"] == config.seed and meta["Settings"]
    assert any(s.endswith("desc-slices_T1w.npy") for s in meta["Sources"])
    assert all(v.startswith("sha256:") for v in meta["SourceChecksums"].values())
    gathered = read_predictions(Derivatives(config.output_dir).all_predictions)
    assert gathered == [row]


def test_saliency_files(predicted):
    config, record, _ = predicted
    brain = template_mask_array()
    shape, affine = volumes.template_grid()
    native_ref = nib.load(str(record.native_preproc))
    for method in ("gradcam", "gradient"):
        paths = saliency_paths(config.output_dir, "01", "01", "T1w", method)
        assert paths["template"].name == f"sub-01_ses-01_space-MNI152NLin2009aSym_desc-{method}T1w_saliency.nii.gz"
        img = nib.load(str(paths["template"]))
        data = np.asarray(img.dataobj)
        assert img.shape == shape and np.allclose(img.affine, affine)
        assert data.max() == pytest.approx(1.0) and data.min() >= 0 and not data[~brain].any()
        meta = _json(paths["template"])
        assert meta["SkullStripped"] is True and meta["Space"] == "MNI152NLin2009aSym" and meta["Sources"]
        assert 0 < meta["MassInsideBrainMask"] <= 1 and meta["Method"]["Name"]
        native = nib.load(str(paths["native"]))
        assert native.shape == native_ref.shape and np.allclose(native.affine, native_ref.affine)
        assert _json(paths["native"])["Transform"]["Files"]
        rows = read_rows(paths["regions"], missing="n/a")
        assert rows and sum(float(r["saliency_share"]) for r in rows) == pytest.approx(1.0, abs=1e-3)
        assert "Atlas" in _json(paths["regions"])


def test_native_map_matches_template_map(predicted):
    """Warp the native map back with the forward transform: it must agree with the template map."""
    import ants

    config, record, _ = predicted
    brain = template_mask_array()
    for method in ("gradcam", "gradient"):
        paths = saliency_paths(config.output_dir, "01", "01", "T1w", method)
        template = np.asarray(nib.load(str(paths["template"])).dataobj)
        back = ants.apply_transforms(fixed=ants.image_read(str(paths["template"])),
                                     moving=ants.image_read(str(paths["native"])),
                                     transformlist=[str(record.xfm_to_template)], interpolator="linear").numpy()
        r = np.corrcoef(back[brain], template[brain])[0, 1]
        assert r > 0.95, (method, r)
        assert np.allclose(ndimage.center_of_mass(back * brain), ndimage.center_of_mass(template), atol=1.0)


def test_saliency_that_looks_at_the_brain_stays_on_the_brain(tmp_path, tiny_bundle, brain_inputs, monkeypatch):
    """With attributions that follow the input brain (a model that 'looks at the brain'), >= 90 % of
    the unmasked saliency mass lands inside the template brain mask (geometry end to end)."""
    from bids_amyloid.infer import ensemble
    from bids_amyloid.models.inputs import CLIP_MEAN, CLIP_STD

    real = ensemble.run_ensemble

    def brain_following(students, x, **kwargs):
        result = real(students, x, **kwargs)
        raw = (x[:, 0] * CLIP_STD[0] + CLIP_MEAN[0]).clamp(min=0)
        result.maps = {"gradient": raw.numpy(),
                       "gradcam": raw.reshape(-1, 14, 16, 14, 16).mean(axis=(2, 4)).numpy()}
        return result

    monkeypatch.setattr(ensemble, "run_ensemble", brain_following)
    out = tmp_path / "out"
    shutil.copytree(brain_inputs, out)
    config = bf.infer_config(out, tiny_bundle)
    config.infer.native_saliency = False
    predict_session(bf.session(), bf.record_for(out), config)
    for method in ("gradcam", "gradient"):
        meta = _json(saliency_paths(out, "01", "01", "T1w", method)["template"])
        assert meta["MassInsideBrainMask"] >= 0.9, (method, meta["MassInsideBrainMask"])


def test_same_seed_same_outputs_and_resume(tmp_path, predicted, brain_inputs, tiny_bundle):
    config, _, _ = predicted
    out = tmp_path / "out"
    shutil.copytree(brain_inputs, out)
    again = bf.infer_config(out, tiny_bundle)
    predict_session(bf.session(), bf.record_for(out), again)
    first, second = predictions_path(config.output_dir, "01", "01"), predictions_path(out, "01", "01")
    assert first.read_bytes() == second.read_bytes()
    for method in ("gradcam", "gradient"):
        a = saliency_paths(config.output_dir, "01", "01", "T1w", method)
        b = saliency_paths(out, "01", "01", "T1w", method)
        for kind in a:
            if kind == "regions":
                assert a[kind].read_bytes() == b[kind].read_bytes()
            else:
                assert np.array_equal(nib.load(str(a[kind])).get_fdata(), nib.load(str(b[kind])).get_fdata())
    stamp = second.stat().st_mtime_ns
    predict_session(bf.session(), bf.record_for(out), again)  # finished: skipped
    assert second.stat().st_mtime_ns == stamp


def test_no_session_and_no_native(tmp_path, tiny_bundle):
    out = tmp_path / "out"
    record = bf.make_preprocessed(out, subject="02", session=None, native=False)
    config = bf.infer_config(out, tiny_bundle)
    (prediction,) = predict_session(bf.session("02", None), record, config)
    table = predictions_path(out, "02", None)
    assert table.name == "sub-02_desc-amyloid_predictions.tsv"
    (row,) = read_rows(table, missing="n/a")
    assert row["session_id"] == "n/a" and row["mri_session_id"] == "n/a" and prediction.session_id is None
    paths = saliency_paths(out, "02", None, "T1w", "gradcam")
    assert paths["template"].is_file() and not paths["native"].exists()


def test_check_model_errors(tmp_path, tiny_bundle):
    with pytest.raises(DataError) as err:
        check_model(bf.infer_config(tmp_path / "out", tmp_path / "nowhere"))
    assert err.value.exit_code == 65
    with pytest.raises(UsageError) as err:
        check_model(bf.infer_config(tmp_path / "out", tiny_bundle, contrasts=["FLAIR"]))
    assert err.value.exit_code == 64
    config = bf.infer_config(tmp_path / "out", tiny_bundle)
    config.infer.saliency = ("gradcam", "occlusion")
    with pytest.raises(UsageError):
        check_model(config)
    tampered = tmp_path / "tampered" / "models"
    shutil.copytree(tiny_bundle, tampered)
    fold = next(tampered.glob("fold-*_student.safetensors"))
    fold.write_bytes(fold.read_bytes()[:-1] + b"\x00")
    with pytest.raises(DataError, match="checksum"):
        check_model(bf.infer_config(tmp_path / "out", tampered.parent))  # group output folder holding models/
    bundles = check_model(bf.infer_config(tmp_path / "out", tiny_bundle))
    assert list(bundles) == ["T1w"]


def test_no_saliency_predicts_without_maps(tmp_path, tiny_bundle):
    out = tmp_path / "out"
    record = bf.make_preprocessed(out, subject="02", session=None, native=False)
    config = bf.infer_config(out, tiny_bundle)
    config.infer.saliency = ()  # --saliency none
    (prediction,) = predict_session(bf.session("02", None), record, config)
    assert 0.0 <= prediction.probability <= 1.0
    assert not list(out.rglob("*_saliency.nii.gz")) and read_predictions(predictions_path(out, "02", None))
