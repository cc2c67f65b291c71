"""Device choice and seeds."""
import logging

import numpy as np
import torch

from bids_amyloid.models.device import resolve_device
from bids_amyloid.train.runtime import seed_everything, stream_seed


def test_device_auto_and_cuda_fallback(caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="bids_amyloid"):
        assert resolve_device("auto").type == "cpu"
        assert resolve_device("cuda").type == "cpu"
        assert resolve_device("cuda:1").type == "cpu"
    assert "falling back to the CPU" in caplog.text and "training device: cpu" in caplog.text


def test_seeds_are_derived_and_recorded():
    seeds = seed_everything(1234)
    a = (np.random.rand(), torch.rand(1).item())
    assert seed_everything(1234) == seeds and (np.random.rand(), torch.rand(1).item()) == a
    assert seeds["master"] == 1234 and len({seeds["python"], seeds["numpy"], seeds["torch"]}) == 3
    assert stream_seed(1, "augment", 0, 5) == stream_seed(1, "augment", 0, 5) != stream_seed(1, "augment", 1, 5)
