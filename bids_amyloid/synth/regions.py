"""Template-space regions: amyloid uptake pattern, composite ROI, cerebellum, MRI-correlate ROI.

Two sources: the AAL atlas of mricron-data (drawn on Colin27, so it is seated with the same
moment fit as the ch2 head) or, without it, geometric boxes in MNI coordinates on the GM map.
Every map is float32 on the template grid:

- ``cerebellum``: cerebellum (all tissue); the PET reference region is its GM.
- ``pattern``: relative amyloid binding of GM (0 in cerebellum, ~1.35 in precuneus/PCC).
- ``composite``: the cortical summary ROI (frontal, cingulate, parietal, precuneus, lateral temporal)
  over which the target Centiloid is met.
- ``mri_roi``: where the MRI correlate (thinning) sits: precuneus + posterior cingulate, restricted
  to the central 40-60 % band of the left-right extent that the model's sagittal slices sample.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# (AAL indices, binding weight, part of the composite ROI)
_AAL_GROUPS: list[tuple[tuple[int, ...], float, bool]] = [
    ((67, 68, 35, 36), 1.35, True),  # precuneus, posterior cingulate
    (tuple(range(3, 17)) + tuple(range(23, 29)), 1.15, True),  # frontal incl. medial/orbital
    ((31, 32), 1.15, True),  # anterior cingulate
    (tuple(range(59, 67)), 1.10, True),  # superior/inferior parietal, supramarginal, angular
    ((81, 82, 85, 86, 89, 90), 1.0, True),  # lateral temporal
    ((33, 34), 0.9, False),  # mid cingulate
    ((29, 30, 45, 46), 0.8, False),  # insula, cuneus
    ((49, 50, 51, 52, 53, 54), 0.75, False),  # lateral occipital
    ((71, 72, 73, 74), 0.85, False),  # caudate, putamen (striatal PiB binding)
    ((83, 84, 87, 88, 55, 56), 0.65, False),  # temporal poles, fusiform
    ((1, 2, 17, 18, 19, 20, 57, 58, 69, 70, 79, 80), 0.55, False),  # sensorimotor, Heschl
    ((43, 44, 47, 48, 21, 22), 0.45, False),  # calcarine, lingual, olfactory
    ((75, 76, 77, 78), 0.3, False),  # pallidum, thalamus
    ((37, 38, 39, 40, 41, 42), 0.2, False),  # hippocampus, parahippocampal, amygdala
]
_AAL_CEREBELLUM = tuple(range(91, 117))
_AAL_MRI_ROI = (67, 68, 35, 36)
_DEFAULT_WEIGHT = 0.6  # GM far from any label


def _xyz(shape: tuple[int, ...], aff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World coordinates as broadcastable 1-D arrays (the template affine is diagonal)."""
    i, j, k = (np.arange(n, dtype=np.float32) for n in shape)
    x = aff[0, 0] * i + aff[0, 3]
    y = aff[1, 1] * j + aff[1, 3]
    z = aff[2, 2] * k + aff[2, 3]
    return x[:, None, None], y[None, :, None], z[None, None, :]


def _central_band(shape: tuple[int, ...], aff: np.ndarray) -> np.ndarray:
    """1 for |x| < 12 mm, fading to 0 at 20 mm: the 40-60 % band of a ~145 mm wide brain."""
    x, _, _ = _xyz(shape, aff)
    return np.clip((20.0 - np.abs(x)) / 8.0, 0.0, 1.0)


def from_aal(labels: np.ndarray, gm: np.ndarray, aff: np.ndarray, vox: float) -> dict[str, np.ndarray]:
    # Unlabelled GM takes the nearest label within 8 mm (AAL and the 2009a GM map differ slightly).
    dist, idx = ndi.distance_transform_edt(labels == 0, return_indices=True)
    filled = np.where(dist * vox <= 8.0, labels[tuple(idx)], 0)
    lut_w = np.full(int(filled.max()) + 1, _DEFAULT_WEIGHT, dtype=np.float32)
    lut_c = np.zeros_like(lut_w)
    for ids, weight, composite in _AAL_GROUPS:
        lut_w[list(ids)] = weight
        lut_c[list(ids)] = float(composite)
    lut_w[list(_AAL_CEREBELLUM)] = 0.0
    cereb = np.isin(filled, _AAL_CEREBELLUM).astype(np.float32)
    roi = np.isin(filled, _AAL_MRI_ROI).astype(np.float32)
    return _finish(lut_w[filled], lut_c[filled], cereb, roi, gm, aff, vox)


def geometric(gm: np.ndarray, aff: np.ndarray) -> dict[str, np.ndarray]:
    """Fallback without an atlas: boxes in MNI coordinates (cerebellum = inferior posterior)."""
    x, y, z = _xyz(gm.shape, aff)
    ax = np.abs(x)
    shape = gm.shape
    box = lambda cond: np.broadcast_to(cond, shape)  # noqa: E731
    cereb = box((y < -38) & (z < -22))
    medial = box((ax < 16) & (y > -80) & (y < -35) & (z > 5) & (z < 60))
    groups = [
        (medial, 1.35, True),
        (box((y > 5) & (z > -25)), 1.15, True),  # frontal
        (box((y < -25) & (y > -80) & (z > 25)) & ~medial, 1.10, True),  # parietal
        (box((ax > 38) & (y > -70) & (y < 5) & (z > -35) & (z < 8)), 1.0, True),  # lateral temporal
        (box((ax > 15) & (ax < 38) & (y > -40) & (y < 0) & (z > -35) & (z < -5)), 0.2, False),
        (box(y < -80), 0.6, False),  # occipital
    ]
    weight = np.full(shape, _DEFAULT_WEIGHT, dtype=np.float32)
    comp = np.zeros(shape, dtype=np.float32)
    for mask, w, c in groups:
        weight[mask] = w
        comp[mask] = float(c)
    weight[cereb] = 0.0
    comp[cereb] = 0.0
    return _finish(weight, comp, cereb.astype(np.float32), medial.astype(np.float32), gm, aff,
                   float(abs(aff[0, 0])))


def _finish(weight, comp, cereb, roi, gm, aff, vox) -> dict[str, np.ndarray]:
    roi = ndi.gaussian_filter(roi, 2.0 / vox) * _central_band(gm.shape, aff)
    return {
        "pattern": ndi.gaussian_filter(weight, 1.5 / vox).astype(np.float32),
        "composite": comp.astype(np.float32),
        "cerebellum": cereb.astype(np.float32),
        "mri_roi": (roi / max(float(roi.max()), 1e-6)).astype(np.float32),
    }


def ventricles(csf_in_brain: np.ndarray, aff: np.ndarray) -> np.ndarray:
    """Lateral (and third) ventricles: CSF-rich connected blobs near the centre of the brain."""
    x, y, z = _xyz(csf_in_brain.shape, aff)
    box = (np.abs(x) < 30) & (y > -50) & (y < 35) & (z > -5) & (z < 35)
    cand = (csf_in_brain > 0.5) & box
    lab, n = ndi.label(cand)
    if n == 0:
        return cand
    vox_mm3 = float(abs(np.linalg.det(aff[:3, :3])))
    sizes = np.bincount(lab.ravel())[1:] * vox_mm3
    keep = np.flatnonzero(sizes >= 500.0) + 1
    return np.isin(lab, keep)
