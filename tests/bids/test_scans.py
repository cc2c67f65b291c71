"""Which files are which contrast and which PET run is used, on trees named like real datasets."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_amyloid.bids.layout import discover
from bids_amyloid.config import Config

PIB_FRAMES = [300.0] * 14  # 0-70 min in 5-minute frames


def _image(root: Path, rel: str, frames: int = 1, sidecar: dict | None = None, zoom: float = 1.0) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (10, 10, 10) + ((frames,) if frames > 1 else ())
    nib.save(nib.Nifti1Image(np.random.default_rng(len(rel)).random(shape, dtype=np.float32),
                             np.diag([zoom, zoom, zoom, 1.0])), str(path))
    if sidecar is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    return path


def _dynamic(durations, first=0.0) -> dict:
    starts, clock = [], first
    for d in durations:
        starts.append(clock)
        clock += d
    return {"FrameTimesStart": starts, "FrameDuration": list(durations)}


def _discover(root: Path, tmp_path: Path, **kw):
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.10.0"}')
    return discover(Config(bids_dir=root, output_dir=tmp_path / "out", analysis_level="participant",
                           skip_bids_validation=True, **kw))


def _skips(found) -> dict[str, str]:
    return {k.path.name: k.reason for k in found.skipped}


def test_quirk6_t2star_and_flair_stored_as_t2w(tmp_path, caplog):
    root = tmp_path / "bids"
    _image(root, "sub-1/ses-1/anat/sub-1_ses-1_T1w.nii.gz")
    _image(root, "sub-1/ses-1/anat/sub-1_ses-1_T2star.nii.gz")  # OASIS-3's deprecated suffix
    _image(root, "sub-1/ses-1/anat/sub-1_ses-1_acq-FLAIR_run-1_T2w.nii.gz")  # DLBS
    _image(root, "sub-1/ses-1/anat/sub-1_ses-1_acq-TSE_T2w.nii.gz")
    caplog.set_level(logging.INFO)
    found = _discover(root, tmp_path, contrasts=["T1w", "T2w", "FLAIR", "T2starw"])
    anat = found.sessions[0].anat
    assert anat["T2starw"].name == "sub-1_ses-1_T2star.nii.gz"
    assert anat["FLAIR"].name == "sub-1_ses-1_acq-FLAIR_run-1_T2w.nii.gz"
    assert anat["T2w"].name == "sub-1_ses-1_acq-TSE_T2w.nii.gz"  # a FLAIR stored as T2w is not a T2w
    assert "deprecated suffix T2star read as T2starw" in caplog.text and "T2w with acq-FLAIR read as FLAIR" in caplog.text
    assert found.notes[anat["FLAIR"]] == "T2w with acq-FLAIR read as FLAIR"


def test_quirk6_filter_file_overrides_the_aliases(tmp_path):
    root = tmp_path / "bids"
    _image(root, "sub-1/anat/sub-1_T1w.nii.gz")
    _image(root, "sub-1/anat/sub-1_acq-FLAIR_T2w.nii.gz")
    filters = tmp_path / "filters.json"
    filters.write_text('{"FLAIR": {"suffix": "FLAIR"}, "T2w": {"suffix": "T2w"}}')
    anat = _discover(root, tmp_path, contrasts=["T1w", "T2w", "FLAIR"], bids_filter_file=filters).sessions[0].anat
    assert "FLAIR" not in anat and anat["T2w"].name == "sub-1_acq-FLAIR_T2w.nii.gz"


def test_quirk7_several_t1w_with_and_without_run(tmp_path):
    root = tmp_path / "bids"
    _image(root, "sub-1/ses-1/anat/sub-1_ses-1_run-01_T1w.nii.gz", zoom=0.9)
    _image(root, "sub-1/ses-1/anat/sub-1_ses-1_T1w.nii.gz", zoom=1.2)
    found = _discover(root, tmp_path)
    assert found.sessions[0].anat["T1w"].name == "sub-1_ses-1_T1w.nii.gz"  # the method's rule: no run- first
    assert "another T1w was used (no run- entity)" in _skips(found)["sub-1_ses-1_run-01_T1w.nii.gz"]


def test_quirk10_html_page_named_nii_gz_is_skipped(tmp_path, caplog):
    root = tmp_path / "bids"
    _image(root, "sub-1/anat/sub-1_run-02_T1w.nii.gz")
    bad = root / "sub-1/anat/sub-1_run-03_T1w.nii.gz"
    bad.write_text("<html><body>404 Not Found</body></html>")
    one_byte = root / "sub-1/pet/sub-1_trc-11CPIB_pet.nii.gz"
    one_byte.parent.mkdir(parents=True)
    one_byte.write_bytes(b"\x00")
    found = _discover(root, tmp_path)
    assert found.sessions[0].anat["T1w"].name == "sub-1_run-02_T1w.nii.gz" and not found.sessions[0].pet
    skips = _skips(found)
    assert skips["sub-1_run-03_T1w.nii.gz"].startswith("unreadable: named .gz but not gzip data")
    assert skips["sub-1_trc-11CPIB_pet.nii.gz"].startswith("unreadable")


def test_quirk8_non_amyloid_and_unknown_tracers_are_skipped(tmp_path, caplog):
    root = tmp_path / "bids"
    _image(root, "sub-1/ses-M000/anat/sub-1_ses-M000_T1w.nii.gz")
    _image(root, "sub-1/ses-M000/pet/sub-1_ses-M000_trc-18FFDG_rec-coregavg_pet.nii.gz")
    _image(root, "sub-1/ses-M000/pet/sub-1_ses-M000_trc-18FAV1451_pet.nii.gz")
    _image(root, "sub-1/ses-M000/pet/sub-1_ses-M000_trc-18FXYZ_pet.nii.gz")
    _image(root, "sub-1/ses-M000/pet/sub-1_ses-M000_trc-18FAV45_pet.nii.gz")
    found = _discover(root, tmp_path)
    assert [p.tracer for p in found.sessions[0].pet] == ["florbetapir"]
    skips = _skips(found)
    assert skips["sub-1_ses-M000_trc-18FFDG_rec-coregavg_pet.nii.gz"] == "non-amyloid tracer FDG"
    assert skips["sub-1_ses-M000_trc-18FAV1451_pet.nii.gz"] == "non-amyloid tracer flortaucipir"
    assert "unrecognised tracer 18FXYZ" in skips["sub-1_ses-M000_trc-18FXYZ_pet.nii.gz"]
    assert "--pet-tracer 18FXYZ=FAMILY" in caplog.text
    mapped = _discover(root, tmp_path, pet_tracer_map={"18FXYZ": "florbetaben"})
    assert sorted(p.tracer for p in mapped.sessions[0].pet) == ["florbetaben", "florbetapir"]


def test_quirk2_tracer_only_in_acq_and_quirk3_runs_of_one_tracer(tmp_path, caplog):
    """OASIS-3: acq-PIB, two runs of one tracer; the run that covers the 50-70 min window is used."""
    root = tmp_path / "bids"
    _image(root, "sub-OAS1/ses-d0100/anat/sub-OAS1_ses-d0100_run-01_T1w.nii.gz")
    early = [300.0] * 6  # 0-30 min: does not cover the PiB window
    _image(root, "sub-OAS1/ses-d0300/pet/sub-OAS1_ses-d0300_acq-PIB_run-01_pet.nii.gz", 6, _dynamic(early))
    _image(root, "sub-OAS1/ses-d0300/pet/sub-OAS1_ses-d0300_acq-PIB_run-02_pet.nii.gz", 8,
           {"Tracer": {"Name": "PIB"}, **_dynamic([300.0] * 8, 1800.0)})
    _image(root, "sub-OAS1/ses-d0300/pet/sub-OAS1_ses-d0300_acq-PIB_run-03_pet.nii.gz", 6, _dynamic(early, 1800.0))
    caplog.set_level(logging.INFO)
    found = _discover(root, tmp_path)
    pet_session = next(s for s in found.sessions if s.session == "d0300")
    (scan,) = pet_session.pet
    assert scan.path.name.endswith("run-02_pet.nii.gz") and scan.tracer == "PiB" and scan.tracer_source == "acq"
    assert scan.volumes == 8 and scan.timing.starts[0] == 1800.0 and scan.window_min == (50.0, 70.0)
    skips = _skips(found)
    assert "covers 0% of the window" in skips["sub-OAS1_ses-d0300_acq-PIB_run-01_pet.nii.gz"]
    assert "covers 50% of the window" in skips["sub-OAS1_ses-d0300_acq-PIB_run-03_pet.nii.gz"]
    assert "3 PiB PET runs; using sub-OAS1_ses-d0300_acq-PIB_run-02_pet.nii.gz" in caplog.text
    assert (pet_session.mri_session, pet_session.mri_gap_days, pet_session.date_source) == ("d0100", 200.0, "day label")
    picked = tmp_path / "pick.json"
    picked.write_text('{"pet": {"run": 1}}')  # a filter file picks a run
    forced = _discover(root, tmp_path, bids_filter_file=picked)
    assert next(s for s in forced.sessions if s.session == "d0300").pet[0].path.name.endswith("run-01_pet.nii.gz")


def test_quirk1_unpaired_pet_and_the_pairing_records(tmp_path, caplog):
    root = tmp_path / "bids"
    _image(root, "sub-OAS2/ses-d0000/anat/sub-OAS2_ses-d0000_T1w.nii.gz")
    _image(root, "sub-OAS2/ses-d0100/pet/sub-OAS2_ses-d0100_acq-AV45_run-02_pet.nii.gz")
    _image(root, "sub-OAS2/ses-d0900/pet/sub-OAS2_ses-d0900_acq-AV45_pet.nii.gz")
    found = _discover(root, tmp_path)
    assert sorted(s.key for s in found.sessions) == ["sub-OAS2_ses-d0000", "sub-OAS2_ses-d0100"]
    pairs = {p.pet_session: p for p in found.pairings}
    assert (pairs["d0100"].mri_session, pairs["d0100"].gap_days) == ("d0000", 100.0)
    assert pairs["d0900"].mri_session is None and pairs["d0900"].gap_days == 900.0
    assert "nearest MRI session (ses-d0000) is 900 days away" in _skips(found)["sub-OAS2_ses-d0900_acq-AV45_pet.nii.gz"]
    wide = _discover(root, tmp_path, mri_pet_max_days=1000)
    assert "sub-OAS2_ses-d0900" in {s.key for s in wide.sessions}


def test_quirk10_sess_in_file_names_is_read_by_folder_and_said(tmp_path, caplog):
    root = tmp_path / "bids"
    _image(root, "sub-OAS3/ses-d0125/anat/sub-OAS3_sess-d0125_T1w.nii.gz")
    found = _discover(root, tmp_path)
    assert found.sessions[0].session == "d0125" and "'sess-' where BIDS has 'ses-'" in caplog.text


@pytest.mark.parametrize("sidecar", [None, {"TracerName": "n/a", "InjectedRadioactivity": "n/a"}])
def test_quirk5_pet_without_sidecar_or_with_na_is_used_with_a_warning(tmp_path, caplog, sidecar):
    root = tmp_path / "bids"
    _image(root, "sub-ADNI1/ses-M000/anat/sub-ADNI1_ses-M000_T1w.nii.gz")  # Clinica ADNI: no JSON
    _image(root, "sub-ADNI1/ses-M000/pet/sub-ADNI1_ses-M000_trc-18FAV45_pet.nii.gz", sidecar=sidecar)
    found = _discover(root, tmp_path)
    assert found.sessions[0].pet[0].tracer == "florbetapir"
    assert caplog.text.count("has no JSON sidecar") == (2 if sidecar is None else 1)
