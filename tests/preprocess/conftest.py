"""Fixtures for preprocessing tests (helpers live in tests/helpers/preprocessing.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pp_cohort(tmp_path_factory):
    """One synthetic subject at 2 mm: ses-M000 (T1w, FLAIR, PiB PET) and ses-M006 (PET only)."""
    from bids_amyloid.synth import generate_cohort

    root = tmp_path_factory.mktemp("cohort") / "bids"
    return generate_cohort(root, n_subjects=1, seed=0, resolution=2.0, contrasts=("T1w", "FLAIR"), tracers=("PiB",))

