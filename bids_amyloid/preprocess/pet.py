"""PET: SUVR with a cerebellar grey-matter reference and an optional Centiloid ESTIMATE.

The static PET image (a 4-D PET first becomes one: :mod:`bids_amyloid.preprocess.frames`) is registered rigidly (Mattes MI) to the skull-stripped,
bias-corrected T1w of the matched MRI session, and mapped to MNI152NLin2009aSym at 1 mm by
composing that rigid transform with the T1w -> template transform (linear interpolation, one
resampling). SUVR = PET / mean PET inside the reference region, where the region is
:func:`bids_amyloid.preprocess.regions.reference_region` (AAL cerebellar labels from mricron-data
intersected with the template's grey matter, or a documented cerebellar box of the nilearn GM
template without AAL) further restricted to the subject's template-space brain mask.

Centiloid ESTIMATE: when the AAL cortical target region is available, the mean SUVR in it (global
cortical SUVR) is converted with the tracer family's published linear equation
(:data:`bids_amyloid.bids.tracers.FAMILIES`). These equations were calibrated for the GAAIN
standard VOIs and whole-cerebellum reference, not for this pipeline's regions, so the value is an
estimate, labelled as such, and never used as a label.
"""
from __future__ import annotations

import numpy as np

from bids_amyloid.bids import tracers


def reference_mean(pet_template: np.ndarray, region: np.ndarray, brain: np.ndarray | None = None) -> tuple[float, int]:
    """Mean PET in the reference region (restricted to ``brain`` when given) and its voxel count."""
    mask = np.asarray(region, bool)
    if brain is not None:
        restricted = mask & np.asarray(brain, bool)
        if restricted.sum() >= 0.5 * mask.sum():
            mask = restricted
    values = pet_template[mask]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), 0
    return float(values.mean()), int(values.size)


def suvr(pet_template: np.ndarray, ref_mean: float) -> np.ndarray:
    """PET / reference mean as float32 (caller checks ``ref_mean`` > 0)."""
    return (np.asarray(pet_template, np.float32) / np.float32(ref_mean)).astype(np.float32)


def centiloid_estimate(tracer: str, cortical_suvr: float | None) -> float | None:
    """Centiloid estimate from a global cortical SUVR, or None for a family without an equation."""
    equation = tracers.family(tracer).centiloid
    if equation is None or cortical_suvr is None or not np.isfinite(cortical_suvr):
        return None
    slope, intercept = equation
    return float(slope * cortical_suvr + intercept)
