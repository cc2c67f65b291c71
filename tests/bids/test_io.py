import json

import pytest

from bids_amyloid.bids.dataset import BIDSIGNORE_PATTERNS, init_output_dir
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.names import bids_name, output_uri, sidecar_of
from bids_amyloid.bids.io import TMP_PREFIX, atomic_path, atomic_write_json, remove_stale_temporaries


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a" / "x.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".nii.gz") and tmp.name.startswith(TMP_PREFIX)
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert list(target.parent.iterdir()) == []


def test_atomic_write_replaces(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": 1})
    atomic_write_json(tmp_path / "x.json", {"a": 2})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_stale_temporaries_removed(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / f"{TMP_PREFIX}abc.nii.gz").write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == 1 and not any((tmp_path / "s").iterdir())


def test_names_follow_entity_order(tmp_path):
    assert bids_name("01", "M0", "mask", ".nii.gz", desc="brain", space="MNI") == "sub-01_ses-M0_space-MNI_desc-brain_mask.nii.gz"
    assert Derivatives(tmp_path).session("01", None).pet_slices("PiB").name == \
        "sub-01_trc-PiB_space-MNI152NLin2009aSym_desc-slices_pet.npy"
    with pytest.raises(ValueError):
        bids_name("01", None, "T1w", ".nii.gz", bogus="x")


def test_sidecar_and_output_uri(tmp_path):
    assert sidecar_of(tmp_path / "sub-01_desc-x_T1w.nii.gz") == tmp_path / "sub-01_desc-x_T1w.json"
    assert output_uri(tmp_path / "sub-01" / "a.tsv", tmp_path) == "bids::sub-01/a.tsv"
    assert output_uri(tmp_path / "a.tsv", tmp_path / "out") == str((tmp_path / "a.tsv").resolve())


def test_init_output_dir_is_idempotent(tmp_path):
    source = tmp_path / "bids"
    source.mkdir()
    (source / "dataset_description.json").write_text('{"Name": "cohort"}')
    for _ in range(2):
        init_output_dir(tmp_path / "out", source)
    description = json.loads((tmp_path / "out" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and "cohort" in description["Name"]
    lines = (tmp_path / "out" / ".bidsignore").read_text().splitlines()
    assert lines == list(BIDSIGNORE_PATTERNS)
