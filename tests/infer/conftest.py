"""Fixtures for the inference tests: one tiny bundle and one predicted session, shared (CPU)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bids_amyloid.infer import loading

from helpers import brains as bf


@pytest.fixture(autouse=True)
def _isolated(isolated_inference):
    """No real weights folder is visible; 2 torch threads; a fresh model cache (tests/conftest.py)."""


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    bf.make_bundle(root / "models", root)
    return root / "models"


@pytest.fixture(scope="session")
def brain_inputs(tmp_path_factory) -> Path:
    """An output folder with the preprocessing outputs of sub-01/ses-01 (T1w), made once."""
    out = tmp_path_factory.mktemp("inputs") / "out"
    bf.make_preprocessed(out)
    return out


@pytest.fixture(scope="session")
def predicted(tmp_path_factory, tiny_bundle, brain_inputs):
    """(config, preprocessed record, predictions) of one predicted session (read-only for tests)."""
    out = tmp_path_factory.mktemp("predicted") / "out"
    shutil.copytree(brain_inputs, out)
    record = bf.record_for(out)
    config = bf.infer_config(out, tiny_bundle)
    loading.clear_cache()
    from bids_amyloid.infer.predict import check_model, predict_session
    from bids_amyloid.infer.table import gather_predictions

    check_model(config)
    predictions = predict_session(bf.session(), record, config)
    gather_predictions(config)
    return config, record, predictions
