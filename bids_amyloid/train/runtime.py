"""Seeds and evaluation mode for training (the device and precision: ``models.device``).

One master seed (``config.seed``) derives every random stream. Streams that must not depend on
the number of processes or workers (sample order, augmentation, negative choice) are derived
from ``(seed, purpose, fold, epoch, index)`` with :func:`stream_seed`, so a run is reproducible
and a 2-process run draws exactly what a 1-process run draws.
"""
from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import Iterator

import numpy as np
import torch


def stream_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed for one purpose, derived from the master seed and ``parts``."""
    words = [int(seed) & 0xFFFFFFFF]
    for part in parts:
        words.append(zlib.crc32(part.encode()) if isinstance(part, str) else int(part) & 0xFFFFFFFF)
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def generator(seed: int, *parts: int | str) -> torch.Generator:
    """A CPU torch.Generator for one purpose (see :func:`stream_seed`)."""
    return torch.Generator().manual_seed(stream_seed(seed, *parts))


def seed_everything(seed: int) -> dict[str, int]:
    """Seed python, NumPy and torch (all devices) from the master seed; return the seeds used."""
    seeds = {"master": int(seed), "python": stream_seed(seed, "python"),
             "numpy": stream_seed(seed, "numpy") % 2**32, "torch": stream_seed(seed, "torch")}
    random.seed(seeds["python"])
    np.random.seed(seeds["numpy"])
    torch.manual_seed(seeds["torch"])
    return seeds


@contextlib.contextmanager
def evaluating(*modules: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for a block; the previous train/eval flags are restored."""
    flags = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in zip(modules, flags):
            m.train(flag)
