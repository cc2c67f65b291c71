"""Model bundles: the trained cross-validation ensemble as one self-describing folder.

Layout (``<group output>/models/`` or any folder)::

    manifest.json                 format + version, sha256 of every other file (written last)
    bundle.json                   backbone (kind, tensor digest, embedded file), layouts, folds
                                  (fold id, threshold, student file, teacher file; from 1.1
                                  calibrator and rule-out / rule-in thresholds), calibration
    config.json                   the run's full configuration (the model section rebuilds nets)
    splits.json metrics.json training_summary.json
    fold-00_student.safetensors   per fold: TRAINABLE tensors only (LoRA, projection,
    fold-00_teacher.safetensors   attention pooling, classifier); teachers are optional
    backbone.safetensors          only when embedded (always for 'tiny')
    model_card.md

Backbone decision: the fold files hold only what training changed (about 1.4 M parameters for
ViT-B, ~6 MB per fold); the frozen BiomedCLIP tensors are identified by their tensor digest
(:func:`bids_amyloid.models.tensorfiles.tensor_digest`). At load time the backbone comes from the
bundle itself when embedded (``embed_backbone=True``; default for the random 'tiny' backbone,
which exists nowhere else), else from the weights folder (``--backbone-weights``,
``$BIDS_AMYLOID_WEIGHTS``, ``/opt/bids_amyloid/weights/<kind>``, i.e. the container's copy), and
its digest must equal the bundle's. Inference is thus offline either way; ``embed_backbone=True``
makes a bundle fully self-contained (+330 MB for ViT-B) for use outside the container.

Written by :func:`bids_amyloid.models.bundle_write.save_bundle`. :func:`load_bundle` checks the
format version and every checksum BEFORE anything is parsed; a missing, truncated or modified
file is a DataError naming it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bids_amyloid.bids.io import sha256_file
from bids_amyloid.config import CONTRASTS, Config, ModelConfig, config_from_dict
from bids_amyloid.errors import DataError, MissingInputError
from bids_amyloid.models.calibration import FoldDecision
from bids_amyloid.models.networks import AmyloidNet, build_network, is_base_key
from bids_amyloid.models.tensorfiles import load_safetensors, tensor_digest, verify_manifest
from bids_amyloid.models.weights import WEIGHTS_FILE, read_weights_config, resolve_weights_dir

BUNDLE_FORMAT = "bids_amyloid-model-bundle"
BUNDLE_FORMAT_VERSION = "1.1"
"""major.minor: a different major version is refused; a newer minor only adds fields."""
MANIFEST = "manifest.json"
BACKBONE_FILE = "backbone.safetensors"


@dataclass
class Bundle:
    path: Path
    """The bundle folder."""
    config: Config
    """The run configuration it was trained with (settings a newer version added take their defaults)."""
    folds: list[dict[str, Any]]
    """Per fold: ``fold`` (id), ``threshold``, ``student`` (file), ``teacher`` (file or None)."""
    model_id: str
    """sha256 of manifest.json (which holds the sha256 of every file): identifies the bundle."""
    version: str
    """Bundle format version."""
    backbone: dict[str, Any]
    """``kind``, ``tensor_digest``, ``file`` (embedded file or None), ``testing_only``."""
    bids_amyloid_version: str = ""
    student_layout: str = "paper"
    teacher_layout: str = "paper"
    metadata: dict[str, Any] = field(default_factory=dict)
    """bundle.json as written."""

    @property
    def backbone_kind(self) -> str:
        return str(self.backbone["kind"])

    @property
    def testing_only(self) -> bool:
        return bool(self.backbone.get("testing_only"))

    @property
    def thresholds(self) -> list[float]:
        return [float(f["threshold"]) for f in self.folds]

    @property
    def decisions(self) -> list[FoldDecision]:
        """Each fold's threshold, calibrator and operating points (format 1.0: threshold only)."""
        return [FoldDecision.from_json(f) for f in self.folds]

    @property
    def teachers(self) -> list[str | None]:
        return [f.get("teacher") for f in self.folds]

    @property
    def has_teachers(self) -> bool:
        return all(self.teachers)

    @property
    def model_config(self) -> ModelConfig:
        return self.config.model

    def read_json(self, name: str) -> Any:
        """splits.json, metrics.json or training_summary.json (verified at load time)."""
        return json.loads((self.path / name).read_text())


def _major(version: str) -> str:
    return str(version).split(".")[0]


OLDER_BUNDLE_MODEL = {"cls_token": "post-norm"}
"""Model settings a bundle made before the setting existed was trained with (missing from its config)."""


def bundle_config(data: dict[str, Any]) -> Config:
    """A bundle's ``config.json`` as a Config; settings it predates keep the value it was made with."""
    model = dict(data.get("model") or {})
    for name, value in OLDER_BUNDLE_MODEL.items():
        model.setdefault(name, value)
    return config_from_dict({**data, "model": model})


