"""Load, check and reorient input images; convert between nibabel and ANTs.

Every input image goes through :func:`load_image`, which either returns a float32 image in the
closest canonical (RAS) voxel order or raises :class:`~bids_amyloid.errors.DataError` naming the
file and the problem. Reorientation uses ``nibabel.as_closest_canonical``, which permutes/flips
the voxel array AND updates the affine together, so every voxel keeps its world position (the
reference scripts flipped data without the matching affine and mirrored non-RAS brains).

A 4-D PET is read frame by frame with :func:`load_frames` (only the frames asked for; the SUVR
window's frames are chosen and combined in :mod:`bids_amyloid.preprocess.frames`). Every other
image must be 3-D (a trailing singleton 4th axis is accepted and dropped).
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from bids_amyloid.errors import DataError, MissingInputError
from bids_amyloid.space.antsio import nifti_like

log = logging.getLogger("bids_amyloid.preprocess")

MIN_VOXEL_MM = 0.1
"""Voxel spacings at or below this are rejected as absurd."""
MIN_AXIS_VOXELS = 8
"""A 3-D image needs at least this many voxels along every axis."""
THICK_CONTRASTS = ("FLAIR", "T2starw")
"""Contrasts that may be acquired with thick slices (``max_voxel_thick_mm``)."""

@dataclass(frozen=True)
class LoadedImage:
    """A checked input: float32 image in RAS voxel order plus what was done to it."""

    path: Path
    image: nib.Nifti1Image
    orientation: str
    """Voxel axis codes of the file as stored (e.g. 'LPS'); the image itself is RAS."""
    frames: int
    """Frames averaged (1 for 3-D images)."""


def max_voxel_for(kind: str, preprocess_config) -> float:
    """Largest voxel spacing accepted for ``kind`` (a contrast or 'pet')."""
    if kind == "pet":
        return float(preprocess_config.max_voxel_pet_mm)
    if kind in THICK_CONTRASTS:
        return float(preprocess_config.max_voxel_thick_mm)
    return float(preprocess_config.max_voxel_mm)


def _open(path: Path, kind: str, max_voxel_mm: float) -> tuple[nib.Nifti1Image, str, int]:
    """Checked header of ``path``: (image, stored orientation, number of frames)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: file not found")
    _check_compression(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for unreadable headers
        raise DataError(f"{path}: not a readable NIfTI image ({type(exc).__name__}: {exc})") from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DataError(f"{path}: expected a NIfTI image, got {type(img).__name__}")
    orientation = _check_affine(path, img)
    frames = _check_shape(path, tuple(int(s) for s in img.shape), kind)
    _check_spacing(path, img.affine, kind, max_voxel_mm)
    return img, orientation, frames


def _read(path: Path, proxy) -> np.ndarray:
    try:
        return np.asarray(proxy, dtype=np.float32)
    except (EOFError, zlib.error, OSError, ValueError) as exc:
        raise DataError(f"{path}: truncated or corrupt image data ({type(exc).__name__}: {exc})") from exc


def _canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    return np.asarray(canonical.dataobj, dtype=np.float32), canonical.affine


def load_image(path: Path, kind: str, max_voxel_mm: float) -> LoadedImage:
    """Read ``path``, check it and return it reoriented to RAS as float32.

    ``kind`` is the contrast ('T1w', 'FLAIR', ...) or 'pet' (a 4-D PET goes through
    :func:`load_frames`). Raises ``DataError`` (naming the file) for: non-gzip content named
    ``.gz``, truncated or corrupt files, 2-D images, 4-D images, NaN/Inf values, empty or constant
    images, voxel spacings <= 0.1 mm or > ``max_voxel_mm``, singular or non-orthogonal (sheared)
    affines and images whose orientation is unknown (qform and sform codes both 0).
    """
    path = Path(path)
    img, orientation, frames = _open(path, kind, max_voxel_mm)
    if frames > 1:
        raise DataError(f"{path}: 4-D PET with {frames} frames; it needs its frame timing to become one static "
                        "image (bids_amyloid.preprocess.frames)")
    data = _read(path, img.dataobj).reshape(img.shape[:3])
    _check_values(path, data)
    data, affine = _canonical(data, img.affine)
    return LoadedImage(path=path, image=nifti_like(data, affine), orientation=orientation, frames=1)


def load_frames(path: Path, indices: list[int], max_voxel_mm: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Frames ``indices`` of a 4-D PET as a RAS float32 array [x, y, z, k], its affine and stored orientation.

    Only the span of frames from the first to the last index is read (a gzip stream is read once).
    """
    path = Path(path)
    img, orientation, frames = _open(path, "pet", max_voxel_mm)
    if not indices or min(indices) < 0 or max(indices) >= frames:
        raise DataError(f"{path}: frames {indices} requested but the image has {frames}")
    lo, hi = min(indices), max(indices)
    data = _read(path, img.dataobj[..., lo:hi + 1])[..., [i - lo for i in indices]]
    for k, index in enumerate(indices):
        _check_values(path, data[..., k], f" (frame {index})")
    data, affine = _canonical(data, img.affine)
    return data, affine, orientation


def _check_compression(path: Path) -> None:
    if path.name.endswith(".gz"):
        with open(path, "rb") as handle:
            magic = handle.read(2)
        if magic != b"\x1f\x8b":
            raise DataError(f"{path}: named .gz but is not gzip-compressed (corrupt or mislabelled file)")


def _check_affine(path: Path, img) -> str:
    header = img.header
    if isinstance(header, nib.Nifti1Header):
        qcode, scode = int(header["qform_code"]), int(header["sform_code"])
        if qcode == 0 and scode == 0:
            raise DataError(f"{path}: qform_code and sform_code are both 0, so the orientation is unknown")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise DataError(f"{path}: affine contains NaN/Inf")
    rot = affine[:3, :3]
    norms = np.linalg.norm(rot, axis=0)
    if np.any(norms < 1e-6) or abs(np.linalg.det(rot)) < 1e-9:
        raise DataError(f"{path}: singular affine (a voxel axis has zero length)")
    unit = rot / norms
    gram = unit.T @ unit
    off = np.abs(gram - np.eye(3)).max()
    if off > 1e-3:
        raise DataError(f"{path}: non-orthogonal (sheared) affine, max axis cosine {off:.4f}")
    return "".join(nib.aff2axcodes(affine))


def _check_shape(path: Path, shape: tuple[int, ...], kind: str) -> int:
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) < 3 or min(shape[:3]) < 2:
        raise DataError(f"{path}: image is 2-D (shape {shape}), expected a 3-D volume")
    if len(shape) > 4:
        raise DataError(f"{path}: image has {len(shape)} dimensions (shape {shape}), expected 3-D")
    if min(shape[:3]) < MIN_AXIS_VOXELS:
        raise DataError(f"{path}: fewer than {MIN_AXIS_VOXELS} voxels along an axis (shape {shape})")
    if len(shape) == 4:
        if kind != "pet":
            raise DataError(f"{path}: 4-D image with {shape[3]} volumes (shape {shape}), expected a 3-D {kind}")
        return int(shape[3])
    return 1


def _check_values(path: Path, data: np.ndarray, where: str = "") -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        raise DataError(f"{path}{where}: {int(bad.sum())} voxels are NaN or Inf")
    lo, hi = float(data.min()), float(data.max())
    if hi == lo:
        what = "empty (all zero)" if hi == 0 else f"constant (every voxel {hi:g})"
        raise DataError(f"{path}{where}: image is {what}")


def _check_spacing(path: Path, affine: np.ndarray, kind: str, max_voxel_mm: float) -> None:
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    text = "x".join(f"{s:.3g}" for s in spacing)
    if spacing.min() <= MIN_VOXEL_MM:
        raise DataError(f"{path}: absurd voxel size {text} mm (<= {MIN_VOXEL_MM} mm)")
    if spacing.max() > max_voxel_mm + 1e-3:
        raise DataError(f"{path}: voxel size {text} mm exceeds the {max_voxel_mm} mm allowed for {kind}")
