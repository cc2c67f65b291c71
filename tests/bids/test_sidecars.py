"""Sidecars as they are (real-data quirk 5: missing, draft-form, misspelt keys, "n/a" in numbers)."""
from __future__ import annotations

import json

from bids_amyloid.bids.sidecars import lookup, number, numbers, read_sidecar


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_inheritance_nearest_wins_and_other_suffixes_ignored(tmp_path):
    image = _touch(tmp_path / "sub-01" / "ses-1" / "pet" / "sub-01_ses-1_trc-PIB_pet.nii.gz")
    _touch(tmp_path / "pet.json", json.dumps({"Units": "Bq/mL", "BodyPart": "Brain"}))
    _touch(tmp_path / "sub-01" / "sub-01_trc-PIB_pet.json", json.dumps({"Units": "kBq/mL"}))
    _touch(image.with_name("sub-01_ses-1_trc-PIB_pet.json"), json.dumps({"TracerName": "PIB"}))
    _touch(image.with_name("sub-01_ses-1_trc-FDG_pet.json"), json.dumps({"TracerName": "FDG"}))  # other entity
    _touch(image.with_name("sub-01_ses-1_T1w.json"), json.dumps({"TracerName": "nope"}))  # other suffix
    meta = read_sidecar(image, tmp_path)
    assert meta.values == {"Units": "kBq/mL", "BodyPart": "Brain", "TracerName": "PIB"} and meta.own


def test_quirk5_missing_sidecar_is_empty_not_an_error(tmp_path):
    image = _touch(tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    meta = read_sidecar(image, tmp_path)
    assert meta.values == {} and not meta.own


def test_broken_json_is_reported_never_raised(tmp_path):
    image = _touch(tmp_path / "sub-01" / "pet" / "sub-01_pet.nii.gz")
    _touch(image.with_name("sub-01_pet.json"), '{"TracerName": "PIB"')
    meta = read_sidecar(image, tmp_path)
    assert meta.values == {} and meta.own and "not valid JSON" in meta.problems[0]


def test_quirk5_draft_nested_and_misspelt_keys():
    draft = {"Tracer": {"Name": "PIB"}, "Time": {"FrameTimes": {"Values": [[0, 60]]}}, "frame_time_start": [1]}
    assert lookup(draft, "Tracer.Name") == "PIB"
    assert lookup(draft, "Time.FrameTimes") == {"Values": [[0, 60]]}
    assert lookup({"Tracer.Name": "AV45"}, "Tracer.Name") == "AV45"
    assert lookup(draft, "FrameTimesStart") == [1]  # case, underscores and the plural s
    assert lookup({"FrameDurations": [5]}, "FrameDuration") == [5]
    assert lookup(draft, "Missing.Key", "default") == "default"


def test_quirk5_na_strings_in_numeric_fields():
    assert number("n/a") is None and number("") is None and number(None) is None and number(True) is None
    assert number("12.5") == 12.5 and number(3) == 3.0 and number(float("nan")) is None
    assert numbers([0, "30", "n/a"]) == [0.0, 30.0, None] and numbers(7) == [7.0] and numbers(None) is None
