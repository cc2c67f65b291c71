"""Template assets (offline), PET reference regions, SUVR and the Centiloid estimate."""
from __future__ import annotations

import numpy as np
import pytest

from bids_amyloid.preprocess import pet, template


def test_template_grids():
    assert template.template_shape(1) == (197, 233, 189)
    assert template.template_shape(2) == (99, 117, 95)
    mask = np.asarray(template.template_mask_nifti(1).dataobj)
    assert mask.dtype == np.uint8 and 1.0e6 < mask.sum() < 2.5e6
    dil = np.asarray(template.metric_mask_nifti(2, 3).dataobj) > 0
    assert dil.sum() > (np.asarray(template.template_mask_nifti(2).dataobj) > 0).sum()


def _centroid_mm(mask):
    aff = template.template_nifti(1).affine
    return aff[:3, :3] @ np.argwhere(mask).mean(axis=0) + aff[:3, 3]


def test_reference_region_is_cerebellar():
    region = template.reference_region()
    assert 30_000 < region.n_voxels < 200_000
    x, y, z = _centroid_mm(region.mask)
    assert abs(x) < 5 and y < -45 and z < -25
    assert "ereb" in region.description


def test_fallback_box_without_atlas(monkeypatch):
    monkeypatch.setattr(template, "atlas_dir", lambda: None)
    template._aal_on_template.cache_clear()
    template.reference_region.cache_clear()
    template.cortical_target.cache_clear()
    try:
        region = template.reference_region()
        assert region.name == "cerebellar-grey-box" and region.n_voxels > 20_000
        x, y, z = _centroid_mm(region.mask)
        assert abs(x) < 5 and y < -50 and z < -30
        assert template.cortical_target() is None
    finally:
        template._aal_on_template.cache_clear()
        template.reference_region.cache_clear()
        template.cortical_target.cache_clear()


def test_centiloid_equations_per_family():
    assert pet.centiloid_estimate("PiB", 1.0) == pytest.approx(-0.9)
    assert pet.centiloid_estimate("florbetapir", 1.2) == pytest.approx(175.4 * 1.2 - 182.3)
    assert pet.centiloid_estimate("florbetaben", 1.5) == pytest.approx(153.4 * 1.5 - 154.9)
    assert pet.centiloid_estimate("flutemetamol", 1.5) == pytest.approx(121.42 * 1.5 - 121.16)
    assert pet.centiloid_estimate("NAV4694", 1.5) is None  # no equation used
    assert pet.centiloid_estimate("PiB", None) is None


def test_suvr_is_one_in_the_reference_region():
    rng = np.random.default_rng(0)
    region = np.zeros((20, 20, 20), bool)
    region[2:8, 2:8, 2:8] = True
    brain = np.ones_like(region)
    img = rng.uniform(3000, 9000, region.shape).astype(np.float32)
    ref, n = pet.reference_mean(img, region, brain)
    assert n == region.sum()
    s = pet.suvr(img, ref)
    assert s.dtype == np.float32 and float(s[region].mean()) == pytest.approx(1.0, abs=1e-5)
