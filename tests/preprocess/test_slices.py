"""Slice indices, intensity recipe, padding and resizing (the slice-cache contract)."""
from __future__ import annotations

import numpy as np
import pytest

from bids_amyloid.preprocess import slices


def test_indices_are_sorted_integers_in_the_central_band():
    idx = slices.slice_indices(197, 40, (0.4, 0.6))
    assert len(idx) == 40 and all(isinstance(i, int) for i in idx)
    assert idx == sorted(idx) and len(set(idx)) == 40
    assert idx[0] >= int(0.4 * 196) and idx[-1] <= int(np.ceil(0.6 * 196))
    # numeric, not lexicographic: 99 comes before 100
    assert idx.index(99) < idx.index(100)
    assert sorted(map(str, idx)) != [str(i) for i in idx]


def test_normalisation_recipe():
    rng = np.random.default_rng(0)
    vol = rng.gamma(2.0, 50.0, (30, 30, 30)).astype(np.float32)
    mask = np.zeros(vol.shape, bool)
    mask[5:25, 5:25, 5:25] = True
    out = slices.normalise_mri(vol, mask, (0.5, 99.5), 0.9)
    assert out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.all(out[~mask] == 0)
    lo, hi = np.percentile(vol[mask], (0.5, 99.5))
    v = vol[10, 10, 10]
    expected = np.clip((v - lo) / (hi - lo), 0, 1) ** 0.9
    assert out[10, 10, 10] == pytest.approx(expected, rel=1e-5)


def test_resize_matches_torch_bilinear():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for n in (233, 117, 90):
        plane = rng.random((n, n))
        w = slices.resize_weights(n, 224)
        ours = w @ plane @ w.T
        ref = torch.nn.functional.interpolate(torch.tensor(plane)[None, None], size=(224, 224), mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_extract_pads_centred_and_keeps_aspect():
    vol = np.zeros((5, 233, 189), np.float32)
    vol[2, :, :] = 1.0
    out, pads = slices.extract_slices(vol, [2, 3], 224)
    assert out.shape == (2, 224, 224) and out.dtype == np.float32
    assert pads == [[0, 0], [22, 22]]
    # z was padded by 22 of 233 on each side -> about 21 of 224 output columns are background
    row = out[0, 112]
    assert row[:19].max() < 0.01 and row[-19:].max() < 0.01 and row[30:190].min() > 0.99
    assert np.all(out[1] == 0)


def test_metadata_fields():
    idx = slices.slice_indices(197, 40, (0.4, 0.6))
    stack = np.random.rand(40, 224, 224).astype(np.float32)
    meta = slices.slice_metadata(idx, stack, (233, 189), [[0, 0], [22, 22]], 224, (0.4, 0.6))
    for key in ("SliceAxis", "TemplateXIndex", "SliceMean", "InPlaneShape", "PadTo", "Resampling"):
        assert key in meta
    assert meta["SliceAxis"] == "x" and meta["InPlaneShape"] == [233, 189] and meta["PadTo"] == [233, 233]
    assert meta["SliceMean"][3] == pytest.approx(float(stack[3].mean()))
