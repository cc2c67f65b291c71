"""PET regions on the 1 mm template grid: the cerebellar reference region of the SUVR and the
cortical target region of the Centiloid estimate.

With the AAL atlas (``space.atlas``): AAL labels intersected with the template's grey matter.
Without it the reference region falls back to a documented inferior-posterior box of the
nilearn grey-matter template and no Centiloid estimate is made (both said in the sidecars).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from bids_amyloid.config import TEMPLATE_SPACE
from bids_amyloid.space.atlas import load_aal
from bids_amyloid.space.template import gm_probability, template_mask_nifti, world_grid

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
    atlas = load_aal()
    labels = atlas.labels if atlas is not None else None
    if labels is not None:
        mask = np.isin(labels, AAL_CEREBELLUM) & gm & brain
        name = "cerebellar-grey-AAL"
        description = (
            "Cerebellar grey matter: AAL labels 91-116 (cerebellar hemispheres and vermis, "
            f"mricron-data aal.nii.gz) resampled to {TEMPLATE_SPACE} 1 mm (nearest neighbour), "
            f"intersected with nilearn's grey-matter probability >= {GM_THRESHOLD} and brain mask."
        )
    else:
        x, y, z = world_grid(1)
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
    atlas = load_aal()
    labels = atlas.labels if atlas is not None else None
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
