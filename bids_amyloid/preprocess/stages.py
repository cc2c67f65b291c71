"""A preprocessing stage, declared up front, and the one runner that owns skip/resume and progress.

A :class:`Stage` names its output files (their JSON sidecars are implied, figures have none),
the derived files it reads (an output older than one of them is stale) and the raw inputs whose
checksums its sidecars record. :class:`StageRunner` runs a session's declared stages in order:
a stage whose outputs are complete and current (``Writer.complete``) is skipped, every stage is
counted for the progress callback (the total is the length of the declared list), and the
names of the computed and reused stages are kept for the record.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bids_amyloid.bids.names import sidecar_of

log = logging.getLogger("bids_amyloid.preprocess")

ProgressCallback = Callable[[str, str, int, int], None]
"""``progress(session_key, stage, step, total)``: called before each stage (step counts from 1)."""


@dataclass(frozen=True)
class Stage:
    name: str
    outputs: tuple[Path, ...]
    run: Callable[[], None]
    """Compute and write the outputs (atomically, through the Writer)."""
    inputs: tuple[Path, ...] = ()
    """Derived files the stage reads (mtime order)."""
    raw: tuple[Path, ...] = ()
    """Raw inputs whose checksums the sidecars record."""


class StageRunner:
    def __init__(self, writer, key: str, total: int, progress: ProgressCallback | None = None):
        self.writer, self.key, self.total, self.progress = writer, key, total, progress
        self.step = 0
        self.computed: list[str] = []
        self.reused: list[str] = []

    def run(self, stages: Sequence[Stage]) -> None:
        for stage in stages:
            self.step += 1
            log.info("%s: %s (%d/%d)", self.key, stage.name, self.step, self.total)
            if self.progress is not None:
                self.progress(self.key, stage.name, self.step, self.total)
            outputs = list(stage.outputs) + [sidecar_of(p) for p in stage.outputs if p.suffix != ".svg"]
            if self.writer.complete(outputs, stage.inputs, stage.raw):
                self.reused.append(stage.name)
                continue
            self.computed.append(stage.name)
            stage.run()
