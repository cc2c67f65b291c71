"""Slice maps -> template volume: the inverse of the slice extraction (geometry), and regions."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from bids_amyloid.errors import DataError
from bids_amyloid.space.template import template_mask_array
from bids_amyloid.infer import regions, volumes
from bids_amyloid.space import atlas as atlas_module
from bids_amyloid.space.atlas import load_aal
from bids_amyloid.infer.saliency import template_volume

from helpers import brains as bf


def test_template_grid_is_nilearn_sym_1mm():
    shape, affine = volumes.template_grid()
    assert shape == (197, 233, 189)
    assert np.allclose(np.diag(affine)[:3], 1.0)


def test_brain_slices_land_on_the_brain():
    """Maps known to lie on the brain (the input slices themselves) go back onto the brain:
    >= 90 % of the mass inside the template brain mask, and the volume matches the template."""
    brain = np.asarray(bf.template_brain().dataobj)
    slices, sidecar = bf.cut_slices(brain)
    volume = template_volume(slices.astype(np.float32), sidecar["TemplateXIndex"], sidecar)
    mask = template_mask_array()
    assert volumes.mass_inside(volume, mask) >= 0.9
    xs = sidecar["TemplateXIndex"]
    band = slice(min(xs), max(xs) + 1)
    assert np.corrcoef(volume[band].ravel(), brain[band].ravel())[0, 1] > 0.97
    assert not volume[: min(xs)].any() and not volume[max(xs) + 1 :].any()


@pytest.mark.parametrize("where", [(98, 60, 150), (110, 190, 40)])
def test_a_blob_comes_back_where_it_was(where):
    """An off-centre blob keeps its (x, y, z): catches swapped or flipped in-plane axes and wrong padding."""
    shape, _ = volumes.template_grid()
    volume = np.zeros(shape, dtype=np.float32)
    volume[where] = 1.0
    volume = ndimage.gaussian_filter(volume, 4.0)
    slices, sidecar = bf.cut_slices(volume)
    back = template_volume(slices.astype(np.float32), sidecar["TemplateXIndex"], sidecar)
    assert np.allclose(ndimage.center_of_mass(back), ndimage.center_of_mass(volume), atol=1.0)


def test_linear_between_slices_and_duplicates_averaged():
    shape = (20, 4, 3)
    planes = np.stack([np.full((4, 3), v, dtype=np.float32) for v in (0.0, 4.0, 2.0, 6.0)])
    volume = volumes.to_template_volume(planes, [5, 9, 9, 13], shape)
    assert volume[5, 0, 0] == 0 and volume[9, 0, 0] == pytest.approx(3.0)
    assert volume[7, 0, 0] == pytest.approx(1.5) and volume[11, 0, 0] == pytest.approx(4.5)
    assert not volume[:5].any() and not volume[14:].any()


def test_padding_widths_from_the_sidecar_win():
    maps = np.zeros((1, 8, 8), dtype=np.float32)
    maps[0, :, :4] = 1.0
    left = volumes.unpad_maps(maps, {"InPlaneShape": [8, 4], "PadTo": [8, 8], "Padding": {"Widths": [[0, 0], [0, 4]]}})
    right = volumes.unpad_maps(maps, {"InPlaneShape": [8, 4], "PadTo": [8, 8], "Padding": {"Widths": [[0, 0], [4, 0]]}})
    assert left.mean() > 0.9 and right.mean() < 0.1
    with pytest.raises(DataError):
        volumes.unpad_maps(maps, {"InPlaneShape": [8, 9], "PadTo": 8})


def test_mask_and_scale():
    volume = np.array([[[0.0, 2.0, 4.0]]], dtype=np.float32)
    mask = np.array([[[True, True, False]]])
    assert volumes.mask_and_scale(volume, mask).tolist() == [[[0.0, 1.0, 0.0]]]
    assert volumes.mass_inside(volume, mask) == pytest.approx(1 / 3)


def test_aal_regions_on_the_template_grid():
    shape, affine = volumes.template_grid()
    atlas = regions.load_atlas()
    if atlas.name != "AAL":
        pytest.skip("mricron-data AAL atlas not installed")
    assert len(atlas.names) == 116 and atlas.names[67] == "Precuneus_L"
    brain = template_mask_array()
    volume = (atlas.labels == 67).astype(np.float32)
    rows = regions.regional_table(volume, brain, atlas)
    assert rows[0]["region"] == "Precuneus_L" and rows[0]["saliency_share"] == pytest.approx(1.0)
    assert sum(r["saliency_share"] for r in rows) == pytest.approx(1.0)


def test_geometric_fallback_without_atlas(monkeypatch, tmp_path):
    monkeypatch.setenv("BIDS_AMYLOID_ATLAS_DIR", str(tmp_path))
    monkeypatch.setattr(atlas_module, "ATLAS_DIRS", ())
    load_aal.cache_clear()
    atlas = regions.load_atlas.__wrapped__()
    load_aal.cache_clear()
    assert atlas.name == "geometric-lobes" and "GEOMETRIC APPROXIMATION" in atlas.description
    brain = template_mask_array()
    assert (atlas.labels[brain] > 0).all()
    rows = regions.regional_table(brain.astype(np.float32), brain, atlas)
    assert {r["region"] for r in rows} >= {"frontal_L", "cerebellum_R", "occipital_L"}
