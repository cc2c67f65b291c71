"""Regional summary of a template-space saliency map: share of its mass per atlas region.

Atlas, first found wins:

1. AAL (116 regions) of the Debian package ``mricron-data``: ``aal.nii.gz`` + ``aal.nii.txt``
   (``index name code`` per line) in ``$BIDS_AMYLOID_ATLAS_DIR`` or ``/usr/share/mricron/templates``.
   AAL is drawn on Colin27 in MNI coordinates; it is resampled to the template grid by
   nearest-neighbour lookup at each template voxel's world position.
2. Fallback: coarse lobes from boxes in MNI coordinates (``GEOMETRIC_LOBES``), clearly labelled
   as a geometric approximation in the table's sidecar.

Voxels of the template brain mask that no region covers are reported as ``unlabelled``.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

ATLAS_DIRS = ("/usr/share/mricron/templates",)

GEOMETRIC_LOBES: tuple[tuple[str, str], ...] = (
    ("cerebellum", "y < -40 and z < -20"),
    ("occipital", "y < -70"),
    ("temporal", "z < 0 and y >= -70 and |x| >= 25"),
    ("frontal", "y >= -15 and z >= -30"),
    ("parietal", "y < -15 and z >= 15"),
    ("central_deep", "the rest of the brain mask (midline, deep grey matter, brainstem)"),
)
"""Fallback regions, assigned in this order (first rule that holds); each split into L/R by x."""


@dataclass(frozen=True)
class Atlas:
    labels: np.ndarray
    """int16 label per template voxel (0 = none)."""
    names: dict[int, str]
    name: str
    description: str


def _atlas_dir() -> Path | None:
    for folder in (os.environ.get("BIDS_AMYLOID_ATLAS_DIR", ""),) + ATLAS_DIRS:
        if folder and (Path(folder) / "aal.nii.gz").is_file() and (Path(folder) / "aal.nii.txt").is_file():
            return Path(folder)
    return None


def _read_aal_names(path: Path) -> dict[int, str]:
    names = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


def _world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return affine[:3, :3] @ ijk + affine[:3, 3:4]


@functools.lru_cache(maxsize=2)
def load_atlas(shape: tuple[int, int, int], affine_bytes: bytes) -> Atlas:
    """The atlas on a grid (``affine_bytes`` = ``affine.tobytes()``, hashable for the cache)."""
    affine = np.frombuffer(affine_bytes, dtype=np.float64).reshape(4, 4)
    folder = _atlas_dir()
    if folder is not None:
        aal = nib.load(str(folder / "aal.nii.gz"))
        coords = np.linalg.inv(aal.affine) @ np.vstack([_world(shape, affine), np.ones((1, int(np.prod(shape))))])
        labels = ndimage.map_coordinates(np.asarray(aal.dataobj), coords[:3], order=0, mode="constant", cval=0)
        labels = labels.reshape(shape).astype(np.int16)
        names = _read_aal_names(folder / "aal.nii.txt")
        return Atlas(labels, names, "AAL",
                     f"AAL (116 regions; mricron-data {folder / 'aal.nii.gz'}), resampled to the template grid "
                     "by nearest neighbour")
    x, y, z = (v.reshape(shape) for v in _world(shape, affine))
    labels = np.zeros(shape, dtype=np.int16)
    rules = [
        (y < -40) & (z < -20),
        y < -70,
        (z < 0) & (y >= -70) & (np.abs(x) >= 25),
        (y >= -15) & (z >= -30),
        (y < -15) & (z >= 15),
        np.ones(shape, dtype=bool),
    ]
    names = {}
    for i, ((lobe, _), rule) in enumerate(zip(GEOMETRIC_LOBES, rules)):
        free = (labels == 0) & rule
        labels[free & (x < 0)] = 2 * i + 1
        labels[free & (x >= 0)] = 2 * i + 2
        names[2 * i + 1], names[2 * i + 2] = f"{lobe}_L", f"{lobe}_R"
    return Atlas(labels, names, "geometric-lobes",
                 "GEOMETRIC APPROXIMATION (no atlas found): coarse lobes from boxes in MNI coordinates, "
                 "assigned in order: " + "; ".join(f"{n}: {r}" for n, r in GEOMETRIC_LOBES)
                 + "; split into left (x < 0) and right")


def regional_table(volume: np.ndarray, brain: np.ndarray, atlas: Atlas) -> list[dict[str, object]]:
    """Rows (sorted by share, then atlas index): region_index, region, hemisphere, n_voxels,
    saliency_share, mean_saliency. Regions are restricted to the brain mask; regions without
    brain voxels are left out; ``unlabelled`` collects brain voxels without a region."""
    data = np.where(brain, volume, 0.0).astype(np.float64)
    total = float(data.sum())
    labels = np.where(brain, atlas.labels, 0)
    counts = np.bincount(labels.ravel(), minlength=max(atlas.names, default=0) + 1)
    sums = np.bincount(labels.ravel(), weights=data.ravel(), minlength=counts.size)
    rows = []
    for index in sorted(set(atlas.names) | {0}):
        n = int(counts[index]) if index < counts.size else 0
        if index == 0:
            n = int((brain & (atlas.labels == 0)).sum())
        if n == 0:
            continue
        mass = float(sums[index]) if index else float(data[brain & (atlas.labels == 0)].sum())
        name = atlas.names.get(index, "unlabelled") if index else "unlabelled"
        hemi = name.rsplit("_", 1)[-1] if name[-2:] in ("_L", "_R") else "n/a"
        rows.append({
            "region_index": index if index else "n/a",
            "region": name,
            "hemisphere": hemi,
            "n_voxels": n,
            "saliency_share": mass / total if total > 0 else float("nan"),
            "mean_saliency": mass / n,
        })
    order = lambda r: (-r["saliency_share"] if total > 0 else 0.0,  # noqa: E731
                       r["region_index"] if r["region_index"] != "n/a" else 10**6)
    rows.sort(key=order)
    return rows


REGION_COLUMNS = {
    "region_index": {"LongName": "Atlas label value",
                     "Description": "Value of the region in the atlas image (n/a for unlabelled brain voxels)."},
    "region": {"LongName": "Region name", "Description": "Atlas region name (AAL naming, or a geometric lobe)."},
    "hemisphere": {"LongName": "Hemisphere", "Description": "Hemisphere from the region name.",
                   "Levels": {"L": "left", "R": "right", "n/a": "not lateralised"}},
    "n_voxels": {"LongName": "Region size", "Description": "Template voxels of the region inside the brain mask.",
                 "Units": "voxels (1 mm^3)"},
    "saliency_share": {"LongName": "Share of saliency mass",
                       "Description": "Sum of the template-space saliency map inside the region divided by its "
                                      "sum inside the brain mask (shares add up to 1).",
                       "Units": "fraction"},
    "mean_saliency": {"LongName": "Mean saliency",
                      "Description": "Mean of the saliency map (maximum scaled to 1) over the region's voxels. "
                                     "Most regions lie partly or fully outside the sagittal slice band and have "
                                     "little or no saliency.",
                      "Units": "arbitrary (map maximum = 1)"},
}
"""JSON data dictionary of the regions table."""
