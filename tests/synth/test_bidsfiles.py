"""The dataset is valid BIDS with the promised layout: sessions, runs, tracers, sidecars."""
from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest


def test_bids_validator_reports_no_error(cohort):
    exe = shutil.which("bids-validator-deno")
    if exe is None:
        pytest.skip("bids-validator-deno is not installed")
    proc = subprocess.run([exe, str(cohort.root), "--format", "json"], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(proc.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert proc.returncode == 0 and not errors, errors[:5]


def test_top_level_files(cohort):
    desc = json.loads((cohort.root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.10.0" and desc["DatasetType"] == "raw"
    assert desc["GeneratedBy"][0]["Name"] == "bids_amyloid-synth"
    for name in ("README", "participants.tsv", "participants.json", "sessions.json"):
        assert (cohort.root / name).is_file()
    parts = pd.read_csv(cohort.root / "participants.tsv", sep="\t")
    assert list(parts.columns) == ["participant_id", "age", "sex"] and len(parts) == 6


def test_sessions_runs_and_tracers(cohort):
    truth, images = cohort.sessions, cohort.images
    per_sub = truth.groupby("participant_id")["session_id"].nunique()
    assert per_sub.max() >= 3 and (per_sub >= 2).sum() >= 3
    pet_only = truth[(truth["tracer"] != "n/a") & ~truth["has_mri"].astype(bool)]
    assert len(pet_only) >= 1
    for row in pet_only.itertuples():
        ses_dir = cohort.root / row.participant_id / row.session_id
        assert (ses_dir / "pet").is_dir() and not (ses_dir / "anat").exists()
        matched = cohort.root / row.participant_id / row.mri_session / "anat"
        assert matched.is_dir() and row.mri_session != row.session_id
    runs = images[(images["suffix"] == "T1w") & images["run"].notna()]
    assert len(runs) == 2 and set(runs["path"].str.extract(r"_run-(\d)_")[0]) == {"1", "2"}
    vox = {int(r.run): max(float(v) for v in r.voxel_mm.split()) for r in runs.itertuples()}
    assert vox[1] > vox[2]  # run-1 is the coarser scan
    pets = sorted(p.name for p in cohort.root.glob("sub-*/ses-*/pet/*_pet.nii.gz"))
    assert any("_trc-11CPIB_" in p for p in pets) and any("_trc-18FAV45_" in p for p in pets)
    for sub in truth["participant_id"].unique():  # some subject switches tracer between sessions
        tracers = set(truth.loc[(truth.participant_id == sub) & (truth.tracer != "n/a"), "tracer"])
        if len(tracers) == 2:
            break
    else:
        pytest.fail("no subject with both tracers")


def test_all_contrasts_and_names(cohort):
    names = [p.name for p in cohort.root.glob("sub-*/ses-*/anat/*.nii.gz")]
    for suffix in ("T1w", "T2w", "FLAIR", "T2starw"):
        assert any(n.endswith(f"_{suffix}.nii.gz") for n in names)
    assert all(n.startswith("sub-") and "_ses-M" in n for n in names)


def test_sessions_tsv_matches_truth(cohort):
    for sub, rows in cohort.sessions.groupby("participant_id"):
        tsv = pd.read_csv(cohort.root / sub / f"{sub}_sessions.tsv", sep="\t", na_values="n/a",
                          keep_default_na=False)
        assert list(tsv.columns) == ["session_id", "age", "centiloid", "tracer"]
        merged = tsv.merge(rows, on="session_id", suffixes=("", "_truth"))
        has_pet = merged["tracer_truth"] != "n/a"
        assert merged.loc[~has_pet, "centiloid"].isna().all()
        assert (merged.loc[has_pet, "centiloid"] == merged.loc[has_pet, "centiloid_truth"]).all()


def test_pet_sidecar_has_required_fields(cohort):
    required = ["TracerName", "TracerRadionuclide", "InjectedRadioactivity",
                "InjectedRadioactivityUnits", "InjectedMass", "InjectedMassUnits",
                "SpecificRadioactivity", "SpecificRadioactivityUnits", "ModeOfAdministration",
                "TimeZero", "ScanStart", "InjectionStart", "FrameTimesStart", "FrameDuration",
                "AcquisitionMode", "ImageDecayCorrected", "ImageDecayCorrectionTime",
                "ReconMethodName", "ReconMethodParameterLabels", "ReconMethodParameterUnits",
                "ReconMethodParameterValues", "ReconFilterType", "ReconFilterSize",
                "AttenuationCorrection", "Units", "Manufacturer", "ManufacturersModelName"]
    for side in cohort.root.glob("sub-*/ses-*/pet/*_pet.json"):
        meta = json.loads(side.read_text())
        assert not [k for k in required if k not in meta], side
        assert meta["Units"] == "Bq/mL"
