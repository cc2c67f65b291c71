"""Find, verify and load the model bundle(s) for inference, once per process.

``--model PATH`` names bundles as :func:`bids_amyloid.models.bundle.find_bundles` finds them
(``workflows/group.py`` writes one bundle per trained contrast). Each bundle serves the contrast it was
trained on (``training_summary.json`` ``contrast``; else the contrasts of its configuration).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bids_amyloid.config import Config
from bids_amyloid.errors import DataError, MissingInputError

if TYPE_CHECKING:  # torch is imported when a model is loaded, not when --help is shown
    import torch

    from bids_amyloid.models.bundle import Bundle
    from bids_amyloid.models.networks import AmyloidNet

log = logging.getLogger("bids_amyloid.infer")


@dataclass
class LoadedModel:
    bundle: Bundle
    students: list[AmyloidNet]
    """One network per fold, eval mode, no parameter gradients."""
    device: torch.device
    precision: str = "float32"
    """'bf16' (autocast) or 'float32', decided once at load (:func:`prediction_precision`)."""
    precision_choice: dict[str, Any] = field(default_factory=dict)
    """How the precision was chosen (setting, rule, probe timings): written with the predictions."""


_CACHE: dict[tuple, LoadedModel] = {}


def bundle_contrasts(bundle: Bundle) -> list[str]:
    """Contrast(s) a bundle was trained on."""
    try:
        summary = bundle.read_json("training_summary.json")
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and summary.get("contrast"):
        return [str(summary["contrast"])]
    contrasts = bundle.config.contrasts
    if not contrasts:
        raise DataError(f"{bundle.path / 'config.json'}: no contrast recorded; cannot tell what the model reads")
    return [str(c) for c in contrasts]


def open_bundles(path: Path) -> dict[str, Bundle]:
    """contrast -> verified Bundle (checksums checked; missing or tampered -> DataError)."""
    from bids_amyloid.models.bundle import find_bundles, load_bundle

    by_contrast: dict[str, Bundle] = {}
    try:
        bundles = [load_bundle(folder) for folder in find_bundles(path)]
    except MissingInputError as exc:  # for prediction a missing model is bad input, not a missing file
        raise DataError(str(exc)) from exc
    for bundle in bundles:
        for contrast in bundle_contrasts(bundle):
            if contrast in by_contrast:
                raise DataError(f"two bundles for {contrast} under {path}: {by_contrast[contrast].path} and "
                                f"{bundle.path}")
            by_contrast[contrast] = bundle
    return by_contrast


def load_model(config: Config, contrast: str) -> LoadedModel:
    """The fold students for ``contrast`` on ``config.device``, loaded once per process."""
    import torch

    from bids_amyloid.models.bundle import load_students
    from bids_amyloid.models.device import prediction_precision, resolve_device

    key = (str(Path(config.model_path).resolve()), contrast, config.device, str(config.model.backbone_weights),
           config.infer.cpu_precision)
    if key not in _CACHE:
        device = resolve_device(config.device, purpose="prediction")
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
        chosen, how = prediction_precision(device, config.infer.cpu_precision)
        log.info("%s: prediction precision %s (%s)", contrast, chosen, how["Rule"])
        _CACHE[key] = LoadedModel(bundle, students, device, chosen, how)
    return _CACHE[key]


def clear_cache() -> None:
    _CACHE.clear()
