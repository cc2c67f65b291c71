"""PET reference region and cortical target: AAL, and the geometric fallback (said in the log)."""
from __future__ import annotations

import numpy as np

from bids_amyloid.preprocess import regions
from bids_amyloid.preprocess.regions import reference_region
from bids_amyloid.space import atlas, template


def _centroid_mm(mask):
    aff = template.template_nifti(1).affine
    return aff[:3, :3] @ np.argwhere(mask).mean(axis=0) + aff[:3, 3]


def test_reference_region_is_cerebellar():
    region = reference_region()
    assert 30_000 < region.n_voxels < 200_000
    x, y, z = _centroid_mm(region.mask)
    assert abs(x) < 5 and y < -45 and z < -25
    assert "ereb" in region.description


def _clear():
    for cached in (atlas.load_aal, regions.reference_region, regions.cortical_target):
        cached.cache_clear()


def test_fallback_box_without_atlas(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(atlas.ATLAS_ENV, str(tmp_path))  # an empty folder first ...
    monkeypatch.setattr(atlas, "ATLAS_DIRS", ())  # ... and nothing else
    _clear()
    try:
        region = reference_region()
        assert region.name == "cerebellar-grey-box" and region.n_voxels > 20_000
        x, y, z = _centroid_mm(region.mask)
        assert abs(x) < 5 and y < -50 and z < -30
        assert regions.cortical_target() is None
        assert "AAL atlas not found" in caplog.text  # said, never silent
    finally:
        _clear()
