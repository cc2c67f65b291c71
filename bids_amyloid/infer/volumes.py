"""Per-slice 2-D maps -> 3-D volumes on the template grid -> the native T1w grid.

The inverse of the slice extraction described in docs/dev/README.md ("Slice tensors"): a slice
is the template's (y, z) plane at one x index, zero-padded (centred) to a square of ``PadTo``
pixels and resized bilinearly to 224 x 224; array axis 0 = y, axis 1 = z. So a 224 x 224 map
is resized back to ``PadTo`` x ``PadTo`` (bilinear, half-pixel centres as the forward resize),
the padding is cropped away, and the plane is put at its template x index. Between two slice
positions the volume is interpolated linearly along x; outside the slice band it is zero.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from bids_amyloid.errors import DataError
from bids_amyloid.space import template
from bids_amyloid.space.antsio import nifti_like, to_ants

log = logging.getLogger("bids_amyloid.infer")


def template_grid() -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape, affine) of the 1 mm template (nilearn's ICBM152 2009a sym, 197 x 233 x 189)."""
    img = template.template_nifti(1)
    return tuple(int(x) for x in img.shape), img.affine.copy()  # type: ignore[return-value]


def pad_geometry(sidecar: Mapping[str, Any]) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(square size, (y, z) in-plane shape, (y, z) offsets of the image inside the square).

    Reads ``InPlaneShape``, ``PadTo`` and ``Padding.Widths`` (``[[before, after], ...]`` per
    axis) of the slice-cache sidecar; without widths the padding is centred with the smaller half
    first (``(size - n) // 2``), as ``preprocess.slices.pad_square`` does.
    """
    try:
        shape = tuple(int(v) for v in sidecar["InPlaneShape"])
        pad_to = sidecar.get("PadTo", max(shape))
        size = int(pad_to[0] if isinstance(pad_to, (list, tuple)) else pad_to)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"slice-cache sidecar lacks a usable InPlaneShape/PadTo ({exc})") from exc
    if len(shape) != 2 or size < max(shape):
        raise DataError(f"slice-cache sidecar: InPlaneShape {shape} does not fit PadTo {size}")
    widths = (sidecar.get("Padding") or {}).get("Widths") if isinstance(sidecar.get("Padding"), dict) else None
    if widths:
        offsets = tuple(int(w[0]) for w in widths)
    else:
        offsets = tuple((size - n) // 2 for n in shape)
    if any(o < 0 or o + n > size for o, n in zip(offsets, shape)):
        raise DataError(f"slice-cache sidecar: padding {offsets} does not fit {shape} into {size}")
    return size, shape, offsets  # type: ignore[return-value]


def unpad_maps(maps: np.ndarray, sidecar: Mapping[str, Any]) -> np.ndarray:
    """``[S, h, w]`` maps on the model grid (any size, e.g. 224 or the 14 x 14 patch grid)
    -> ``[S, ny, nz]`` maps on the template's (y, z) plane."""
    size, (ny, nz), (oy, oz) = pad_geometry(sidecar)
    x = torch.as_tensor(np.asarray(maps, dtype=np.float32))[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return x[:, oy : oy + ny, oz : oz + nz].numpy()


def to_template_volume(planes: np.ndarray, x_index: Sequence[int], shape: tuple[int, int, int]) -> np.ndarray:
    """Put ``[S, ny, nz]`` planes at template x indices ``x_index``; interpolate linearly along x
    between neighbouring slice positions; zero outside ``[min x, max x]``. Planes sharing one x
    (a slice picked twice) are averaged."""
    planes = np.asarray(planes, dtype=np.float32)
    xs = np.asarray(x_index, dtype=int)
    if planes.shape[0] != xs.size or planes.shape[1:] != tuple(shape[1:]):
        raise ValueError(f"planes {planes.shape} do not match {xs.size} x positions on a {shape} grid")
    if xs.min() < 0 or xs.max() >= shape[0]:
        raise DataError(f"slice x index outside the template grid (0..{shape[0] - 1}): {xs.min()}..{xs.max()}")
    unique = np.unique(xs)
    stacked = np.stack([planes[xs == u].mean(axis=0) for u in unique])
    volume = np.zeros(shape, dtype=np.float32)
    if unique.size == 1:
        volume[unique[0]] = stacked[0]
        return volume
    for x in range(int(unique[0]), int(unique[-1]) + 1):
        i = min(int(np.searchsorted(unique, x, side="right")) - 1, unique.size - 2)
        t = (x - unique[i]) / float(unique[i + 1] - unique[i])
        volume[x] = (1.0 - t) * stacked[i] + t * stacked[i + 1]
    return volume


def mass_inside(volume: np.ndarray, mask: np.ndarray) -> float:
    """Share of the (non-negative) map's sum that lies inside ``mask`` (NaN for an empty map)."""
    total = float(volume.sum())
    return float(volume[mask].sum() / total) if total > 0 else float("nan")


def mask_and_scale(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero outside ``mask``, then scale so the maximum is 1 (an all-zero map stays zero)."""
    out = np.where(mask, volume, 0.0).astype(np.float32)
    peak = float(out.max())
    return out / peak if peak > 0 else out


def map_image(data: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header | None = None) -> nib.Nifti1Image:
    """A float32 saliency map: on the template (qform/sform code 4), or with the native T1w's header."""
    data = np.asfortranarray(data, dtype=np.float32)  # NIfTI voxel order: nibabel writes it without a transpose
    if header is None:
        return nifti_like(data, affine, np.float32, 4)
    img = nib.Nifti1Image(data, affine, header=header)
    img.set_data_dtype(np.float32)
    img.header.set_xyzt_units("mm")
    return img


def to_native(maps: Sequence[np.ndarray], affine: np.ndarray, reference: Path,
              transforms: Sequence[str]) -> Iterator[np.ndarray]:
    """Resample template-space maps onto the grid of ``reference`` (the native T1w) with ANTs, in
    memory, one at a time (the fixed image is made once).

    ``transforms`` are in ``ants.apply_transforms`` order for template -> native (the saved
    inverse files: nothing is inverted). Linear interpolation. Each array is indexed like the
    voxels of ``reference`` as nibabel reads them.
    """
    import ants

    ref = nib.load(str(reference))
    fixed = to_ants(ref, np.zeros(ref.shape[:3], dtype=np.float32))  # only its grid is used
    for volume in maps:
        warped = ants.apply_transforms(fixed=fixed, moving=to_ants(map_image(volume, affine)),
                                       transformlist=[str(t) for t in transforms], interpolator="linear",
                                       defaultvalue=0)
        data = warped.numpy().astype(np.float32)
        del warped
        if data.shape != ref.shape[:3]:
            raise DataError(f"{reference}: ANTs returned a {data.shape} map for this grid")
        yield np.clip(data, 0.0, None, out=data)
