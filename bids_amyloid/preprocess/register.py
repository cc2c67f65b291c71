"""Registration with ANTs: head -> template (affine or SyN), rigid intra-subject, transform files.

T1w -> template: the fixed image is the nilearn MNI152NLin2009aSym template at
``registration_resolution_mm`` (2 mm by default), the moving image the bias-corrected HEAD resampled
to the same spacing, and the metric mask the template brain mask dilated by 3 voxels, so the
brain-only template is matched to the brain of the head and the skull is ignored (an unmasked
registration of a brain-only template onto a head is unstable). The transform is then applied at
1 mm. ``affine`` (default) is one masked affine stage; ``syn`` adds a masked SyN stage
(``mask_all_stages``) and its transforms are written as ANTs composite ``.h5`` files.

Other contrasts and PET are registered rigidly (Mattes MI) to the same-session T1w with the
T1w brain mask (dilated) as metric mask, then mapped to the template by composing transforms.

Transform lists follow ANTs: ``forward`` maps the moving image onto the fixed grid
(``apply_transforms(fixed=<target grid>, moving=<source image>, forward)``); ``inverse`` is a
separate file (the affine inverted explicitly), so no ``whichtoinvert`` flags are needed.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("bids_amyloid.preprocess")

AFFINE_ITERATIONS = (2100, 1200, 1200, 10)
AFFINE_ITERATIONS_SLOPPY = (200, 100, 50, 0)
RIGID_ITERATIONS = (100, 50, 10)
"""Rigid levels at shrink 4, 2, 1 of a 2 mm grid (measured: PET 1.1 mm, FLAIR 0.16 mm mean error)."""
RIGID_ITERATIONS_SLOPPY = (100, 50)
SYN_ITERATIONS = (40, 20, 0)
SYN_ITERATIONS_SLOPPY = (20, 0, 0)
METRIC_MASK_DILATION = 3
"""Voxels (at the registration resolution) by which the template brain mask is dilated."""

_configured: dict[str, str] = {}


@dataclass(frozen=True)
class Registration:
    """Transform files of one registration (paths in a scratch folder until copied)."""

    forward: tuple[str, ...]
    inverse: tuple[str, ...]
    kind: str


def configure_ants(seed: int, threads: int) -> None:
    """Seed ANTs and fix its thread count; call before the first ANTs computation of a process.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` once; antspyx passes ``--random-seed`` to
    ``antsRegistration`` when ``ants.config`` holds a seed (``set_ants_deterministic(False, seed)``
    stores the seed without restricting the transform types). Bit-identical results also need
    one thread.
    """
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(int(threads))
    os.environ["ANTS_RANDOM_SEED"] = str(int(seed))
    import ants

    setter = getattr(getattr(ants, "config", None), "set_ants_deterministic", None)
    if setter is not None:
        setter(False, int(seed))
    previous = _configured.get("threads")
    if previous is not None and previous != str(threads):
        log.warning("ANTs threads already set to %s in this process; %s requested", previous, threads)
    _configured["threads"] = str(int(threads))


def settings(preprocess_config, sloppy: bool) -> dict:
    """Registration settings recorded in sidecars."""
    syn = preprocess_config.registration == "syn"
    return {
        "Method": "ANTs antsRegistration (antspyx)",
        "Type": "Affine+SyN" if syn else "Affine",
        "Metric": "Mattes mutual information",
        "EstimatedAtResolutionMM": int(preprocess_config.registration_resolution_mm),
        "AppliedAtResolutionMM": 1,
        "MetricMask": f"template brain mask dilated by {METRIC_MASK_DILATION} voxels",
        "AffineIterations": list(AFFINE_ITERATIONS_SLOPPY if sloppy else AFFINE_ITERATIONS),
        "SyNIterations": list(SYN_ITERATIONS_SLOPPY if sloppy else SYN_ITERATIONS) if syn else None,
        "IntraSubject": "Rigid, Mattes MI at 2 mm (PET: to the skull-stripped T1w, brain mask dilated 3 voxels)",
        "RigidIterations": list(RIGID_ITERATIONS_SLOPPY if sloppy else RIGID_ITERATIONS),
        "Sloppy": bool(sloppy),
    }


def resample_to(image, spacing_mm: float):
    """Linear resampling to isotropic ``spacing_mm`` (images already coarser are returned as is)."""
    import ants

    if float(np.min(image.spacing)) >= spacing_mm - 1e-3:
        return image
    return ants.resample_image(image, (spacing_mm,) * 3, use_voxels=False, interp_type=0)


def register_to_template(head, preprocess_config, workdir: Path, *, sloppy: bool = False,
                         name: str = "t1w") -> Registration:
    """Register the bias-corrected head image (ANTs, any grid) to the brain-only template."""
    import ants

    from bids_amyloid.space import template
    from bids_amyloid.space.antsio import to_ants

    res = int(preprocess_config.registration_resolution_mm)
    fixed = to_ants(template.template_nifti(res))
    mask = to_ants(template.metric_mask_nifti(res, METRIC_MASK_DILATION))
    moving = _normalised(resample_to(head, float(res)))
    prefix = str(Path(workdir) / f"{name}_to_template_")
    if preprocess_config.registration == "syn":
        reg = ants.registration(
            fixed, moving, type_of_transform="SyN", mask=mask, mask_all_stages=True,
            reg_iterations=SYN_ITERATIONS_SLOPPY if sloppy else SYN_ITERATIONS,
            write_composite_transform=True, outprefix=prefix,
        )
        return Registration(_as_tuple(reg["fwdtransforms"]), _as_tuple(reg["invtransforms"]), "syn")
    reg = ants.registration(
        fixed, moving, type_of_transform="Affine", mask=mask,
        aff_iterations=AFFINE_ITERATIONS_SLOPPY if sloppy else AFFINE_ITERATIONS, outprefix=prefix,
    )
    forward = _as_tuple(reg["fwdtransforms"])
    return Registration(forward, (invert_affine(forward[0], prefix + "inverse.mat"),), "affine")


def register_rigid(fixed, moving, fixed_mask, workdir: Path, name: str, *, sloppy: bool = False,
                   spacing_mm: float = 2.0, sampling_rate: float = 0.2) -> Registration:
    """Rigid ``moving`` -> ``fixed`` (ANTs images; intensities may differ: MI metric).

    ``fixed_mask`` (ANTs image, non-zero = brain, on the fixed grid) is resampled to the
    registration spacing and dilated by ``METRIC_MASK_DILATION`` voxels to form the metric mask.
    ``sampling_rate``: the share of voxels the MI metric samples (antspyx's default 0.2; small
    images need more for a stable optimum).
    """
    import ants
    from scipy import ndimage

    from bids_amyloid.space.template import ball

    prefix = str(Path(workdir) / f"{name}_rigid_")
    iterations = RIGID_ITERATIONS_SLOPPY if sloppy else RIGID_ITERATIONS
    fixed_small = _normalised(resample_to(fixed, spacing_mm))
    mask_small = None
    if fixed_mask is not None:
        mask_small = ants.resample_image_to_target(fixed_mask, fixed_small, interp_type="linear")
        grown = ndimage.binary_dilation(mask_small.numpy() > 0.5, structure=ball(METRIC_MASK_DILATION))
        mask_small = mask_small.new_image_like(grown.astype(np.float32))
    reg = ants.registration(
        fixed_small, _normalised(resample_to(moving, spacing_mm)), type_of_transform="Rigid", mask=mask_small,
        aff_iterations=iterations, aff_shrink_factors=(4, 2, 1)[: len(iterations)],
        aff_smoothing_sigmas=(2, 1, 0)[: len(iterations)], aff_random_sampling_rate=sampling_rate, outprefix=prefix,
    )
    forward = _as_tuple(reg["fwdtransforms"])
    return Registration(forward, (invert_affine(forward[0], prefix + "inverse.mat"),), "rigid")


def apply(fixed_grid, moving, transforms, interpolator: str = "linear"):
    """``moving`` resampled onto ``fixed_grid`` through ``transforms`` (ANTs order)."""
    import ants

    return ants.apply_transforms(fixed_grid, moving, list(transforms), interpolator=interpolator, defaultvalue=0)


def invert_affine(path: str, out: str) -> str:
    import ants

    ants.write_transform(ants.read_transform(path).invert(), out)
    return out


def _normalised(image):
    """Intensities scaled to [0, 1] by the 99.5th percentile (MI is scale-free; this keeps bins sane)."""
    arr = image.numpy()
    hi = float(np.percentile(arr[arr > 0], 99.5)) if np.any(arr > 0) else float(arr.max())
    if hi <= 0:
        return image
    return image.new_image_like(np.clip(arr / hi, 0, 1).astype(np.float32))


def _as_tuple(value) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
