"""Fixtures for the model tests: tiny random backbones only (CPU, no network; tiny_weights: tests/conftest.py)."""
from __future__ import annotations

import pytest
import torch

from bids_amyloid.config import Config, ModelConfig


@pytest.fixture(autouse=True)
def _isolated_weights(no_real_weights):
    """No test sees a real weights folder (tests/conftest.py); 1 torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: 1 thread is as fast, and 5x faster on a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(backbone="tiny")


@pytest.fixture
def run_config(tmp_path) -> Config:
    config = Config(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out", analysis_level="group")
    config.model.backbone = "tiny"
    return config


def _randomize_trainable(net: torch.nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """Give LoRA B (zero at init) and the heads non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * std)


@pytest.fixture
def randomize():
    """``randomize(net, seed=0)``: perturb every trainable parameter (LoRA B is zero at init)."""
    return _randomize_trainable
