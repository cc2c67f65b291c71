"""The bad-input matrix: every case gives a message naming the file or value, its documented exit
code, no traceback (unless -v), and no partial output. Cases are made on the fly from a valid
synthetic cohort; image cases select only the broken subject so they fail fast, at loading."""
from __future__ import annotations

import contextlib
import gzip
import io
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_amyloid.cli import main

BROKEN = "001"


def run_cli(*args, verbose=False, in_process=True) -> subprocess.CompletedProcess:
    """The CLI on ``args``: in this process through ``cli.main`` (fast), or as ``python -m
    bids_amyloid`` for the cases that test the exit-code plumbing of a real process."""
    argv = [*map(str, args)] + (["-v"] if verbose else [])
    if not in_process:
        return subprocess.run([sys.executable, "-m", "bids_amyloid", *argv], capture_output=True, text=True,
                              timeout=600)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: usage errors
            code = exc.code
    logging.getLogger().handlers.clear()  # main's handler writes to ``err``, which is gone now
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture
def bids(cohort_2mm, tmp_path) -> Path:
    """A private copy of the cohort that a case may break."""
    return Path(shutil.copytree(cohort_2mm.root, tmp_path / "bids"))


def t1w_files(bids: Path, subject: str = BROKEN) -> list[Path]:
    return sorted(bids.glob(f"sub-{subject}/ses-*/anat/*_T1w.nii.gz"))


def _rewrite(path: Path, data, affine=None) -> None:
    img = nib.load(path)
    nib.save(nib.Nifti1Image(data, img.affine if affine is None else affine), str(path))


def _truncate(p):
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])


def _not_gzip(p):
    p.write_bytes(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_bytes())


def _header_only(p):
    p.write_bytes(gzip.compress(nib.load(p).header.binaryblock))


def _four_d(p):
    data = np.asanyarray(nib.load(p).dataobj)
    _rewrite(p, np.stack([data] * 3, axis=-1))


def _two_d(p):
    _rewrite(p, np.asanyarray(nib.load(p).dataobj)[:, :, 10])


def _with_value(value):
    def corrupt(p):
        data = np.asanyarray(nib.load(p).dataobj).astype(np.float32)
        data[5:10, 5:10, 5:10] = value
        _rewrite(p, data)
    return corrupt


def _filled(value):
    def corrupt(p):
        _rewrite(p, np.full(nib.load(p).shape, value, np.float32))
    return corrupt


def _affine(matrix):
    """Write the matrix into the sform (and pixdim) directly: nibabel cannot build a qform from it."""
    def corrupt(p):
        img = nib.load(p)
        affine = img.affine.copy()
        affine[:3, :3] = np.asarray(matrix, float)
        header = img.header.copy()
        header.set_qform(None, code=0)
        header.set_sform(affine, code=1)
        header["pixdim"][1:4] = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, header), str(p))
    return corrupt


IMAGE_CASES = {
    "truncated gz": (_truncate, "truncat|corrupt|read"),
    "not gzip despite the name": (_not_gzip, "gzip|read|corrupt"),
    "header only": (_header_only, "data|truncat|read|corrupt"),
    "4-D T1w": (_four_d, "4-D|4D|dimension"),
    "2-D image": (_two_d, "2-D|2D|dimension"),
    "NaN voxels": (_with_value(np.nan), "NaN|finite"),
    "Inf voxels": (_with_value(np.inf), "Inf|finite"),
    "all-zero image": (_filled(0.0), "zero|empty|constant"),
    "constant image": (_filled(7.0), "constant"),
    "voxel size 0": (_affine(np.diag([0.0, 2.0, 2.0])), "voxel|singular|spacing"),
    "voxel size 50 mm": (_affine(np.diag([50.0, 50.0, 50.0])), "voxel|spacing"),
    "singular affine": (_affine([[2, 2, 0], [2, 2, 0], [0, 0, 2]]), "singular|affine|voxel"),
    "non-orthogonal affine": (_affine([[2, 1, 0], [0, 2, 0], [0, 0, 2]]), "orthogonal|shear|affine"),
}


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_bad_image(bids, tmp_path, case):
    corrupt, pattern = IMAGE_CASES[case]
    for path in t1w_files(bids):
        corrupt(path)
    out = tmp_path / "out"
    result = run_cli(bids, out, "participant", "--participant-label", BROKEN, "--skip-bids-validation", "--sloppy")
    assert result.returncode == 65, result.stderr[-3000:]
    assert "_T1w.nii.gz" in result.stderr and "Traceback" not in result.stderr
    import re
    assert re.search(pattern, result.stderr, re.I), result.stderr[-2000:]
    assert not list(out.rglob("*.nii.gz")), "no partial output for a rejected image"
    assert not list(out.rglob(".tmp-*"))


