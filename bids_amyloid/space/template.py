"""The MNI152NLin2009aSym template and its masks, loaded offline and cached.

Everything here comes from files installed with the Python packages or the system, never from
the network:

* ``nilearn.datasets.load_mni152_template`` / ``load_mni152_brain_mask`` / ``load_mni152_gm_template``
  (the ICBM152 2009a nonlinear *symmetric* template, brain only, shipped inside nilearn) at
  1 mm (197 x 233 x 189) and 2 mm (99 x 117 x 95). Its brain mask is the template > 0.2.

All arrays are in the template's RAS voxel order (x: left -> right, y: posterior -> anterior,
z: inferior -> superior). Results are cached per process (``functools.lru_cache``).
"""
from __future__ import annotations

import functools

import nibabel as nib
import numpy as np
from scipy import ndimage

from bids_amyloid.config import TEMPLATE_SPACE

@functools.lru_cache(maxsize=4)
def template_nifti(resolution: int = 1) -> nib.Nifti1Image:
    """The T1 template (float32 in [0, 1]) at ``resolution`` mm (1 or 2)."""
    from nilearn import datasets

    img = datasets.load_mni152_template(resolution=resolution)
    data = np.asarray(img.get_fdata(), dtype=np.float32)
    return _frozen_nifti(data, img.affine)


@functools.lru_cache(maxsize=4)
def template_mask_nifti(resolution: int = 1) -> nib.Nifti1Image:
    """The template's brain mask (uint8) at ``resolution`` mm."""
    from nilearn import datasets

    img = datasets.load_mni152_brain_mask(resolution=resolution)
    data = (np.asarray(img.dataobj) > 0).astype(np.uint8)
    return _frozen_nifti(data, img.affine)


@functools.lru_cache(maxsize=4)
def gm_probability(resolution: int = 1) -> np.ndarray:
    """Grey-matter probability of the template (float32, read-only)."""
    from nilearn import datasets

    data = np.asarray(datasets.load_mni152_gm_template(resolution=resolution).get_fdata(), dtype=np.float32)
    data.setflags(write=False)
    return data


@functools.lru_cache(maxsize=2)
def wm_nifti(resolution: int = 1) -> nib.Nifti1Image:
    """White-matter probability of the template (for QC outlines)."""
    from nilearn import datasets

    img = datasets.load_mni152_wm_template(resolution=resolution)
    return _frozen_nifti(np.asarray(img.get_fdata(), dtype=np.float32), img.affine)


@functools.lru_cache(maxsize=8)
def metric_mask_nifti(resolution: int = 2, dilate_voxels: int = 3) -> nib.Nifti1Image:
    """The template brain mask dilated by a ball of ``dilate_voxels``: the registration metric mask."""
    mask = template_mask_nifti(resolution)
    data = np.asarray(mask.dataobj) > 0
    if dilate_voxels > 0:
        data = ndimage.binary_dilation(data, structure=ball(dilate_voxels))
    return _frozen_nifti(data.astype(np.uint8), mask.affine)


def ball(radius: int) -> np.ndarray:
    """A 3-D ball structuring element of ``radius`` voxels."""
    r = int(radius)
    grid = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    return (grid**2).sum(axis=0) <= r * r + 1e-6


def template_shape(resolution: int = 1) -> tuple[int, int, int]:
    return tuple(int(s) for s in template_nifti(resolution).shape)  # type: ignore[return-value]


def world_grid(resolution: int = 1) -> np.ndarray:
    """World (RAS mm) coordinates of every template voxel, shape (3, x, y, z)."""
    img = template_nifti(resolution)
    ijk = np.indices(img.shape, dtype=np.float32).reshape(3, -1)
    return (img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]).reshape((3,) + img.shape)


def template_mask_array(resolution: int = 1) -> np.ndarray:
    """The template brain mask as a bool array."""
    return np.asarray(template_mask_nifti(resolution).dataobj) > 0


TEMPLATE_URL = "https://nist.mni.mcgill.ca/icbm-152-nonlinear-atlases-2009/"
"""Reference page of the ICBM152 2009a nonlinear symmetric template (nilearn ships a copy)."""


def space_fields(resolution: int = 1) -> dict[str, str]:
    """Sidecar fields of an image on the template grid."""
    return {"Space": TEMPLATE_SPACE, "SpatialReference": TEMPLATE_URL,
            "TemplateDescription": template_description(resolution)}


def template_description(resolution: int = 1) -> str:
    shape = "x".join(str(s) for s in template_shape(resolution))
    return (
        f"{TEMPLATE_SPACE}: ICBM152 2009a nonlinear symmetric T1 template as shipped by nilearn "
        f"(brain only), {resolution} mm, {shape} voxels"
    )


def _frozen_nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    data = np.ascontiguousarray(data)
    data.setflags(write=False)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, 4)
    img.set_sform(affine, 4)
    return img
