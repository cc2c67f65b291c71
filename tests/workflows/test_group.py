"""Group level end to end on a tiny BIDS dataset with fake slice caches (tiny backbone, CPU)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_amyloid.errors import DataError, UsageError
from bids_amyloid.models.bundle import load_bundle
from bids_amyloid.models.calibration import fit_calibrator
from bids_amyloid.train.metrics import choose_threshold, rule_in_threshold, rule_out_threshold

from helpers import fakes


def _nifti(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6), np.float32), np.eye(4)), str(path))


def make_dataset(root: Path, weights: Path, labels: list[int] | None = None, n_subjects: int = 9,
                 sites: int = 0, **train):
    """BIDS input (T1w for all, PET for all but the last subject, one unlabelled subject) plus the
    slice caches the participant level would have written; with ``sites`` participants.tsv has a
    ``site`` column (consecutive subjects share a site)."""
    config = fakes.tiny_config(root, weights, **train)
    sessions = fakes.fake_sessions(config.output_dir, n_subjects, labels=labels)
    bids = config.bids_dir
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "fake", "BIDSVersion": "1.10.0"}))
    rows = ["participant_id\tcentiloid" + ("\tsite" if sites else "")]
    for s in sessions + [None]:
        sub = s.subject if s else f"{n_subjects + 1:02d}"
        _nifti(bids / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.nii.gz")
        if s is None or s.subject != f"{n_subjects:02d}":
            _nifti(bids / f"sub-{sub}" / "pet" / f"sub-{sub}_trc-{fakes.TRACER}_pet.nii.gz")
        site = f"\tS{(int(sub) - 1) * sites // n_subjects + 1}" if sites and s else ("\tn/a" if sites else "")
        rows.append(f"sub-{sub}\t{s.centiloid if s else 'n/a'}{site}")
    (bids / "participants.tsv").write_text("\n".join(rows) + "\n")
    pet_cache = fakes.slice_cache_path(config.output_dir, f"{n_subjects:02d}", None, "pet", fakes.TRACER)
    pet_cache.unlink()
    pet_cache.with_suffix(".json").unlink()
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from bids_amyloid.models.weights import convert_checkpoint, write_random_checkpoint
    from bids_amyloid.workflows.group import run_group

    root = tmp_path_factory.mktemp("group")
    ckpt = write_random_checkpoint(root / "ckpt.bin", "tiny", seed=7)
    weights = convert_checkpoint(ckpt, root / "weights", "tiny")
    config = make_dataset(root, weights, augment=True)
    assert run_group(config) == 0
    return config


def test_outputs_and_out_of_fold_predictions(trained):
    out = trained.output_dir
    for rel in ("models/manifest.json", "models/splits.json", "group/desc-oof_predictions.tsv",
                "group/desc-oof_predictions.json", "group/desc-cv_metrics.tsv", "group/desc-cv_metrics.json",
                "group/desc-val_predictions.tsv", "group/group_report.html", "logs/group_config.json",
                "dataset_description.json"):
        assert (out / rel).is_file(), rel
    oof = pd.read_csv(out / "group" / "desc-oof_predictions.tsv", sep="\t")
    students = oof[oof.model == "student"]
    teachers = oof[oof.model == "teacher"]
    # every labelled session predicted exactly once out of fold; the unlabelled sub-10 never
    assert sorted(students.participant_id) == [f"sub-{i:02d}" for i in range(1, 10)]
    assert sorted(teachers.participant_id) == [f"sub-{i:02d}" for i in range(1, 9)]  # sub-09 has no PET
    splits = json.loads((out / "models" / "splits.json").read_text())
    for fold in splits["folds"]:
        parts = [set(fold[p]) for p in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        held = {p[len("sub-"):] for p in students[students.fold == fold["fold"]].participant_id}
        assert held == parts[2]  # predictions come from the fold that held the subject out
    metrics = pd.read_csv(out / "group" / "desc-cv_metrics.tsv", sep="\t")
    assert set(metrics.model) == {"teacher", "student"} and {"pooled", "mean"} <= set(metrics.fold.astype(str))
    bundle = load_bundle(out)
    assert len(bundle.folds) == 2 and bundle.has_teachers and bundle.testing_only
    assert bundle.read_json("splits.json") == splits


def test_thresholds_were_chosen_on_validation_predictions(trained):
    out = trained.output_dir
    oof = pd.read_csv(out / "group" / "desc-oof_predictions.tsv", sep="\t")
    val = pd.read_csv(out / "group" / "desc-val_predictions.tsv", sep="\t")
    for (model, fold), rows in val.groupby(["model", "fold"]):
        expected = choose_threshold(rows.label.to_numpy(), rows.probability.to_numpy(), "f1")
        held = oof[(oof.model == model) & (oof.fold == fold)]
        assert np.allclose(held.threshold, expected, atol=1e-5)
        assert set(rows.participant_id).isdisjoint(held.participant_id)


def test_calibration_and_operating_points_come_from_validation_predictions(trained):
    out = trained.output_dir
    oof = pd.read_csv(out / "group" / "desc-oof_predictions.tsv", sep="\t")
    val = pd.read_csv(out / "group" / "desc-val_predictions.tsv", sep="\t")
    bundle = load_bundle(out)
    for (model, fold), rows in val.groupby(["model", "fold"]):
        y, p = rows.label.to_numpy(), rows.probability.to_numpy()
        calibrator = fit_calibrator(y, p, "auto")  # refitted on the validation part alone
        held = oof[(oof.model == model) & (oof.fold == fold)]
        assert np.allclose(held.calibrated_probability, calibrator(held.probability.to_numpy()), atol=1e-5)
        q = calibrator(p)
        assert np.allclose(held.rule_out_threshold, rule_out_threshold(y, q, 0.9), atol=1e-5)
        assert np.allclose(held.rule_in_threshold, rule_in_threshold(y, q, 0.9), atol=1e-5)
        if model == "student":
            decision = dict(zip([f["fold"] for f in bundle.folds], bundle.decisions))[fold]
            assert decision.calibrator.method == "platt"  # 'auto' on a small validation part
            assert decision.rule_out == pytest.approx(held.rule_out_threshold.iloc[0], abs=1e-5)
    assert set(oof.zone) <= {"rule-out", "intermediate", "rule-in"}
    assert (oof.zone == "rule-in").eq(oof.calibrated_probability >= oof.rule_in_threshold).all()
    metrics = pd.read_csv(out / "group" / "desc-cv_metrics.tsv", sep="\t", dtype={"fold": str})
    pooled = metrics[metrics.fold == "pooled"]
    assert pooled[["ece", "ece_calibrated", "ece_calibrated_ci_low", "brier_calibrated"]].notna().all().all()
    zones = pd.read_csv(out / "group" / "desc-zones_metrics.tsv", sep="\t", dtype={"fold": str})
    for (model,), rows in zones[zones.fold == "pooled"].groupby(["model"]):
        assert rows.n.sum() == len(oof[oof.model == model]) and rows.fraction.sum() == pytest.approx(1.0)
    subgroups = pd.read_csv(out / "group" / "desc-subgroup_metrics.tsv", sep="\t", keep_default_na=False)
    students = subgroups[subgroups.model == "student"]
    assert set(students.subgroup_column) == {"tracer"}  # sub-09 has no PET: its own 'n/a' tracer group
    assert dict(zip(students.subgroup, students.n)) == {fakes.TRACER: 8, "n/a": 1}
    meta = json.loads((out / "models" / "bundle.json").read_text())
    assert meta["format_version"] == "1.1" and meta["calibration"]["rule_out_sensitivity"] == 0.9
    card = (out / "models" / "model_card.md").read_text()
    assert "calibration (fitted on each fold's validation part): platt, platt" in card
    report = (out / "group" / "group_report.html").read_text()
    assert "Rule-out / rule-in zones" in report and "after calibration" in report


def test_leave_site_out_holds_out_whole_sites(tmp_path):
    from bids_amyloid.workflows.group import run_group

    config = make_dataset(tmp_path, None, n_subjects=12, sites=2, cv_group_column="site",
                          subgroup_columns=("site",), calibration="temperature")
    assert run_group(config) == 0
    out = config.output_dir
    splits = json.loads((out / "models" / "splits.json").read_text())
    assert splits["group_column"] == "site" and len(splits["folds"]) == 2  # min(--folds, 2 sites)
    for fold in splits["folds"]:
        held = {splits["groups"][s] for s in fold["test"]}
        trained_on = {splits["groups"][s] for s in fold["train"] + fold["val"]}
        assert held == set(fold["test_groups"]) and len(held) == 1 and not held & trained_on
    subgroups = pd.read_csv(out / "group" / "desc-subgroup_metrics.tsv", sep="\t")
    sites = subgroups[(subgroups.model == "student") & (subgroups.subgroup_column == "site")]
    assert dict(zip(sites.subgroup, sites.n)) == {"S1": 6, "S2": 6}
    assert {d.calibrator.method for d in load_bundle(out).decisions} == {"temperature"}
    config.train.cv_group_column = None  # the splits on disk are leave-site-out: refused, not mixed
    with pytest.raises(UsageError, match="leave-site-out splits but this run asks for subject-wise"):
        run_group(config)


def test_unknown_subgroup_column_is_refused_before_training(tmp_path):
    from bids_amyloid.workflows.group import run_group

    config = make_dataset(tmp_path, None, subgroup_columns=("scanner",))
    with pytest.raises(UsageError, match=r"no column \['scanner'\]"):
        run_group(config)
    assert not (config.output_dir / "models").exists()


def test_resume_reuses_finished_folds_and_splits(trained, caplog):
    from bids_amyloid.workflows.group import run_group

    out = trained.output_dir
    splits_before = (out / "models" / "splits.json").read_text()
    oof_before = (out / "group" / "desc-oof_predictions.tsv").read_text()
    trained.train.resume = True
    with caplog.at_level(logging.INFO, logger="bids_amyloid.train"):
        assert run_group(trained) == 0
    trained.train.resume = False
    assert "finished earlier" in caplog.text
    assert (out / "models" / "splits.json").read_text() == splits_before
    assert (out / "group" / "desc-oof_predictions.tsv").read_text() == oof_before


def test_refuses_one_class_and_too_few_subjects(tmp_path):
    from bids_amyloid.workflows.group import run_group

    one_class = make_dataset(tmp_path / "a", None, labels=[0] * 9)
    with pytest.raises(DataError, match="both classes"):
        run_group(one_class)
    few = make_dataset(tmp_path / "b", None, n_subjects=5, folds=3)
    with pytest.raises(UsageError, match="too few subjects"):
        run_group(few)
    no_teacher = make_dataset(tmp_path / "c", None, phase0=False, triplet=False)
    with pytest.raises(UsageError, match="trained teacher"):
        run_group(no_teacher)
