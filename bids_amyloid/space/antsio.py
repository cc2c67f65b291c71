"""nibabel <-> ANTs images in memory (no temporary files).

nibabel affines map voxels to RAS world coordinates, ANTs (ITK) images live in LPS world
coordinates: the conversions flip the first two world axes and keep every voxel's position.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_ants(img: nib.Nifti1Image, data: np.ndarray | None = None):
    """nibabel (RAS world) -> ANTs image (LPS world), same voxels and world positions."""
    import ants

    array = np.asarray(img.dataobj if data is None else data, dtype=np.float32)
    aff = _LPS @ np.asarray(img.affine, dtype=np.float64)
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    direction = aff[:3, :3] / spacing
    return ants.from_numpy(
        np.ascontiguousarray(array), origin=tuple(aff[:3, 3]), spacing=tuple(spacing), direction=direction
    )


def ants_affine(im) -> np.ndarray:
    """The RAS voxel-to-world affine of an ANTs image."""
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(im.direction) * np.asarray(im.spacing)[None, :]
    aff[:3, 3] = im.origin
    return _LPS @ aff


def to_nifti(im, dtype=np.float32, xform_code: int = 1) -> nib.Nifti1Image:
    """ANTs image -> nibabel image with qform/sform set (``xform_code`` 4 for MNI152 space)."""
    data = im.numpy()
    if np.issubdtype(np.dtype(dtype), np.integer):
        data = np.rint(data)
    return nifti_like(data, ants_affine(im), dtype, xform_code)


def nifti_like(data: np.ndarray, affine: np.ndarray, dtype=np.float32, xform_code: int = 1) -> nib.Nifti1Image:
    """A NIfTI of ``data`` with qform and sform set to ``affine`` (code 1 scanner, 4 MNI) and mm units."""
    out = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    out.set_qform(affine, xform_code)
    out.set_sform(affine, xform_code)
    out.header.set_xyzt_units("mm")
    return out
