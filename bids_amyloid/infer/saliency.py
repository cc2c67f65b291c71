"""Saliency maps of the student ensemble as 3-D volumes: template space, native T1w space, and a
regional summary.

Per session, contrast and method (``gradcam``, ``gradient``; attribution details in
:mod:`bids_amyloid.infer.ensemble`), the fold-averaged slice maps are put back onto the 1 mm
template grid (:mod:`bids_amyloid.infer.volumes`: undo resize and padding, place at the slices'
template x indices, linear along x between them, zero outside the slice band). Then:

* the share of the map's mass inside the template brain mask is recorded (``MassInsideBrainMask``,
  a QC number: a model that looks at the brain scores near 1);
* the map is masked with the brain mask and scaled so its MAXIMUM is 1 (scale-free, comparable
  between sessions and easy to threshold; the regional table turns it into mass shares);
* written as ``..._space-MNI152NLin2009aSym_desc-<method><contrast>_saliency.nii.gz``;
* mapped onto the native T1w grid with the saved template -> native (inverse) transform (ANTs,
  linear), masked with the native brain mask, scaled to maximum 1:
  ``..._desc-<method><contrast>_saliency.nii.gz``;
* summarised per atlas region: ``..._space-MNI152NLin2009aSym_desc-<method><contrast>_regions.tsv``.

Every file gets a JSON sidecar with its Sources, the method and the provenance.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_amyloid.bids.derivatives import SessionDerivatives
from bids_amyloid.bids.io import atomic_write_json, write_with
from bids_amyloid.bids.names import output_uri, sidecar_of
from bids_amyloid.bids.tables import write_table
from bids_amyloid.config import TEMPLATE_SPACE
from bids_amyloid.infer import regions as regions_mod
from bids_amyloid.infer import volumes
from bids_amyloid.space.template import template_mask_array

log = logging.getLogger("bids_amyloid.infer")

METHOD_TEXT = {
    "gradcam": {
        "Name": "Grad-CAM",
        "Description": (
            "Grad-CAM of the student logit on the 14 x 14 patch tokens entering the last ViT block: channel "
            "weights = mean gradient over the patch tokens, map = ReLU(weighted sum of the token activations), "
            "upsampled bilinearly to the slice."),
    },
    "gradient": {
        "Name": "Input gradient",
        "Description": "Absolute gradient of the student logit with respect to the model input, summed over the "
                       "three (replicated gray) channels: each fold's logit, or the folds' mean logit when "
                       "Model.SaliencyGradient is 'ensemble'.",
    },
}
AGGREGATION = (
    "Per fold, each slice map is multiplied by the attention-pooling weight of its slice and the fold's maps are "
    "scaled to sum 1; the folds are then averaged. Slice maps are placed at their template x index (resize and "
    "padding undone), interpolated linearly along x between slice positions and zero outside the slice band.")
NORMALISATION = "Masked with the brain mask, then scaled so that the maximum is 1 (unitless)."


@dataclass(frozen=True)
class NativeGrid:
    """Where and how to put template-space maps onto the native T1w grid."""

    reference: Path
    """Preprocessed native T1w (defines the output grid)."""
    brain_mask: Path | None
    transforms: tuple[str, ...]
    """ANTs transform files, in apply_transforms order for template -> native (the saved inverses)."""


def _save(data: np.ndarray, affine: np.ndarray, path: Path, header: nib.Nifti1Header | None = None) -> None:
    image = volumes.map_image(data, affine, header)
    write_with(path, lambda tmp: nib.save(image, str(tmp)))


def template_volume(slice_maps: np.ndarray, x_index: Sequence[int], slice_sidecar: Mapping[str, Any]) -> np.ndarray:
    """``[S, h, w]`` model-grid maps of the input slices -> unmasked template-grid volume."""
    shape, _ = volumes.template_grid()
    planes = volumes.unpad_maps(slice_maps, slice_sidecar)
    return volumes.to_template_volume(np.clip(planes, 0.0, None), x_index, shape)


def write_saliency(*, session: SessionDerivatives, contrast: str, maps: Mapping[str, np.ndarray],
                   x_index: Sequence[int], slice_sidecar: Mapping[str, Any], native: NativeGrid | None,
                   sources: list[str], extra: Mapping[str, Any]) -> dict[str, dict[str, Path]]:
    """For each method of ``maps`` (method -> ``[S, h, w]`` slice maps): write the template map,
    the regions table and the native map (when ``native`` is given), each with a sidecar; return
    method -> the paths written. ``extra`` (model, provenance) goes into every sidecar. The
    native grid, its mask and its ANTs image are read once for all methods."""
    out_dir = session.layout.root
    _, affine = volumes.template_grid()
    brain = template_mask_array()
    atlas = regions_mod.load_atlas()
    written: dict[str, dict[str, Path]] = {}
    template_maps, commons = {}, {}
    for method, slice_maps in maps.items():
        paths = session.saliency(contrast, method)
        raw = template_volume(slice_maps, x_index, slice_sidecar)
        inside = volumes.mass_inside(raw, brain)
        template_maps[method] = volume = volumes.mask_and_scale(raw, brain)
        del raw
        commons[method] = common = _common_fields(method, contrast, inside, x_index, affine, extra)
        _save(volume, affine, paths["template"])
        atomic_write_json(sidecar_of(paths["template"]), {
            **common, "Space": TEMPLATE_SPACE, "Resolution": f"1 mm, {'x'.join(map(str, volume.shape))} voxels "
            "(nilearn ICBM152 2009a nonlinear symmetric)", "Sources": sources})
        write_table(paths["regions"], regions_mod.regional_table(volume, brain, atlas), regions_mod.REGION_COLUMNS, {
            "Atlas": {"Name": atlas.name, "Description": atlas.description},
            "Description": f"Share of the {METHOD_TEXT[method]['Name']} saliency mass (template space, inside the "
                           "brain mask) per atlas region, largest first.",
            "Sources": [output_uri(paths["template"], out_dir)], **extra})
        written[method] = {"template": paths["template"], "regions": paths["regions"]}
    if native is not None:
        _write_native(session, contrast, template_maps, affine, native, commons, sources)
        for method in maps:
            written[method]["native"] = session.saliency(contrast, method)["native"]
    return written


def _common_fields(method: str, contrast: str, inside: float, x_index: Sequence[int], affine: np.ndarray,
                   extra: Mapping[str, Any]) -> dict[str, Any]:
    xs = np.asarray(x_index, dtype=int)
    return {
        "SkullStripped": True,
        "Contrast": contrast,
        "Method": {**METHOD_TEXT[method], "Aggregation": AGGREGATION, "Normalisation": NORMALISATION},
        "Units": "arbitrary (maximum 1)",
        "MassInsideBrainMask": round(inside, 6) if inside == inside else "n/a",
        "SliceBand": {"TemplateXIndex": sorted({int(x) for x in xs}),
                      "XRangeMM": [float(affine[0, 0] * xs.min() + affine[0, 3]),
                                   float(affine[0, 0] * xs.max() + affine[0, 3])]},
        **extra,
    }


def _write_native(session: SessionDerivatives, contrast: str, template_maps: Mapping[str, np.ndarray],
                  affine: np.ndarray, native: NativeGrid, commons: Mapping[str, dict[str, Any]],
                  sources: list[str]) -> None:
    """Warp every template map onto the native T1w grid (one ANTs fixed image), mask, scale, write."""
    out_dir = session.layout.root
    ref = nib.load(str(native.reference))
    mask = np.asarray(nib.load(str(native.brain_mask)).dataobj) > 0 if native.brain_mask else None
    if mask is None or mask.shape != ref.shape[:3]:
        if mask is not None:
            log.warning("%s: brain mask grid %s differs from the T1w grid %s; native map not masked",
                        native.brain_mask, mask.shape, ref.shape[:3])
        mask = np.ones(ref.shape[:3], dtype=bool)
    header = ref.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    transforms = [output_uri(Path(t), out_dir) for t in native.transforms]
    warped = volumes.to_native(list(template_maps.values()), affine, native.reference, native.transforms)
    for method, data in zip(template_maps, warped):
        path = session.saliency(contrast, method)["native"]
        _save(volumes.mask_and_scale(data, mask), ref.affine, path, header)
        del data
        atomic_write_json(sidecar_of(path), {
            **commons[method], "Space": "T1w (native, grid of the preprocessed T1w)",
            "Sources": sources + [output_uri(session.saliency(contrast, method)["template"], out_dir),
                                  output_uri(native.reference, out_dir)] + transforms,
            "Transform": {"Files": transforms, "Inverted": [False] * len(transforms),
                          "Interpolation": "linear (ANTs apply_transforms)"}})
