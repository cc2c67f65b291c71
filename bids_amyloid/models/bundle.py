"""Model bundles: the trained cross-validation ensemble as one self-describing folder.

Layout (``<group output>/models/`` or any folder)::

    manifest.json                 format + version, sha256 of every other file (written last)
    bundle.json                   backbone (kind, tensor digest, embedded file), layouts, folds
                                  (fold id, threshold, student file, teacher file)
    config.json                   the run's full configuration (the model section rebuilds nets)
    splits.json metrics.json training_summary.json
    fold-00_student.safetensors   per fold: TRAINABLE tensors only (LoRA, projection,
    fold-00_teacher.safetensors   attention pooling, classifier); teachers are optional
    backbone.safetensors          only when embedded (always for 'tiny')
    model_card.md

Backbone decision: the fold files hold only what training changed (about 1.4 M parameters for
ViT-B, ~6 MB per fold); the frozen BiomedCLIP tensors are identified by their tensor digest
(:func:`bids_amyloid.models.backbone.tensor_digest`). At load time the backbone comes from the
bundle itself when embedded (``embed_backbone=True``; default for the random 'tiny' backbone,
which exists nowhere else), else from the weights folder (``--backbone-weights``,
``$BIDS_AMYLOID_WEIGHTS``, ``/opt/bids_amyloid/weights/<kind>``, i.e. the container's copy), and
its digest must equal the bundle's. Inference is thus offline either way; ``embed_backbone=True``
makes a bundle fully self-contained (+330 MB for ViT-B) for use outside the container.

The bundle is written into a temporary folder and renamed into place, so it is complete or
absent. :func:`load_bundle` checks the format version and every checksum BEFORE anything is
parsed; a missing, truncated or modified file is a DataError naming it.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bids_amyloid.bids.io import TMP_PREFIX, sha256_file
from bids_amyloid.config import ModelConfig
from bids_amyloid.errors import DataError, MissingInputError, OutputError
from bids_amyloid.models.backbone import (
    BACKBONES,
    load_safetensors,
    read_weights_config,
    resolve_weights_dir,
    tensor_digest,
    verify_manifest,
    WEIGHTS_FILE,
)
from bids_amyloid.models.networks import AmyloidNet, build_network, is_base_key

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "bids_amyloid-model-bundle"
BUNDLE_FORMAT_VERSION = "1.0"
"""major.minor: a different major version is refused; a newer minor only adds fields."""
MANIFEST = "manifest.json"
BACKBONE_FILE = "backbone.safetensors"
ENCODER_PREFIX = "encoder."


@dataclass
class Bundle:
    path: Path
    """The bundle folder."""
    config: dict[str, Any]
    """The run configuration it was trained with (``Config.to_dict()``)."""
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
    def teachers(self) -> list[str | None]:
        return [f.get("teacher") for f in self.folds]

    @property
    def has_teachers(self) -> bool:
        return all(self.teachers)

    @property
    def model_config(self) -> ModelConfig:
        from bids_amyloid.config import _build

        return _build(ModelConfig, self.config.get("model", {}))

    def read_json(self, name: str) -> Any:
        """splits.json, metrics.json or training_summary.json (verified at load time)."""
        return json.loads((self.path / name).read_text())


# --------------------------------------------------------------------------------------------
# saving


def _split_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(trainable part, base backbone part keyed as in vision.safetensors)."""
    trainable = {k: v for k, v in state.items() if not is_base_key(k)}
    base = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if is_base_key(k)}
    return trainable, base


def _float32(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous()
            for k, v in state.items()}


def _model_card(meta: dict[str, Any], config: dict[str, Any], metrics: Any, summary: Any) -> str:
    backbone = meta["backbone"]
    lines = []
    if backbone["testing_only"]:
        lines += ["> **TESTING ONLY.** This bundle uses the random 'tiny' backbone. Its predictions are",
                  "> meaningless; it exists to test the software.", ""]
    lines += [
        "# bids_amyloid model bundle", "",
        f"- bids_amyloid version: {meta['bids_amyloid_version']}; bundle format {meta['format_version']}",
        f"- created: {meta['created']}",
        f"- backbone: {backbone['kind']} (tensor digest {backbone['tensor_digest'][:16]}...,"
        f" {'embedded' if backbone['file'] else 'not embedded: needs the matching weights folder'})",
        f"- student layout: {meta['student_layout']}; folds: {len(meta['folds'])}",
        f"- decision thresholds (chosen on validation data): "
        + ", ".join(f"{f['threshold']:.4g}" for f in meta["folds"]),
        f"- contrasts: {', '.join(config.get('contrasts', []) or ['?'])}",
        "",
        "## Intended use",
        "Research only: estimates whether a session is amyloid-beta positive (Centiloid > "
        f"{config.get('labels', {}).get('centiloid_threshold', 20.6)}) from structural MRI alone,",
        "as the mean of the fold students' probabilities. It is not a medical device and must not",
        "be used for diagnosis or treatment decisions.",
        "",
        "## Limits",
        "- The published method reaches AUC 0.68-0.74; expect many false positives and negatives.",
        "- Valid only for data preprocessed by the same bids_amyloid version and settings, and for",
        "  populations, scanners and contrasts like the training data below (domain shift lowers",
        "  accuracy in ways this bundle cannot detect).",
        "- Thresholds were chosen on validation folds; the prevalence of the training data",
        "  affects PPV/NPV elsewhere.",
        "",
        "## Training data",
        "```json",
        json.dumps(summary, indent=2, sort_keys=True, default=_json_default),
        "```",
        "",
        "## Metrics",
        "```json",
        json.dumps(metrics, indent=2, sort_keys=True, default=_json_default),
        "```",
        "",
    ]
    return "\n".join(lines)


