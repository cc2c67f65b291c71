"""The AAL atlas (116 regions) of the Debian package ``mricron-data``, on the template grid.

One folder and one environment variable for every user of the atlas and of the ch2 head:
``$BIDS_AMYLOID_ATLAS_DIR``, else ``/usr/share/mricron/templates``. The label image is resampled
onto the 1 mm template with ``nilearn.image.resample_to_img`` (nearest neighbour; AAL is drawn on
Colin27 in MNI coordinates). Region names come from ``aal.nii.txt`` (``index name code``); when
only the image is there, regions are named by their index and the description says so.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("bids_amyloid.space")

ATLAS_ENV = "BIDS_AMYLOID_ATLAS_DIR"
ATLAS_DIRS = ("/usr/share/mricron/templates",)
"""Where the mricron-data files are looked for after ``$BIDS_AMYLOID_ATLAS_DIR``."""


@dataclass(frozen=True)
class Atlas:
    labels: np.ndarray
    """int16 label per voxel of the 1 mm template grid (0 = none), read-only."""
    names: dict[int, str]
    name: str
    description: str


def atlas_dir(required: str = "aal.nii.gz") -> Path | None:
    """The folder holding ``required`` (``$BIDS_AMYLOID_ATLAS_DIR`` first), or None."""
    for folder in (os.environ.get(ATLAS_ENV, ""), *ATLAS_DIRS):
        if folder and (Path(folder) / required).is_file():
            return Path(folder)
    return None


def _names(path: Path) -> dict[int, str]:
    names = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return names


@functools.lru_cache(maxsize=1)
def load_aal() -> Atlas | None:
    """AAL on the 1 mm template grid, or None (logged) when mricron-data is not installed."""
    import nibabel as nib
    from nilearn.image import resample_to_img

    from bids_amyloid.space.template import template_nifti

    folder = atlas_dir()
    if folder is None:
        log.warning("AAL atlas not found (install mricron-data, or set %s): regional tables use geometric lobes "
                    "and no Centiloid estimate is made", ATLAS_ENV)
        return None
    image = nib.load(str(folder / "aal.nii.gz"))
    on_grid = resample_to_img(image, template_nifti(1), interpolation="nearest", force_resample=True,
                              copy_header=True)
    labels = np.rint(np.asarray(on_grid.dataobj)).astype(np.int16)
    labels.setflags(write=False)
    description = (f"AAL (116 regions; mricron-data {folder / 'aal.nii.gz'}), resampled to the template grid by "
                   "nearest neighbour (nilearn resample_to_img)")
    names_file = folder / "aal.nii.txt"
    if names_file.is_file():
        names = _names(names_file)
    else:
        log.warning("%s is missing: AAL regions are named by their index", names_file)
        names = {int(i): f"AAL{int(i)}" for i in np.unique(labels) if i}
        description += f"; {names_file.name} not found, so regions are named by their label value"
    return Atlas(labels, names, "AAL", description)
