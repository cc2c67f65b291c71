"""Writers, provenance and the shared context of the preprocessing stages.

Every file goes through ``bids_amyloid.bids.io`` (``write_with`` / ``atomic_write_json``): a file
that exists is complete. Every NIfTI, slice tensor and transform gets a JSON sidecar with
``provenance(...)`` (Sources as BIDS URIs, version, settings, seed, input sha256 checksums) and a
``PreprocessFingerprint`` (hash of the settings that change the result) used to decide whether an
existing output can be reused.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_amyloid.bids.dataset import provenance
from bids_amyloid.bids.derivatives import SessionDerivatives
from bids_amyloid.bids.io import TMP_PREFIX, atomic_write_json, sha256_file, write_with
from bids_amyloid.bids.names import bids_uri, sidecar_of
from bids_amyloid.config import Config, settings_fingerprint
from bids_amyloid.space.antsio import to_ants

log = logging.getLogger("bids_amyloid.preprocess")

STALE_FIGURE_SECONDS = 3600.0
"""Temporaries in the shared ``figures/`` folder older than this are deleted (other sessions may be
writing there right now, so younger ones are left alone)."""


def fingerprint(config: Config) -> str:
    """Hash of the settings that change preprocessing results (not paths, not parallelism)."""
    return settings_fingerprint({"preprocess": _plain(config.preprocess), "sloppy": bool(config.sloppy),
                                 "seed": int(config.seed)})


def _plain(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


class Writer:
    """Writes one session's outputs with provenance; caches input checksums."""

    def __init__(self, config: Config):
        self.config = config
        self.settings = config.to_dict()
        self.fingerprint = fingerprint(config)
        self._checksums: dict[Path, str] = {}

    # ------------------------------------------------------------------ names
    def uri(self, path: Path) -> str:
        path = Path(path)
        for root, dataset in ((self.config.output_dir, ""), (self.config.bids_dir, "raw")):
            try:
                return bids_uri(path, root, dataset)
            except ValueError:
                continue
        return path.resolve().as_uri()

    def checksum(self, path: Path) -> str:
        path = Path(path).resolve()
        if path not in self._checksums:
            self._checksums[path] = sha256_file(path)
        return self._checksums[path]

    # ------------------------------------------------------------------ completeness
    def complete(self, outputs: list[Path], inputs: list[Path] = (), raw: list[Path] = ()) -> bool:
        """Can a stage be skipped? (make-like, safe across processes)

        True when every output exists, is at least as new as every derived ``inputs`` file, and
        its JSON sidecar records the current settings fingerprint and the current checksums of
        the ``raw`` input files. Always False with ``config.overwrite``.
        """
        if self.config.overwrite:
            return False
        outputs = [Path(p) for p in outputs]
        if not all(p.exists() for p in outputs):
            return False
        newest_input = max((Path(p).stat().st_mtime for p in inputs if Path(p).exists()), default=0.0)
        if min(p.stat().st_mtime for p in outputs) < newest_input:
            log.info("%s is older than its inputs; recomputing", outputs[0].name)
            return False
        expected = {self.uri(p): f"sha256:{self.checksum(p)}" for p in raw}
        for path in outputs:
            if path.suffix != ".json":
                continue
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError):
                return False
            if meta.get("PreprocessFingerprint") != self.fingerprint:
                log.warning("%s was made with other preprocessing settings; recomputing", path.name)
                return False
            recorded = meta.get("SourceChecksums", {})
            if any(recorded.get(uri) != value for uri, value in expected.items()):
                log.warning("%s was made from other input files; recomputing", path.name)
                return False
        return True

    # ------------------------------------------------------------------ sidecars
    def sidecar(self, sources: list[Path], raw_inputs: list[Path], **fields: Any) -> dict[str, Any]:
        block = provenance(
            self.settings,
            [self.uri(s) for s in sources],
            {self.uri(p): self.checksum(p) for p in raw_inputs},
        )
        block["PreprocessFingerprint"] = self.fingerprint
        if self.config.sloppy:
            block["TestingOnly"] = "Produced with --sloppy (cheaper registration): TESTING ONLY"
        block.update({k: v for k, v in fields.items() if v is not None})
        return block

    def nifti(self, path: Path, img: nib.Nifti1Image, sidecar: dict[str, Any]) -> Path:
        write_with(path, lambda tmp: nib.save(img, str(tmp)))
        atomic_write_json(sidecar_of(path), sidecar)
        return Path(path)

    def npy(self, path: Path, array: np.ndarray, sidecar: dict[str, Any]) -> Path:
        def _save(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, array)

        write_with(path, _save)
        atomic_write_json(sidecar_of(path), sidecar)
        return Path(path)

    def copy(self, source: str | Path, path: Path, sidecar: dict[str, Any] | None = None) -> Path:
        write_with(path, lambda tmp: shutil.copyfile(source, tmp))
        if sidecar is not None:
            atomic_write_json(sidecar_of(path), sidecar)
        return Path(path)

    def figure(self, path: Path, draw) -> Path:
        write_with(path, draw)
        return Path(path)


class ImageCache:
    """ANTs images read once per session (stages reuse the previous stage's files)."""

    def __init__(self):
        self._images: dict[Path, object] = {}

    def get(self, path: Path):
        path = Path(path)
        if path not in self._images:
            self._images[path] = to_ants(nib.load(str(path)))
        return self._images[path]

    def put(self, path: Path, image) -> None:
        self._images[Path(path)] = image


@dataclass
class Context:
    """What the stages of one session share."""

    config: Config
    paths: SessionDerivatives
    writer: Writer
    workdir: Path
    anat: dict[str, Path]
    """Raw MRI file per contrast."""
    cache: ImageCache = field(default_factory=ImageCache)


def remove_old_figure_temporaries(folder: Path, older_than_s: float = STALE_FIGURE_SECONDS) -> int:
    """Delete temporaries a killed run left in the shared figures folder (old ones only)."""
    count = 0
    if Path(folder).is_dir():
        now = time.time()
        for tmp in Path(folder).glob(f"{TMP_PREFIX}*"):
            try:
                if tmp.is_file() and now - tmp.stat().st_mtime > older_than_s:
                    tmp.unlink(missing_ok=True)
                    count += 1
            except OSError:
                continue
    return count
