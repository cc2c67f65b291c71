"""Measurements on synthetic images, independent of the generator's sampling code.

An image is pulled back onto the 2 mm template grid through its OWN file affine and the pose that
images.tsv records (template world -> scanner world); the smooth non-linear warp (a few mm) is
ignored. Region statistics then use the template-space regions of the generator's source.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from bids_amyloid.synth import anatomy


def source(anat: str = "auto") -> anatomy.Source:
    return anatomy.load_source(2, anatomy.resolve_anatomy(anat))


def to_template(path: Path, pose_3x4: str, src: anatomy.Source) -> np.ndarray:
    img = nib.load(path)
    pose = np.eye(4)
    pose[:3] = np.array([float(v) for v in pose_3x4.split()]).reshape(3, 4)
    mat = np.linalg.inv(img.affine) @ pose @ src.affine  # template voxel -> image voxel
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    return ndi.affine_transform(data, mat[:3, :3], mat[:3, 3], output_shape=src.shape, order=1)


def pet_suvr(tpl_pet: np.ndarray, src: anatomy.Source) -> float:
    gm = src.classes[0]
    comp = gm * src.regions["composite"]
    ref = gm * src.regions["cerebellum"] * (gm > 0.5)
    return float((tpl_pet * comp).sum() / comp.sum() / ((tpl_pet * ref).sum() / ref.sum()))


def mri_roi_ratio(tpl_t1: np.ndarray, src: anatomy.Source) -> float:
    """T1w signal of the medial parietal ROI relative to deep white matter (lower = thinner GM)."""
    gm, wm = src.classes[0], src.classes[1]
    roi = gm * src.regions["mri_roi"]
    return float((tpl_t1 * roi).sum() / roi.sum() / np.median(tpl_t1[wm > 0.95]))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))
