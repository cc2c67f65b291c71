"""Load + check + reorient: every bad input gives DataError naming the file; reorientation keeps
each voxel at its world position (the reference scripts mirrored non-RAS brains)."""
from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from bids_amyloid.errors import DataError, MissingInputError
from bids_amyloid.preprocess.images import load_frames, load_image
from bids_amyloid.space.antsio import ants_affine, to_ants, to_nifti

from helpers.preprocessing import blob, reorient


def save(img, path):
    nib.save(img, str(path))
    return path


def expect_error(path, kind="T1w", max_mm=2.5, match=""):
    with pytest.raises(DataError) as err:
        load_image(path, kind, max_mm)
    assert str(path) in str(err.value)
    assert match in str(err.value)
    assert err.value.exit_code == 65
    return err.value


def test_good_image_loads_as_float32_ras(tmp_path):
    loaded = load_image(save(blob(), tmp_path / "ok_T1w.nii.gz"), "T1w", 2.5)
    assert loaded.image.get_data_dtype() == np.float32
    assert nib.aff2axcodes(loaded.image.affine) == ("R", "A", "S")
    assert loaded.orientation == "RAS" and loaded.frames == 1


@pytest.mark.parametrize("codes", ["LPS", "LPI", "RPS", "RPI", "LAS", "PSR"])
def test_reorientation_keeps_world_positions(tmp_path, codes):
    ras = blob()
    other = reorient(ras, codes)
    assert "".join(nib.aff2axcodes(other.affine)) == codes
    a = load_image(save(ras, tmp_path / "ras_T1w.nii.gz"), "T1w", 2.5)
    b = load_image(save(other, tmp_path / f"{codes}_T1w.nii.gz"), "T1w", 2.5)
    assert b.orientation == codes
    np.testing.assert_allclose(b.image.affine, a.image.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(b.image.dataobj), np.asarray(a.image.dataobj))
    # a marker voxel stays at its world coordinate
    vox = np.unravel_index(np.argmax(np.asarray(ras.dataobj)), ras.shape)
    world = nib.affines.apply_affine(ras.affine, vox)
    back = np.rint(nib.affines.apply_affine(np.linalg.inv(b.image.affine), world)).astype(int)
    assert np.asarray(b.image.dataobj)[tuple(back)] == np.asarray(ras.dataobj).max()


def test_ants_conversion_matches_ants_reader(tmp_path):
    import ants

    path = save(reorient(blob(), "LPI"), tmp_path / "lpi.nii.gz")
    ours = to_ants(nib.load(str(path)))
    theirs = ants.image_read(str(path))
    np.testing.assert_allclose(ours.origin, theirs.origin, atol=1e-4)
    np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-6)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4)
    back = to_nifti(ours)
    np.testing.assert_allclose(back.affine, nib.load(str(path)).affine, atol=1e-4)
    np.testing.assert_allclose(ants_affine(theirs), nib.load(str(path)).affine, atol=1e-4)


def test_singleton_fourth_axis_is_accepted(tmp_path):
    img = blob()
    path = save(nib.Nifti1Image(np.asarray(img.dataobj)[..., None], img.affine), tmp_path / "t1_4d1.nii.gz")
    assert load_image(path, "T1w", 2.5).image.shape == img.shape


def test_multi_frame_pet_is_never_averaged_silently(tmp_path):
    """A 4-D PET needs its frame timing: load_image refuses it, load_frames reads chosen frames in RAS."""
    img = blob()
    frames = np.stack([np.asarray(img.dataobj) * k for k in (1.0, 2.0, 3.0)], axis=-1)
    path = save(reorient(nib.Nifti1Image(frames, img.affine), "LPS"), tmp_path / "pet.nii.gz")
    expect_error(path, "pet", match="4-D PET with 3 frames")
    data, affine, orientation = load_frames(path, [1, 2], 6.0)
    assert orientation == "LPS" and data.shape == img.shape + (2,)
    np.testing.assert_allclose(affine, img.affine, atol=1e-6)
    np.testing.assert_allclose(data[..., 1], 3.0 * np.asarray(img.dataobj), rtol=1e-5, atol=1e-3)


def test_four_d_mri_rejected(tmp_path):
    img = blob()
    data = np.stack([np.asarray(img.dataobj)] * 2, axis=-1)
    expect_error(save(nib.Nifti1Image(data, img.affine), tmp_path / "t1_4d.nii.gz"), match="4-D")


