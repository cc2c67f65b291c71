"""SUVR and the Centiloid estimate per tracer family."""
from __future__ import annotations

import numpy as np
import pytest

from bids_amyloid.preprocess import pet


def test_centiloid_equations_per_family():
    assert pet.centiloid_estimate("PiB", 1.0) == pytest.approx(-0.9)
    assert pet.centiloid_estimate("florbetapir", 1.2) == pytest.approx(175.4 * 1.2 - 182.3)
    assert pet.centiloid_estimate("florbetaben", 1.5) == pytest.approx(153.4 * 1.5 - 154.9)
    assert pet.centiloid_estimate("flutemetamol", 1.5) == pytest.approx(121.42 * 1.5 - 121.16)
    assert pet.centiloid_estimate("NAV4694", 1.5) is None  # no equation used
    assert pet.centiloid_estimate("PiB", None) is None


def test_suvr_is_one_in_the_reference_region():
    rng = np.random.default_rng(0)
    region = np.zeros((20, 20, 20), bool)
    region[2:8, 2:8, 2:8] = True
    brain = np.ones_like(region)
    img = rng.uniform(3000, 9000, region.shape).astype(np.float32)
    ref, n = pet.reference_mean(img, region, brain)
    assert n == region.sum()
    s = pet.suvr(img, ref)
    assert s.dtype == np.float32 and float(s[region].mean()) == pytest.approx(1.0, abs=1e-5)