def find_bundles(path: Path) -> list[Path]:
    """The bundle folders ``--model PATH`` names: PATH itself, PATH/models (one contrast trained), or
    PATH/[models/]<contrast>/ (several). MissingInputError when there is none."""
    path = Path(path)
    for candidate in (path, path / "models"):
        if (candidate / MANIFEST).is_file():
            return [candidate]
    found = [path / sub / c for sub in ("models", ".") for c in CONTRASTS if (path / sub / c / MANIFEST).is_file()]
    if found:
        return sorted({p.resolve() for p in found})
    what = ("does not exist" if not path.exists()
            else f"holds no model bundle ({MANIFEST} in it, models/ or models/<contrast>/)")
    raise MissingInputError(f"--model {path} {what}; train one with the group level")


def load_bundle(path: Path) -> Bundle:
    """Open a bundle (its folder, or a group output folder holding ``models/``).

    Checks the format, the major version and the sha256 of every listed file before parsing
    anything else; DataError (exit 65) names the offending file.
    """
    found = find_bundles(path)
    if len(found) > 1:
        raise DataError(f"{path} holds {len(found)} bundles ({', '.join(p.name for p in found)}); name one")
    folder = found[0]
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as exc:
        raise DataError(f"{manifest_path}: unreadable ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise DataError(f"{manifest_path}: not a bids_amyloid model bundle")
    version = str(manifest.get("format_version", ""))
    if _major(version) != _major(BUNDLE_FORMAT_VERSION):
        raise DataError(f"{manifest_path}: bundle format {version} (bids_amyloid "
                        f"{manifest.get('bids_amyloid_version', '?')}) is incompatible with this version's "
                        f"format {BUNDLE_FORMAT_VERSION}; use a matching bids_amyloid release or retrain")
    verify_manifest(folder, MANIFEST)
    files = manifest["files"]
    for required in ("bundle.json", "config.json"):
        if required not in files:
            raise DataError(f"{folder / required}: missing from the bundle manifest")
    meta = json.loads((folder / "bundle.json").read_text())
    for entry in meta["folds"]:
        for key in ("student", "teacher"):
            if entry.get(key) and entry[key] not in files:
                raise DataError(f"{folder / entry[key]}: fold file not covered by the manifest")
    if meta["backbone"].get("file") and meta["backbone"]["file"] not in files:
        raise DataError(f"{folder / meta['backbone']['file']}: backbone file not covered by the manifest")
    return Bundle(
        path=folder,
        config=bundle_config(json.loads((folder / "config.json").read_text())),
        folds=list(meta["folds"]),
        model_id=sha256_file(manifest_path),
        version=version,
        backbone=dict(meta["backbone"]),
        bids_amyloid_version=str(meta.get("bids_amyloid_version", "")),
        student_layout=str(meta.get("student_layout", "paper")),
        teacher_layout=str(meta.get("teacher_layout", "paper")),
        metadata=meta,
    )


def load_backbone_state(bundle: Bundle, weights_dir: Path | None = None) -> dict[str, Tensor]:
    """The bundle's frozen backbone tensors: embedded, else from the weights folder (digest checked)."""
    expected = bundle.backbone["tensor_digest"]
    if bundle.backbone.get("file"):
        path = bundle.path / bundle.backbone["file"]
        state = load_safetensors(path)
        source = path
    else:
        kind = bundle.backbone_kind
        try:
            folder = resolve_weights_dir(kind, weights_dir)
        except MissingInputError as exc:
            raise MissingInputError(f"model bundle {bundle.path} does not embed its {kind} backbone: {exc}") from exc
        config = read_weights_config(folder)
        if config.get("tensor_digest") != expected:
            raise DataError(f"{folder / WEIGHTS_FILE}: these {kind} weights (digest "
                            f"{str(config.get('tensor_digest'))[:12]}...) are not the ones bundle {bundle.path} "
                            f"was trained with (digest {expected[:12]}...)")
        source = folder / WEIGHTS_FILE
        state = load_safetensors(source)
        return state
    if tensor_digest(state) != expected:
        raise DataError(f"{source}: backbone tensors do not match the bundle's digest")
    return state


def _load_nets(bundle: Bundle, key: str, layout: str, device: Any, weights_dir: Path | None) -> list[AmyloidNet]:
    base = load_backbone_state(bundle, weights_dir)
    model_config = bundle.model_config
    nets = []
    for entry in bundle.folds:
        name = entry.get(key)
        if not name:
            raise DataError(f"{bundle.path / 'bundle.json'}: fold {entry.get('fold')} has no {key} file")
        path = bundle.path / name
        state = load_safetensors(path)
        net = build_network(model_config, student_layout=layout, encoder_state=base)
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not is_base_key(k)]
        if missing or unexpected:
            raise DataError(f"{path}: does not fit the {layout!r} network (missing {missing[:3]}, "
                            f"unexpected {list(unexpected)[:3]})")
        nets.append(net.to(torch.device(device)).eval())
    return nets


def load_students(bundle: Bundle, device: Any = "cpu", weights_dir: Path | None = None) -> list[AmyloidNet]:
    """One student per fold, in eval mode, rebuilt from the bundle (+ its backbone, see module
    docstring). On the CPU all folds share one copy of the backbone tensors."""
    return _load_nets(bundle, "student", bundle.student_layout, device, weights_dir)


def load_teachers(bundle: Bundle, device: Any = "cpu", weights_dir: Path | None = None) -> list[AmyloidNet]:
    """One teacher per fold (DataError when the bundle holds no teachers)."""
    return _load_nets(bundle, "teacher", bundle.teacher_layout, device, weights_dir)