def test_traceback_only_with_verbose(bids, tmp_path):
    _truncate(t1w_files(bids)[0])
    result = run_cli(bids, tmp_path / "o", "participant", "--participant-label", BROKEN,
                     "--skip-bids-validation", "--sloppy", verbose=True, in_process=False)
    assert result.returncode == 65 and "Traceback" in result.stderr  # a real process: exit status and stderr


def test_pet_without_any_mri(bids, tmp_path):
    for anat in bids.glob(f"sub-{BROKEN}/ses-*/anat"):
        shutil.rmtree(anat)
    result = run_cli(bids, tmp_path / "o", "participant", "--participant-label", BROKEN, "--skip-bids-validation")
    assert result.returncode == 66 and "MRI" in result.stderr


def test_no_dataset_description(bids, tmp_path):
    (bids / "dataset_description.json").unlink()
    result = run_cli(bids, tmp_path / "o", "participant")
    assert result.returncode == 16 and "dataset_description.json" in result.stderr


def test_not_a_bids_folder(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    result = run_cli(tmp_path / "photos", tmp_path / "o", "participant", in_process=False)
    assert result.returncode == 16 and "photos" in result.stderr


def test_empty_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "dataset_description.json").write_text('{"Name": "e", "BIDSVersion": "1.10.0"}')
    result = run_cli(tmp_path / "empty", tmp_path / "o", "participant")
    assert result.returncode == 66 and "no subjects" in result.stderr


def test_label_matching_nothing(bids, tmp_path):
    result = run_cli(bids, tmp_path / "o", "participant", "--participant-label", "sub-999", "--skip-bids-validation")
    assert result.returncode == 18 and "999" in result.stderr


@pytest.mark.parametrize("where", ["equal", "inside"])
def test_output_in_bids(bids, where):
    out = bids if where == "equal" else bids / "derivatives" / "amyloid"
    result = run_cli(bids, out, "participant")
    assert result.returncode == 64 and "read-only" in result.stderr
    assert not (bids / "derivatives").exists()


def test_unwritable_output(bids, tmp_path):
    result = run_cli(bids, "/proc/amyloid-out", "participant", "-w", tmp_path / "w")
    assert result.returncode == 73 and "/proc/amyloid-out" in result.stderr


def test_filter_file_not_json(bids, tmp_path):
    bad = tmp_path / "filter.json"
    bad.write_text("{'T1w': ")
    result = run_cli(bids, tmp_path / "o", "participant", "--bids-filter-file", bad)
    assert result.returncode == 64 and "filter.json" in result.stderr


def _set_centiloids(bids: Path, value: str) -> None:
    for tsv in bids.glob("sub-*/sub-*_sessions.tsv"):
        lines = tsv.read_text().splitlines()
        header = lines[0].split("\t")
        col = [c.lower() for c in header].index("centiloid")
        rows = [line.split("\t") for line in lines[1:]]
        for row in rows:
            row[col] = value
        tsv.write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n")


def test_group_missing_centiloid_column(bids, tmp_path):
    result = run_cli(bids, tmp_path / "o", "group", "--centiloid-column", "amyloid_cl", "--skip-bids-validation")
    assert result.returncode == 66 and "amyloid_cl" in result.stderr


def test_group_non_numeric_centiloid(bids, tmp_path):
    _set_centiloids(bids, "high")
    result = run_cli(bids, tmp_path / "o", "group", "--skip-bids-validation")
    assert result.returncode == 65 and "'high'" in result.stderr and "sessions.tsv" in result.stderr


def test_group_all_labels_one_class(bids, tmp_path):
    _set_centiloids(bids, "3.5")
    result = run_cli(bids, tmp_path / "o", "group", "--skip-bids-validation")
    assert result.returncode == 65 and "class" in result.stderr


