"""The MNI152NLin2009aSym template, its masks and PET regions, loaded offline and cached.

Everything here comes from files installed with the Python packages or the system, never from
the network:

* ``nilearn.datasets.load_mni152_template`` / ``load_mni152_brain_mask`` / ``load_mni152_gm_template``
  (the ICBM152 2009a nonlinear *symmetric* template, brain only, shipped inside nilearn) at
  1 mm (197 x 233 x 189) and 2 mm (99 x 117 x 95). Its brain mask is the template > 0.2.
* The AAL atlas of the Debian package ``mricron-data`` (``/usr/share/mricron/templates/aal.nii.gz``,
  or the folder named by ``$BIDS_AMYLOID_ATLAS_DIR``) for the cerebellar reference region and the
  cortical target region of the Centiloid estimate. Without it, the reference region falls back to
  an inferior-posterior box of the nilearn grey-matter template (see :func:`reference_region`) and
  no Centiloid estimate is made.

All arrays are in the template's RAS voxel order (x: left -> right, y: posterior -> anterior,
z: inferior -> superior). Results are cached per process (``functools.lru_cache``).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from bids_amyloid.config import TEMPLATE_SPACE

ATLAS_DIRS = ("/usr/share/mricron/templates",)
"""Where the mricron-data atlases are looked for (after ``$BIDS_AMYLOID_ATLAS_DIR``)."""

AAL_CEREBELLUM = tuple(range(91, 117))
"""AAL labels of the cerebellar hemispheres (91-108) and the vermis (109-116)."""
AAL_CORTICAL_TARGET = (
    tuple(range(3, 17)) + tuple(range(23, 29))  # frontal (superior/middle/inferior, medial, orbital, rectus)
    + tuple(range(31, 37))  # anterior, middle and posterior cingulate
    + tuple(range(59, 69))  # superior/inferior parietal, supramarginal, angular, precuneus
    + (81, 82) + tuple(range(85, 91))  # lateral temporal (superior, middle, inferior)
)
"""AAL labels approximating the Centiloid cortical target (frontal, cingulate, parietal with
precuneus, lateral temporal)."""

GM_THRESHOLD = 0.5
"""Grey-matter probability (nilearn GM template) a PET region voxel must reach."""

CEREBELLAR_BOX_MM = {"x": (-45.0, 45.0), "y": (-100.0, -45.0), "z": (-70.0, -25.0)}
"""Fallback reference region without AAL: GM voxels inside this MNI box (inferior-posterior)."""


@dataclass(frozen=True)
class Region:
    """A binary region on the 1 mm template grid and a description for sidecars."""

    mask: np.ndarray
    name: str
    description: str

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())


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


def atlas_dir() -> Path | None:
    """Folder holding ``aal.nii.gz`` (``$BIDS_AMYLOID_ATLAS_DIR`` first), or None."""
    candidates = [os.environ.get("BIDS_AMYLOID_ATLAS_DIR", "")] + list(ATLAS_DIRS)
    for folder in candidates:
        if folder and (Path(folder) / "aal.nii.gz").is_file():
            return Path(folder)
    return None


@functools.lru_cache(maxsize=2)
def _aal_on_template() -> np.ndarray | None:
    folder = atlas_dir()
    if folder is None:
        return None
    aal = nib.load(folder / "aal.nii.gz")
    target = template_nifti(1)
    # nearest-neighbour lookup of the atlas at the world coordinates of every template voxel
    to_atlas = np.linalg.inv(aal.affine) @ target.affine
    ijk = np.indices(target.shape, dtype=np.float32).reshape(3, -1)
    coords = to_atlas[:3, :3] @ ijk + to_atlas[:3, 3:4]
    labels = ndimage.map_coordinates(np.asarray(aal.dataobj), coords, order=0, mode="constant", cval=0)
    labels = labels.reshape(target.shape).astype(np.int16)
    labels.setflags(write=False)
    return labels


def _world_grid(resolution: int = 1) -> np.ndarray:
    img = template_nifti(resolution)
    ijk = np.indices(img.shape, dtype=np.float32).reshape(3, -1)
    return (img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]).reshape((3,) + img.shape)


@functools.lru_cache(maxsize=1)
def reference_region() -> Region:
    """Cerebellar grey-matter reference region for SUVR on the 1 mm template grid.

    With AAL (mricron-data): AAL cerebellar hemisphere and vermis labels 91-116, intersected with
    the nilearn grey-matter probability >= 0.5 and with the template brain mask. Without AAL:
    grey-matter probability >= 0.5 inside the MNI box x -45..45, y -100..-45, z -70..-25 mm
    (inferior and posterior to the occipital and temporal cortex, so cortex is excluded).
    """
    gm = gm_probability(1) >= GM_THRESHOLD
    brain = np.asarray(template_mask_nifti(1).dataobj) > 0
    labels = _aal_on_template()
    if labels is not None:
        mask = np.isin(labels, AAL_CEREBELLUM) & gm & brain
        name = "cerebellar-grey-AAL"
        description = (
            "Cerebellar grey matter: AAL labels 91-116 (cerebellar hemispheres and vermis, "
            f"mricron-data aal.nii.gz) resampled to {TEMPLATE_SPACE} 1 mm (nearest neighbour), "
            f"intersected with nilearn's grey-matter probability >= {GM_THRESHOLD} and brain mask."
        )
    else:
        x, y, z = _world_grid(1)
        box = np.ones_like(gm)
        for axis, values in zip("xyz", (x, y, z), strict=True):
            lo, hi = CEREBELLAR_BOX_MM[axis]
            box &= (values >= lo) & (values <= hi)
        mask = box & gm & brain
        name = "cerebellar-grey-box"
        description = (
            f"Cerebellar grey matter (fallback, no AAL atlas found): nilearn grey-matter probability >= "
            f"{GM_THRESHOLD} inside the {TEMPLATE_SPACE} box x {CEREBELLAR_BOX_MM['x']}, "
            f"y {CEREBELLAR_BOX_MM['y']}, z {CEREBELLAR_BOX_MM['z']} mm (inferior-posterior)."
        )
    mask = np.ascontiguousarray(mask)
    mask.setflags(write=False)
    return Region(mask=mask, name=name, description=description)


@functools.lru_cache(maxsize=1)
def cortical_target() -> Region | None:
    """Global cortical target region (AAL approximation of the Centiloid 'ctx' VOI) or None."""
    labels = _aal_on_template()
    if labels is None:
        return None
    gm = gm_probability(1) >= GM_THRESHOLD
    mask = np.isin(labels, AAL_CORTICAL_TARGET) & gm
    mask.setflags(write=False)
    return Region(
        mask=mask,
        name="cortical-AAL",
        description=(
            "Global cortical target (approximation of the Centiloid cortical VOI): AAL frontal, "
            "cingulate, parietal (with precuneus) and lateral temporal labels, intersected with "
            f"nilearn's grey-matter probability >= {GM_THRESHOLD}."
        ),
    )


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
