"""The derivatives dataset as a whole: its description, .bidsignore, provenance, run configurations."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bids_amyloid import __version__
from bids_amyloid.bids.io import atomic_write_json, atomic_write_text, locked

PIPELINE_NAME = "bids_amyloid"
CODE_URL = "https://github.com/bids-amyloid/bids_amyloid"

BIDSIGNORE_PATTERNS = (
    "*_desc-slices_*",
    "*_predictions.tsv",
    "*_predictions.json",
    "*_saliency.nii.gz",
    "*_saliency.json",
    "*_regions.tsv",
    "*_regions.json",
    "*.html",
    "*.svg",
    "*.png",
    "*_xfm.mat",
    "*_xfm.h5",
    "*_xfm.json",
    "figures",
    "sub-*/figures",
    "models",
    "group",
    "logs",
    "sub-*/log",
    "*_config.json",
)
"""Patterns the BIDS validator must ignore in the output (no standard suffix exists for them)."""


def container_info() -> dict[str, str] | None:
    """Container type/tag when running inside our image (set by the Dockerfile)."""
    kind = os.environ.get("BIDS_AMYLOID_CONTAINER_TYPE")
    if not kind:
        return None
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        kind = "apptainer"  # our Docker image converted and run by Apptainer/Singularity
    return {"Type": kind, "Tag": os.environ.get("BIDS_AMYLOID_CONTAINER_TAG", f"bids_amyloid:{__version__}")}


def dataset_description(source_dir: Path) -> dict[str, Any]:
    generated_by: dict[str, Any] = {"Name": PIPELINE_NAME, "Version": __version__, "CodeURL": CODE_URL}
    container = container_info()
    if container:
        generated_by["Container"] = container
    source_name = _source_name(source_dir)
    return {
        "Name": f"{PIPELINE_NAME} derivatives of {source_name}",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        "SourceDatasets": [{"URL": Path(source_dir).resolve().as_uri()}],
        # sidecar Sources use bids:raw:<path> URIs
        "DatasetLinks": {"raw": Path(source_dir).resolve().as_uri()},
    }


def _source_name(source_dir: Path) -> str:
    try:
        return json.loads((Path(source_dir) / "dataset_description.json").read_text())["Name"]
    except (OSError, ValueError, KeyError):
        return Path(source_dir).name


def init_output_dir(out_dir: Path, source_dir: Path) -> None:
    """Create the shared top-level files once, safely under concurrent jobs.

    Writes ``dataset_description.json`` and ``.bidsignore`` if absent (a Slurm array of N jobs
    writes each exactly once), and warns-by-marker when another version wrote the folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    description = out_dir / "dataset_description.json"
    with locked(description):
        if not description.exists():
            atomic_write_json(description, dataset_description(source_dir))
        ignore = out_dir / ".bidsignore"
        existing = ignore.read_text().splitlines() if ignore.exists() else []
        missing = [p for p in BIDSIGNORE_PATTERNS if p not in existing]
        if missing:
            atomic_write_text(ignore, "\n".join(existing + missing) + "\n")


def output_version(out_dir: Path) -> str | None:
    """Version of bids_amyloid that created ``out_dir`` (None if unknown)."""
    try:
        data = json.loads((Path(out_dir) / "dataset_description.json").read_text())
        return data["GeneratedBy"][0]["Version"]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def provenance(config_dict: dict[str, Any], sources: list[str], checksums: dict[str, str] | None = None) -> dict[str, Any]:
    """The provenance block every sidecar carries: sources, version, settings, seed, checksums."""
    block: dict[str, Any] = {
        "Sources": sources,
        "GeneratedBy": {"Name": PIPELINE_NAME, "Version": __version__},
        "RandomSeed": config_dict.get("seed"),
        "Settings": config_dict,
    }
    if checksums:
        block["SourceChecksums"] = {k: f"sha256:{v}" for k, v in checksums.items()}
    return block


def write_run_config(config, path: Path) -> None:
    """The configuration of a run, with the version and seeds, next to its outputs (``--config`` reads it)."""
    payload = {"bids_amyloid_version": __version__, "config": config.to_dict()}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
