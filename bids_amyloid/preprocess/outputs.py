"""Derivative paths, sidecars and atomic writers of the preprocessing stage.

Every file goes through ``bids_amyloid.bids.io`` (``write_with`` / ``atomic_write_json``): a file
that exists is complete. Every NIfTI, slice tensor and transform gets a JSON sidecar with
``provenance(...)`` (Sources as BIDS URIs, version, settings, seed, input sha256 checksums) and a
``PreprocessFingerprint`` (hash of the settings that change the result) used to decide whether an
existing output can be reused.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_amyloid.bids.derivatives import bids_name, bids_uri, derivative_path, provenance, slice_cache_path
from bids_amyloid.bids.io import TMP_PREFIX, atomic_write_json, sha256_file, write_with
from bids_amyloid.config import TEMPLATE_SPACE

log = logging.getLogger("bids_amyloid.preprocess")

STALE_FIGURE_SECONDS = 3600.0
"""Temporaries in the shared ``figures/`` folder older than this are deleted (other sessions may be
writing there right now, so younger ones are left alone)."""


def sidecar_path(path: Path) -> Path:
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".npy", ".mat", ".h5", ".svg"):
        if name.endswith(ext):
            return Path(path).with_name(name[: -len(ext)] + ".json")
    return Path(path).with_suffix(".json")


def fingerprint(config) -> str:
    """Hash of the settings that change preprocessing results (not paths, not parallelism)."""
    payload = {"preprocess": _plain(config.preprocess), "sloppy": bool(config.sloppy), "seed": int(config.seed)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


class Writer:
    """Writes one session's outputs with provenance; caches input checksums."""

    def __init__(self, config):
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
        atomic_write_json(sidecar_path(path), sidecar)
        return Path(path)

    def npy(self, path: Path, array: np.ndarray, sidecar: dict[str, Any]) -> Path:
        def _save(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, array)

        write_with(path, _save)
        atomic_write_json(sidecar_path(path), sidecar)
        return Path(path)

    def copy(self, source: str | Path, path: Path, sidecar: dict[str, Any] | None = None) -> Path:
        write_with(path, lambda tmp: shutil.copyfile(source, tmp))
        if sidecar is not None:
            atomic_write_json(sidecar_path(path), sidecar)
        return Path(path)

    def figure(self, path: Path, draw) -> Path:
        write_with(path, draw)
        return Path(path)


class SessionPaths:
    """Where every preprocessing output of one session goes (names from ``bids/derivatives``)."""

    def __init__(self, out_dir: Path, subject: str, mri_session: str | None, session: str | None, anchor: str,
                 registration: str):
        self.out, self.sub, self.mri_ses, self.ses, self.anchor = Path(out_dir), subject, mri_session, session, anchor
        self.xfm_ext = ".h5" if registration == "syn" else ".mat"

    def _anat(self, suffix: str, ext: str = ".nii.gz", **entities: str | None) -> Path:
        return derivative_path(self.out, self.sub, self.mri_ses, "anat", suffix, ext, **entities)

    @property
    def anat_dir(self) -> Path:
        return self._anat(self.anchor).parent

    @property
    def pet_dir(self) -> Path:
        return derivative_path(self.out, self.sub, self.ses, "pet", "pet", ".nii.gz").parent

    @property
    def figures_dir(self) -> Path:
        return self.out / f"sub-{self.sub}" / "figures"

    def native_preproc(self) -> Path:
        return self._anat(self.anchor, desc="preproc")

    def brain_mask(self) -> Path:
        return self._anat("mask", desc="brain")

    def template_mask(self) -> Path:
        return self._anat("mask", space=TEMPLATE_SPACE, desc="brain")

    def xfm_to_template(self) -> Path:
        return self._anat("xfm", self.xfm_ext, **{"from": self.anchor, "to": TEMPLATE_SPACE, "mode": "image"})

    def xfm_from_template(self) -> Path:
        return self._anat("xfm", self.xfm_ext, **{"from": TEMPLATE_SPACE, "to": self.anchor, "mode": "image"})

    def template_preproc(self, contrast: str) -> Path:
        return self._anat(contrast, space=TEMPLATE_SPACE, desc="preproc")

    def xfm_to_anchor(self, contrast: str) -> Path:
        return self._anat("xfm", ".mat", **{"from": contrast, "to": self.anchor, "mode": "image"})

    def slices(self, contrast: str) -> Path:
        return slice_cache_path(self.out, self.sub, self.mri_ses, contrast)

    def figure(self, contrast: str, desc: str) -> Path:
        return self.figures_dir / bids_name(self.sub, self.mri_ses, contrast, ".svg", desc=desc)

    def pet_suvr(self, tracer: str) -> Path:
        return derivative_path(self.out, self.sub, self.ses, "pet", "pet", ".nii.gz", trc=tracer, space=TEMPLATE_SPACE,
                               desc="suvr")

    def pet_static(self, tracer: str) -> Path:
        return derivative_path(self.out, self.sub, self.ses, "pet", "pet", ".nii.gz", trc=tracer, desc="static")

    def pet_xfm(self, tracer: str) -> Path:
        return derivative_path(self.out, self.sub, self.ses, "pet", "xfm", ".mat", trc=tracer,
                               **{"from": "petref", "to": self.anchor, "mode": "image"})

    def pet_slices(self, tracer: str) -> Path:
        return slice_cache_path(self.out, self.sub, self.ses, "pet", tracer=tracer)

    def pet_figure(self, tracer: str) -> Path:
        return self.figures_dir / bids_name(self.sub, self.ses, "pet", ".svg", trc=tracer, desc="petreg")


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