def test_two_d_rejected(tmp_path):
    expect_error(save(nib.Nifti1Image(np.random.rand(32, 32).astype(np.float32), np.eye(4)), tmp_path / "t1_2d.nii.gz"),
                 match="2-D")
    expect_error(save(nib.Nifti1Image(np.random.rand(32, 32, 1).astype(np.float32), np.eye(4)),
                      tmp_path / "t1_slice.nii.gz"), match="2-D")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected(tmp_path, bad):
    img = blob()
    data = np.asarray(img.dataobj).copy()
    data[5, 5, 5] = bad
    expect_error(save(nib.Nifti1Image(data, img.affine), tmp_path / "t1_nan.nii.gz"), match="NaN or Inf")


@pytest.mark.parametrize("value, match", [(0.0, "empty"), (7.0, "constant")])
def test_empty_and_constant_rejected(tmp_path, value, match):
    img = nib.Nifti1Image(np.full((20, 20, 20), value, np.float32), np.eye(4))
    expect_error(save(img, tmp_path / "t1_flat.nii.gz"), match=match)


def test_absurd_voxel_sizes_rejected(tmp_path):
    expect_error(save(blob(zooms=(0.05, 1, 1)), tmp_path / "tiny.nii.gz"), match="absurd")
    expect_error(save(blob(zooms=(1, 1, 3.0)), tmp_path / "thick_T1w.nii.gz"), max_mm=1.5, match="exceeds")


def test_thick_flair_allowed_by_its_own_limit(tmp_path):
    from bids_amyloid.config import PreprocessConfig
    from bids_amyloid.preprocess.images import max_voxel_for

    path = save(blob(zooms=(1, 1, 5.0)), tmp_path / "flair.nii.gz")
    pcfg = PreprocessConfig()
    assert load_image(path, "FLAIR", max_voxel_for("FLAIR", pcfg)).image is not None
    expect_error(path, "T2w", max_voxel_for("T2w", pcfg), match="exceeds")


def test_non_orthogonal_and_singular_affines_rejected(tmp_path):
    img = blob()
    sheared = img.affine.copy()
    sheared[0, 1] = 0.8
    expect_error(save(nib.Nifti1Image(np.asarray(img.dataobj), sheared), tmp_path / "shear.nii.gz"),
                 match="non-orthogonal")
    singular = img.affine.copy()
    singular[:, 2] = 0
    singular[3, 3] = 1
    bad = nib.Nifti1Image(np.asarray(img.dataobj), None)
    bad.set_qform(None, code=0)
    bad.set_sform(singular, code=2)  # nibabel refuses a singular qform, a singular sform is storable
    path = tmp_path / "singular.nii.gz"
    nib.save(bad, str(path))
    assert abs(np.linalg.det(nib.load(str(path)).affine[:3, :3])) < 1e-9
    expect_error(path, match="singular")


def test_unknown_orientation_rejected(tmp_path):
    img = blob()
    out = nib.Nifti1Image(np.asarray(img.dataobj), img.affine)
    out.set_qform(None, code=0)
    out.set_sform(None, code=0)
    expect_error(save(out, tmp_path / "noorient.nii.gz"), match="orientation is unknown")


def test_truncated_gzip_rejected(tmp_path):
    path = save(blob(), tmp_path / "full.nii.gz")
    raw = path.read_bytes()
    cut = tmp_path / "truncated_T1w.nii.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    expect_error(cut, match="truncated or corrupt")


def test_corrupt_gzip_payload_rejected(tmp_path):
    path = save(blob(), tmp_path / "full.nii.gz")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\x00" * 64
    bad = tmp_path / "corrupt_T1w.nii.gz"
    bad.write_bytes(bytes(raw))
    expect_error(bad)


def test_plain_nifti_named_gz_rejected(tmp_path):
    path = save(blob(), tmp_path / "plain.nii")
    fake = tmp_path / "fake_T1w.nii.gz"
    fake.write_bytes(path.read_bytes())
    expect_error(fake, match="not gzip-compressed")


def test_gzip_of_garbage_rejected(tmp_path):
    bad = tmp_path / "garbage_T1w.nii.gz"
    bad.write_bytes(gzip.compress(b"this is not a nifti file" * 100))
    expect_error(bad, match="not a readable NIfTI")


def test_missing_file(tmp_path):
    with pytest.raises(MissingInputError, match="not found"):
        load_image(tmp_path / "nope.nii.gz", "T1w", 2.5)