def save_bundle(dest_dir: Path, *, config: Any, students: Sequence[Mapping[str, Tensor]],
                teachers: Sequence[Mapping[str, Tensor]] | None = None, thresholds: Sequence[float],
                splits: Any = None, metrics: Any = None, training_summary: Any = None,
                fold_ids: Sequence[int] | None = None, backbone_state: Mapping[str, Tensor] | None = None,
                embed_backbone: bool | None = None) -> Bundle:
    """Write a bundle atomically and return it (as :func:`load_bundle` would).

    ``config``: a ``Config`` or its ``to_dict()``. ``students``/``teachers``: AmyloidNet state
    dicts, full or ``trainable_state_dict()``; the frozen backbone part is stored once (or only
    as its digest); when no state dict holds it, pass ``backbone_state`` (base tensors keyed as
    in vision.safetensors, e.g. ``net.base_state_dict()``). ``embed_backbone`` None = only for
    'tiny'. ``thresholds``: per fold, on the probability (sigmoid of the logit) scale.
    """
    from bids_amyloid import __version__

    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    model = config_dict.get("model", {})
    kind = model.get("backbone", "biomedclip")
    if kind not in BACKBONES:
        raise ValueError(f"unknown backbone {kind!r} in config")
    n = len(students)
    if n == 0 or len(thresholds) != n or (teachers is not None and len(teachers) != n):
        raise ValueError(f"need one student, threshold (and teacher) per fold: got {n} students, "
                         f"{len(thresholds)} thresholds, {None if teachers is None else len(teachers)} teachers")
    fold_ids = list(range(n)) if fold_ids is None else [int(f) for f in fold_ids]
    embed = (kind == "tiny") if embed_backbone is None else bool(embed_backbone)

    parts = []
    digest = tensor_digest(backbone_state) if backbone_state is not None else None
    base_to_store = dict(backbone_state) if backbone_state is not None else None
    for state in list(students) + list(teachers or []):
        trainable, base = _split_state(state)
        if base:
            d = tensor_digest(base)
            if digest is None:
                digest, base_to_store = d, base
            elif d != digest:
                raise ValueError("the state dicts do not share one frozen backbone (a fold changed base weights?)")
        parts.append(_float32(trainable))
    if digest is None:
        raise ValueError("no backbone tensors in the state dicts: pass backbone_state=net.base_state_dict()")

    dest_dir = Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{dest_dir.name}-", dir=dest_dir.parent))
    try:
        from safetensors.torch import save_file

        folds = []
        for i, fold in enumerate(fold_ids):
            entry = {"fold": fold, "threshold": float(thresholds[i]),
                     "student": f"fold-{fold:02d}_student.safetensors", "teacher": None}
            save_file(parts[i], str(tmp / entry["student"]))
            if teachers is not None:
                entry["teacher"] = f"fold-{fold:02d}_teacher.safetensors"
                save_file(parts[n + i], str(tmp / entry["teacher"]))
            folds.append(entry)
        if embed:
            save_file(_float32(base_to_store), str(tmp / BACKBONE_FILE))
        meta = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "bids_amyloid_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "backbone": {"kind": kind, "tensor_digest": digest, "file": BACKBONE_FILE if embed else None,
                         "testing_only": bool(BACKBONES[kind]["testing_only"])},
            "student_layout": model.get("student", "paper"),
            "teacher_layout": "paper",
            "threshold_scale": "probability",
            "folds": folds,
        }
        dump = lambda obj: json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"  # noqa: E731
        (tmp / "bundle.json").write_text(dump(meta))
        (tmp / "config.json").write_text(dump(config_dict))
        (tmp / "splits.json").write_text(dump(splits))
        (tmp / "metrics.json").write_text(dump(metrics))
        (tmp / "training_summary.json").write_text(dump(training_summary))
        (tmp / "model_card.md").write_text(_model_card(meta, config_dict, metrics, training_summary))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION,
                    "bids_amyloid_version": __version__, "files": files}
        (tmp / MANIFEST).write_text(dump(manifest))
        for p in tmp.iterdir():
            os.chmod(p, 0o644)
        os.chmod(tmp, 0o755)
        _swap_into_place(tmp, dest_dir)
    except OSError as exc:
        raise OutputError(f"{dest_dir}: cannot write the model bundle ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("model bundle written to %s", dest_dir)
    return load_bundle(dest_dir)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    return str(obj)


def _swap_into_place(tmp: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(tmp, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}old-{dest.name}-", dir=dest.parent))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# loading


def _major(version: str) -> str:
    return str(version).split(".")[0]


def find_bundle_dir(path: Path) -> Path:
    path = Path(path)
    for cand in (path, path / "models"):
        if (cand / MANIFEST).is_file():
            return cand
    raise MissingInputError(f"{path}: no model bundle here (no {MANIFEST} in it or in its models/ folder); "
                            "train one with the group level or pass --model")


def load_bundle(path: Path) -> Bundle:
    """Open a bundle (its folder, or a group output folder holding ``models/``).

    Checks the format, the major version and the sha256 of every listed file before parsing
    anything else; DataError (exit 65) names the offending file.
    """
    folder = find_bundle_dir(path)
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
        config=json.loads((folder / "config.json").read_text()),
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
