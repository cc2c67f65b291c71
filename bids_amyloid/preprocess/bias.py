"""N4 bias-field correction (ANTs), tuned to be fast without losing accuracy.

Choice by measurement (real ch2 head at 1 mm with a known smooth multiplicative bias, 2 cores,
CPU seconds): ANTs defaults (shrink 4, four fitting levels of 50 iterations, tol 1e-7, no mask)
took 30-60 s and left a log-ratio error of 0.060 (std of log(corrected / true)); with an Otsu
foreground mask, shrink 6 and three fitting levels of 25, 25, 15 iterations (tol 1e-6) it takes
about 3 s and leaves 0.037 (50, 50, 30: 5 s, 0.045; more levels start fitting anatomy). The mask
is Otsu's threshold, as in the method's reference recipe (``ants.get_mask`` costs 3-6 s for no
measurable gain).

The shrink factor is given for 1 mm images; coarser images are shrunk less so that the bias field
is always fitted on a grid of about ``n4_shrink`` mm.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("bids_amyloid.preprocess")

N4_ITERATIONS = (25, 25, 15)
N4_TOLERANCE = 1e-6
N4_ITERATIONS_SLOPPY = (20, 10)


def n4_settings(preprocess_config, sloppy: bool) -> dict:
    """The N4 parameters recorded in sidecars."""
    return {
        "Method": "ANTs N4BiasFieldCorrection (antspyx)",
        "ShrinkFactorAt1mm": int(preprocess_config.n4_shrink),
        "Iterations": list(N4_ITERATIONS_SLOPPY if sloppy else N4_ITERATIONS),
        "Tolerance": N4_TOLERANCE,
        "Mask": "Otsu foreground",
    }


def shrink_for(image, shrink_at_1mm: int) -> int:
    """Shrink factor that fits the field at about ``shrink_at_1mm`` mm whatever the voxel size."""
    spacing = float(np.min(image.spacing))
    return max(1, int(round(shrink_at_1mm / max(spacing, 1e-3))))


def n4(image, preprocess_config, *, sloppy: bool = False):
    """Bias-corrected copy of the ANTs ``image`` (float32, same grid, non-negative)."""
    import ants

    offset = float(image.min())
    positive = image - offset if offset < 0 else image  # N4 works in log space
    mask = ants.threshold_image(positive, "Otsu", 1)
    if float(mask.sum()) < 0.01 * np.prod(mask.shape):
        log.debug("Otsu mask nearly empty; N4 uses the whole image")
        mask = None
    iters = list(N4_ITERATIONS_SLOPPY if sloppy else N4_ITERATIONS)
    out = ants.n4_bias_field_correction(
        positive,
        mask=mask,
        shrink_factor=shrink_for(image, preprocess_config.n4_shrink),
        convergence={"iters": iters, "tol": N4_TOLERANCE},
    )
    return out.new_image_like(np.maximum(out.numpy(), 0).astype(np.float32))
