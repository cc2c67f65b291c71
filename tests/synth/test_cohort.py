"""Same seed -> byte-identical files (whatever n_jobs); another seed -> other data."""
from __future__ import annotations

import nibabel as nib
import numpy as np

from bids_amyloid.synth import generate_cohort, load_truth


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_is_byte_identical_across_n_jobs(cohort, cohort_parallel):
    a, b = cohort.root, cohort_parallel.root
    assert _files(a) == _files(b)
    for rel in _files(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_other_seed_gives_other_data(cohort, tmp_path):
    other = generate_cohort(tmp_path / "c", n_subjects=1, seed=1, resolution=2.0,
                            contrasts=("T1w",))
    rel = "sub-001/ses-M000/anat/sub-001_ses-M000_T1w.nii.gz"
    x = np.asanyarray(nib.load(cohort.root / rel).dataobj)
    y = np.asanyarray(nib.load(other.root / rel).dataobj)
    assert x.shape != y.shape or not np.array_equal(x, y)
    assert other.sessions["latent_load"].iloc[0] != cohort.sessions["latent_load"].iloc[0]


def test_subject_does_not_depend_on_cohort_size(cohort, tmp_path):
    small = generate_cohort(tmp_path / "s", n_subjects=1, seed=0, resolution=2.0)
    rel = "sub-001/ses-M000/anat/sub-001_ses-M000_T2w.nii.gz"
    assert (small.root / rel).read_bytes() == (cohort.root / rel).read_bytes()


def test_load_truth_round_trip(cohort):
    again = load_truth(cohort.root)
    assert again.oracle_auc == cohort.oracle_auc
    assert list(again.sessions["session_id"]) == list(cohort.sessions["session_id"])
    assert np.allclose(again.sessions["centiloid"], cohort.sessions["centiloid"])


def test_real_layout_is_byte_identical_across_n_jobs(oasis, oasis_parallel):
    """oasis3: dynamic PET is streamed frame by frame; still the same bytes with 2 workers."""
    a, b = oasis.root, oasis_parallel.root
    assert _files(a) == _files(b)
    for rel in _files(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
