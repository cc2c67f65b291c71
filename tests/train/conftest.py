"""Fixtures of the training tests: the fake cohort helpers (fakes.py); tiny weights: tests/conftest.py."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch


def load_fakes():
    """tests/train/fakes.py as a module (the suite runs with --import-mode=importlib)."""
    if "bids_amyloid_test_fakes" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bids_amyloid_test_fakes", Path(__file__).with_name("fakes.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["bids_amyloid_test_fakes"]


@pytest.fixture
def fakes():
    return load_fakes()


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