def test_group_too_few_subjects_for_folds(bids, tmp_path):
    result = run_cli(bids, tmp_path / "o", "group", "--folds", "10", "--skip-bids-validation")
    assert result.returncode == 64 and "10-fold" in result.stderr


def _reorient(path: Path, codes: tuple[str, str, str]) -> None:
    img = nib.load(path)
    now = nib.orientations.io_orientation(img.affine)
    img = img.as_reoriented(nib.orientations.ornt_transform(now, nib.orientations.axcodes2ornt(codes)))
    nib.save(img, str(path))
    assert nib.aff2axcodes(nib.load(path).affine) == codes


def _participant_one_session(bids, out, *extra):
    return run_cli(bids, out, "participant", "--participant-label", BROKEN, "--session-label", "M000",
                   "--skip-bids-validation", "--sloppy", *extra)


@pytest.mark.slow
@pytest.mark.parametrize("codes", [("L", "P", "S"), ("L", "P", "I")])
def test_non_ras_orientation_works(bids, tmp_path, codes):
    for path in t1w_files(bids):
        _reorient(path, codes)
    result = _participant_one_session(bids, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    sidecar = next((tmp_path / "out").glob("sub-001/ses-M000/anat/*_desc-preproc_T1w.json"))
    assert json_load(sidecar)["OriginalOrientation"] == "".join(codes)


def json_load(path: Path):
    import json

    return json.loads(path.read_text())


@pytest.mark.slow
def test_missing_sidecar_works_with_warning(bids, tmp_path):
    for path in t1w_files(bids):
        path.with_name(path.name.replace(".nii.gz", ".json")).unlink()
    result = _participant_one_session(bids, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "has no JSON sidecar" in result.stderr


@pytest.mark.slow
def test_t2w_used_when_t1w_missing(bids, tmp_path):
    for path in t1w_files(bids):
        path.unlink()
        path.with_name(path.name.replace(".nii.gz", ".json")).unlink(missing_ok=True)
    result = _participant_one_session(bids, tmp_path / "out", "--contrast", "T1w", "T2w")
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "out").glob("sub-001/ses-M000/anat/*_space-MNI152NLin2009aSym_desc-slices_T2w.npy"))
    assert not list((tmp_path / "out").glob("sub-001/ses-M000/anat/*_desc-slices_T1w.npy"))


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A tiny-backbone model bundle (random, TESTING ONLY) saved through the real code path."""
    from bids_amyloid.config import Config, ModelConfig
    from bids_amyloid.models.bundle_write import save_bundle
    from bids_amyloid.models.networks import build_network

    config = Config(bids_dir=tmp_path / "b", output_dir=tmp_path / "o", analysis_level="group",
                    model=ModelConfig(backbone="tiny"))
    nets = [build_network(config.model, None, seed=f) for f in range(2)]
    save_bundle(tmp_path / "bundle", config=config, students=[n.state_dict() for n in nets], teachers=None,
                thresholds=[0.5, 0.5], splits={}, metrics={}, training_summary={"contrast": "T1w"})
    return tmp_path / "bundle"


def _predict(bids, out, bundle):
    return run_cli(bids, out, "participant", "--participant-label", BROKEN, "--skip-bids-validation",
                   "--sloppy", "--model", bundle)


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_damaged_model_bundle(bids, tmp_path, bundle, damage):
    weights = sorted(bundle.rglob("*.safetensors"))[0]
    raw = bytearray(weights.read_bytes())
    if damage == "tampered":
        raw[-10] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    weights.write_bytes(bytes(raw))
    result = _predict(bids, tmp_path / "out", bundle)
    assert result.returncode == 65 and weights.name in result.stderr, result.stderr[-2000:]
    assert not list((tmp_path / "out").rglob("*.nii.gz")), "refused before any preprocessing"


def test_incompatible_model_bundle(bids, tmp_path, bundle):
    manifest = bundle / "manifest.json"
    data = json_load(manifest)
    data["format_version"] = "99.0"
    manifest.write_text(__import__("json").dumps(data))
    result = _predict(bids, tmp_path / "out", bundle)
    assert result.returncode == 65 and "incompatible" in result.stderr, result.stderr[-2000:]
