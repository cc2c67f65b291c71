"""Intensity normalisation and sagittal slice tensors (the preprocess -> train/infer contract).

See ``docs/dev/README.md`` ("Slice tensors"). Per session and modality: float16 ``[n_slices, 224,
224]``; slices at integer template x indices evenly spaced over the central ``slice_band`` of the
template's left-right extent, sorted left -> right (numerically, never as strings). Each slice is
the template (y, z) plane: zero-padded, centred, to a square of side max(y, z), then resized
bilinearly (PyTorch ``interpolate(mode='bilinear', align_corners=False)`` semantics, implemented
with NumPy) to ``slice_size``; axis 0 = y (posterior -> anterior), axis 1 = z (inferior ->
superior). MRI: brain-masked, clipped to the 0.5/99.5 brain percentiles, scaled to [0, 1],
gamma 0.9 (whole-volume, never per slice). PET: SUVR kept as float (brain-masked, no rescaling).
"""
from __future__ import annotations

import numpy as np


def slice_indices(n_x: int, n_slices: int, band: tuple[float, float]) -> list[int]:
    """Integer x indices, sorted, evenly spaced over ``band`` of the extent 0 .. n_x - 1."""
    lo, hi = band
    positions = np.linspace(lo * (n_x - 1), hi * (n_x - 1), int(n_slices))
    idx = np.floor(positions + 0.5).astype(int)
    return sorted(int(i) for i in np.clip(idx, 0, n_x - 1))


def normalise_mri(volume: np.ndarray, mask: np.ndarray, clip: tuple[float, float], gamma: float) -> np.ndarray:
    """Method recipe on one whole volume: clip to brain percentiles, scale to [0, 1], gamma; 0 outside."""
    mask = np.asarray(mask, bool)
    values = volume[mask]
    if values.size == 0:
        raise ValueError("empty brain mask")
    lo, hi = np.percentile(values, clip)
    scale = float(hi - lo) if hi > lo else 1.0
    out = np.clip((volume.astype(np.float32) - np.float32(lo)) / np.float32(scale), 0.0, 1.0)
    out = np.power(out, np.float32(gamma), dtype=np.float32)
    out[~mask] = 0.0
    return out


def resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of 1-D linear interpolation, PyTorch ``align_corners=False`` semantics."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(weights, (np.arange(n_out), i0), 1.0 - frac)
    np.add.at(weights, (np.arange(n_out), i1), frac)
    return weights


def pad_square(plane: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Zero-pad a 2-D array, centred, to a square of side max(shape); return it and the padding."""
    side = max(plane.shape)
    pads = []
    for n in plane.shape:
        before = (side - n) // 2
        pads.append([before, side - n - before])
    return np.pad(plane, pads, mode="constant"), pads


def extract_slices(volume: np.ndarray, indices: list[int], size: int) -> tuple[np.ndarray, list[list[int]]]:
    """``[len(indices), size, size]`` float32 slices of a template-grid volume (x, y, z)."""
    n_y, n_z = volume.shape[1:3]
    side = max(n_y, n_z)
    weights = resize_weights(side, size)
    out = np.empty((len(indices), size, size), dtype=np.float32)
    pads: list[list[int]] = []
    for k, x in enumerate(indices):
        square, pads = pad_square(np.asarray(volume[x], dtype=np.float64))
        out[k] = weights @ square @ weights.T
    return out, pads


def slice_metadata(indices: list[int], slices: np.ndarray, in_plane: tuple[int, int], pads, size: int,
                   band: tuple[float, float]) -> dict:
    """The contract fields of a slice-tensor sidecar (provenance is added by the caller)."""
    side = max(in_plane)
    return {
        "SliceAxis": "x",
        "TemplateXIndex": [int(i) for i in indices],
        "SliceBand": [float(band[0]), float(band[1])],
        "SliceMean": [float(m) for m in slices.reshape(len(indices), -1).mean(axis=1)],
        "InPlaneShape": [int(in_plane[0]), int(in_plane[1])],
        "InPlaneAxes": ["y (posterior->anterior)", "z (inferior->superior)"],
        "PadTo": [side, side],
        "Padding": {"Mode": "constant zero, centred", "Widths": pads},
        "Resampling": {
            "Method": "bilinear",
            "AlignCorners": False,
            "Antialias": False,
            "Semantics": "torch.nn.functional.interpolate(mode='bilinear', align_corners=False)",
            "Size": [int(size), int(size)],
        },
        "Shape": [len(indices), int(size), int(size)],
        "DType": "float16",
    }
