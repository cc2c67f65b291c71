"""Regional summary of a template-space saliency map: share of its mass per atlas region.

Atlas: AAL (116 regions, :func:`bids_amyloid.space.atlas.load_aal`, the same loader the PET
regions use); without it (logged as a warning), coarse lobes from boxes in MNI coordinates
(``GEOMETRIC_LOBES``), labelled as a geometric approximation in the table's sidecar.

Voxels of the template brain mask that no region covers are reported as ``unlabelled``.
"""
from __future__ import annotations

import functools

import numpy as np

from bids_amyloid.bids.tables import Column
from bids_amyloid.space.atlas import Atlas, load_aal
from bids_amyloid.space.template import world_grid

GEOMETRIC_LOBES: tuple[tuple[str, str], ...] = (
    ("cerebellum", "y < -40 and z < -20"),
    ("occipital", "y < -70"),
    ("temporal", "z < 0 and y >= -70 and |x| >= 25"),
    ("frontal", "y >= -15 and z >= -30"),
    ("parietal", "y < -15 and z >= 15"),
    ("central_deep", "the rest of the brain mask (midline, deep grey matter, brainstem)"),
)
"""Fallback regions, assigned in this order (first rule that holds); each split into L/R by x."""


@functools.lru_cache(maxsize=1)
def load_atlas() -> Atlas:
    """AAL on the 1 mm template grid, else the geometric lobes."""
    atlas = load_aal()
    return atlas if atlas is not None else _geometric_lobes()


def _geometric_lobes() -> Atlas:
    x, y, z = world_grid(1)
    shape = x.shape
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
    # one pass: bin 0 = outside the brain, bin 1 = brain without a region, bin k + 1 = region k
    bins = np.where(brain, atlas.labels.astype(np.int32) + 1, 0).ravel()
    size = max(max(atlas.names, default=0), int(atlas.labels.max())) + 2
    counts = np.bincount(bins, minlength=size)
    sums = np.bincount(bins, weights=np.asarray(volume, dtype=np.float64).ravel(), minlength=size)
    total = float(sums[1:].sum())
    rows = []
    for index in sorted(set(atlas.names) | {0}):
        n = int(counts[index + 1])
        if n == 0:
            continue
        mass = float(sums[index + 1])
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


REGION_COLUMNS: dict[str, Column] = {
    "region_index": Column('Value of the region in the atlas image (n/a for unlabelled brain voxels).', long_name='Atlas label value'),
    "region": Column('Atlas region name (AAL naming, or a geometric lobe).', long_name='Region name'),
    "hemisphere": Column('Hemisphere from the region name.', long_name='Hemisphere', levels={'L': 'left', 'R': 'right', 'n/a': 'not lateralised'}),
    "n_voxels": Column('Template voxels of the region inside the brain mask.', long_name='Region size', units='voxels (1 mm^3)'),
    "saliency_share": Column('Sum of the template-space saliency map inside the region divided by its sum inside the brain mask (shares add up to 1).', long_name='Share of saliency mass', units='fraction'),
    "mean_saliency": Column("Mean of the saliency map (maximum scaled to 1) over the region's voxels. Most regions lie partly or fully outside the sagittal slice band and have little or no saliency.", long_name='Mean saliency', units='arbitrary (map maximum = 1)'),
}
"""Schema of the regions table."""
