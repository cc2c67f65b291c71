"""Helpers for preprocessing tests: small hand-made images, the ch2 head, configs, cohort sessions."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_amyloid.bids.records import PetScan, Session
from bids_amyloid.config import Config

CH2 = Path("/usr/share/mricron/templates/ch2.nii.gz")
CH2BET = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
needs_ch2 = pytest.mark.skipif(
    not (CH2.exists() and CH2BET.exists()),
    reason="mricron-data not installed (apt-get install -y mricron-data gives the real ch2 head)",
)


def blob(shape=(40, 48, 36), zooms=(2.0, 2.0, 2.0), seed=0) -> nib.Nifti1Image:
    """A small RAS image: an off-centre ellipsoid with noise (asymmetric, so flips are visible)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float32)
    centre = np.array(shape) * np.array([0.45, 0.55, 0.5])
    r = np.sqrt((((grid - centre[:, None, None, None]) / (np.array(shape)[:, None, None, None] * 0.3)) ** 2).sum(0))
    data = (100.0 * (r < 1) + 30.0 * (grid[0] / shape[0]) * (r < 1) + rng.normal(0, 2, shape)).astype(np.float32)
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = -np.array(shape) * np.array(zooms) / 2
    return nib.Nifti1Image(data, affine)


def reorient(img: nib.Nifti1Image, codes: str) -> nib.Nifti1Image:
    """The same image stored with voxel axes ``codes`` (e.g. 'LPS'): data and affine changed together."""
    from nibabel import orientations as ornt

    current = ornt.io_orientation(img.affine)
    target = ornt.axcodes2ornt(tuple(codes))
    transform = ornt.ornt_transform(current, target)
    return img.as_reoriented(transform)


def tracer_of(label: str) -> str:
    """The tracer family key of a ``trc-`` label (11CPIB -> PiB)."""
    from bids_amyloid.bids.tracers import match_label

    return match_label(label).family.key


def make_config(bids: Path, out: Path, **kw) -> Config:
    cfg = Config(bids_dir=bids, output_dir=out, analysis_level="participant", sloppy=True, omp_nthreads=2,
                 work_dir=out.parent / (out.name + "-work"), **kw)
    cfg.preprocess.max_voxel_mm = 2.5  # the 2 mm test cohort
    cfg.preprocess.max_voxel_thick_mm = 8.5
    return cfg


def cohort_sessions(truth) -> dict[str, Session]:
    root = truth.root
    images = truth.images
    out: dict[str, Session] = {}
    for _, row in truth.sessions.iterrows():
        sub, ses, mri_ses = row.participant_id[4:], row.session_id[4:], row.mri_session[4:]
        rows = images[(images.participant_id == row.participant_id) & (images.session_id == row.mri_session)]
        anat = {r.suffix: root / r.path for r in rows.itertuples() if r.suffix in ("T1w", "FLAIR")}
        pets = images[(images.participant_id == row.participant_id) & (images.session_id == row.session_id)
                      & (images.suffix == "pet")]
        pet = tuple(PetScan(root / r.path, tracer_of(Path(r.path).name.split("trc-")[1].split("_")[0]))
                    for r in pets.itertuples())
        out[ses] = Session(sub, ses, anat=anat, mri_session=mri_ses, pet=pet)
    return out
