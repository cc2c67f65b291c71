"""Fixtures of the training tests: the fake cohort helpers (tests/helpers/fakes.py); tiny weights:
tests/conftest.py."""
from __future__ import annotations

import pytest
import torch

from helpers import fakes as fake_cohort


@pytest.fixture
def fakes():
    return fake_cohort


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
