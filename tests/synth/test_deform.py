"""Orientations vary, and every image is anatomically right in world space (data AND affine)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bids_amyloid.synth import mri

from helpers import synth_measure as sm


@pytest.fixture(scope="module")
def src():
    return sm.source()


def test_orientation_codes_vary_and_match_files(cohort):
    t1 = cohort.images[cohort.images["suffix"] == "T1w"]
    assert t1["orientation"].nunique() >= 3
    assert "RAS" in set(t1["orientation"]) and set(t1["orientation"]) - {"RAS"}
    for row in cohort.images.itertuples():
        img = nib.load(cohort.root / row.path)
        assert "".join(nib.aff2axcodes(img.affine)) == row.orientation
        assert img.header["qform_code"] > 0 and img.header["sform_code"] > 0


def test_voxel_sizes_are_realistic(cohort):
    zooms = {}
    for row in cohort.images.itertuples():
        zooms.setdefault(row.suffix, []).append(sorted(float(v) for v in row.voxel_mm.split()))
    res = cohort.parameters["resolution"]
    assert all(np.allclose(z, [res] * 3) for z in zooms["T2w"])
    assert all(z[2] >= 2.5 * z[0] for z in zooms["FLAIR"] + zooms["T2starw"])  # thick slices
    assert all(z[0] >= 2.0 for z in zooms["pet"])


def test_images_are_anatomically_consistent(cohort, src, tmp_path):
    """Pulled back through the file affine and the true pose, every T1w matches the template
    (and so every other subject); the same data with a flipped array axis does not."""
    tpl = sum(g * c for g, c in zip(mri.CONTRASTS["T1w"].intensities, src.classes, strict=True))
    brain = src.brain > 0.5
    corr = lambda a: np.corrcoef(a[brain], tpl[brain])[0, 1]  # noqa: E731
    t1 = cohort.images[cohort.images["suffix"] == "T1w"]
    for row in t1.itertuples():
        assert corr(sm.to_template(cohort.root / row.path, row.template_to_scanner, src)) > 0.85
    row = t1.iloc[1]
    img = nib.load(cohort.root / row.path)
    flipped = tmp_path / "flipped.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:, ::-1], img.affine), flipped)
    assert corr(sm.to_template(flipped, row.template_to_scanner, src)) < 0.7
    # Reoriented to RAS with nibabel, the image is the same anatomy.
    canon = tmp_path / "ras.nii.gz"
    nib.save(nib.as_closest_canonical(img), canon)
    a = sm.to_template(cohort.root / row.path, row.template_to_scanner, src)
    assert np.allclose(a, sm.to_template(canon, row.template_to_scanner, src), atol=1e-3)


def test_pet_is_in_the_subject_head(cohort, src):
    gm, wm = src.classes[0], src.classes[1]
    for row in cohort.images[cohort.images["suffix"] == "pet"].itertuples():
        pet = sm.to_template(cohort.root / row.path, row.template_to_scanner, src)
        inside, outside = pet[(gm + wm) > 0.9].mean(), pet[src.classes.sum(0) < 0.05].mean()
        assert inside > 5 * outside


def test_true_brain_masks(cohort, src):
    masks = cohort.images[cohort.images["suffix"] == "mask"]
    t1 = cohort.images[cohort.images["suffix"] == "T1w"]
    assert len(masks) == len(t1)
    for m, t in zip(masks.itertuples(), t1.itertuples(), strict=True):
        assert m.path.startswith("sourcedata/synth/") and m.path.endswith("_desc-brain_mask.nii.gz")
        mimg, timg = nib.load(cohort.root / m.path), nib.load(cohort.root / t.path)
        assert mimg.shape == timg.shape and np.allclose(mimg.affine, timg.affine)
        back = sm.to_template(cohort.root / m.path, m.template_to_scanner, src) > 0.5
        assert sm.dice(back, src.brain > 0.5) > 0.9
        t1 = np.asanyarray(timg.dataobj).astype(np.float32)
        inside = np.asanyarray(mimg.dataobj).astype(bool)
        assert 0.05 < inside.mean() < 0.6 and t1[inside].mean() > 2 * t1[~inside].mean()
