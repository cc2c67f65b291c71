"""Find, verify and load the model bundle(s) for inference, once per process.

``--model PATH`` may name a bundle folder, a group output folder holding ``models/`` (one
contrast trained), or one holding ``models/<contrast>/`` bundles (several contrasts trained:
``workflows/group.py`` writes one bundle per contrast). Each bundle serves the contrast it was
trained on (``training_summary.json`` ``contrast``; else the contrasts of its configuration).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bids_amyloid.config import CONTRASTS, Config
from bids_amyloid.errors import DataError, MissingInputError

log = logging.getLogger("bids_amyloid.infer")

MANIFEST = "manifest.json"


@dataclass
class LoadedModel:
    bundle: Any
    """``bids_amyloid.models.bundle.Bundle``."""
    students: list
    """One ``AmyloidNet`` per fold, eval mode, no parameter gradients."""
    device: Any


_CACHE: dict[tuple, LoadedModel] = {}


def resolve_device(preference: str):
    """'auto' -> cuda when available else cpu; cuda without a GPU -> warning and cpu."""
    import torch

    available = torch.cuda.is_available()
    if preference == "auto":
        return torch.device("cuda" if available else "cpu")
    if preference.startswith("cuda") and not available:
        log.warning("device %r requested but CUDA is not available: predicting on the CPU", preference)
        return torch.device("cpu")
    return torch.device(preference)


def find_bundles(path: Path) -> list[Path]:
    """Bundle folders under ``--model PATH`` (DataError when there is none)."""
    path = Path(path)
    for candidate in (path, path / "models"):
        if (candidate / MANIFEST).is_file():
            return [candidate]
    found = [path / sub / c for sub in ("models", ".") for c in CONTRASTS if (path / sub / c / MANIFEST).is_file()]
    if found:
        return sorted({p.resolve() for p in found})
    what = ("does not exist" if not path.exists()
            else f"holds no model bundle ({MANIFEST} in it, models/ or models/<contrast>/)")
    raise DataError(f"--model {path} {what}; train one with the group level")


def bundle_contrasts(bundle) -> list[str]:
    """Contrast(s) a bundle was trained on."""
    try:
        summary = bundle.read_json("training_summary.json")
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and summary.get("contrast"):
        return [str(summary["contrast"])]
    contrasts = bundle.config.get("contrasts")
    if not contrasts:
        raise DataError(f"{bundle.path / 'config.json'}: no contrast recorded; cannot tell what the model reads")
    return [str(c) for c in contrasts]


def open_bundles(path: Path) -> dict[str, Any]:
    """contrast -> verified Bundle (checksums checked; missing or tampered -> DataError)."""
    from bids_amyloid.models.bundle import load_bundle

    by_contrast: dict[str, Any] = {}
    for folder in find_bundles(path):
        try:
            bundle = load_bundle(folder)
        except MissingInputError as exc:
            raise DataError(str(exc)) from exc
        for contrast in bundle_contrasts(bundle):
            if contrast in by_contrast:
                raise DataError(f"two bundles for {contrast} under {path}: {by_contrast[contrast].path} and {folder}")
            by_contrast[contrast] = bundle
    return by_contrast


def load_model(config: Config, contrast: str) -> LoadedModel:
    """The fold students for ``contrast`` on ``config.device``, loaded once per process."""
    import torch

    from bids_amyloid.models.bundle import load_students

    device = resolve_device(config.device)
    key = (str(Path(config.model_path).resolve()), contrast, str(device), str(config.model.backbone_weights))
    if key not in _CACHE:
        bundles = open_bundles(config.model_path)
        if contrast not in bundles:
            raise DataError(f"--model {config.model_path}: no bundle for {contrast} (has {sorted(bundles)})")
        bundle = bundles[contrast]
        if device.type == "cpu":
            torch.set_num_threads(config.omp_nthreads)
        start = time.perf_counter()
        students = load_students(bundle, device, weights_dir=config.model.backbone_weights)
        for net in students:
            net.requires_grad_(False)  # saliency asks autograd for input gradients only
        log.info("%s: loaded %d fold student(s) of model %s on %s in %.1f s", contrast, len(students),
                 bundle.model_id[:12], device, time.perf_counter() - start)
        _CACHE[key] = LoadedModel(bundle, students, device)
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()
