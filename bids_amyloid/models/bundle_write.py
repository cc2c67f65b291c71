"""Writing model bundles: :func:`save_bundle` and the model card (the layout is described in
:mod:`bids_amyloid.models.bundle`).

The bundle is written into a temporary folder and renamed into place, so it is complete or
absent; it is returned as :func:`~bids_amyloid.models.bundle.load_bundle` reads it back.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import Tensor

from bids_amyloid.bids.io import TMP_PREFIX, sha256_file
from bids_amyloid.errors import OutputError
from bids_amyloid.models.backbone import BACKBONES
from bids_amyloid.models.calibration import FoldDecision
from bids_amyloid.models.bundle import (
    BACKBONE_FILE,
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    MANIFEST,
    Bundle,
    load_bundle,
)
from bids_amyloid.models.networks import is_base_key
from bids_amyloid.models.tensorfiles import tensor_digest

log = logging.getLogger(__name__)

ENCODER_PREFIX = "encoder."


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
        "- decision thresholds (chosen on validation data): "
        + ", ".join(f"{f['threshold']:.4g}" for f in meta["folds"]),
        f"- calibration (fitted on each fold's validation part): {_calibration_line(meta)}",
        f"- operating zones: {_zones_line(meta)}",
        f"- contrasts: {', '.join(config.get('contrasts', []) or ['?'])}",
        "",
        "## Intended use",
        "Research only: estimates whether a session is amyloid-beta positive (Centiloid > "
        f"{config.get('labels', {}).get('centiloid_threshold', 20.6)}) from structural MRI alone,",
        "from the fold students' probabilities aligned at their own thresholds and averaged (logit scale).",
        "It is not a medical device and must not",
        "be used for diagnosis or treatment decisions.",
        "",
        "## Limits",
        "- The published method reaches AUC 0.68-0.74; expect many false positives and negatives.",
        "- Valid only for data preprocessed by the same bids_amyloid version and settings, and for",
        "  populations, scanners and contrasts like the training data below (domain shift lowers",
        "  accuracy in ways this bundle cannot detect).",
        "- Thresholds, calibrators and operating points were chosen on validation folds; the",
        "  prevalence of the training data affects calibration, PPV and NPV elsewhere: check them",
        "  on local data before relying on the rule-out / rule-in zones.",
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
                embed_backbone: bool | None = None, decisions: Sequence[FoldDecision] | None = None) -> Bundle:
    """Write a bundle atomically and return it (as :func:`load_bundle` would).

    ``config``: a ``Config`` or its ``to_dict()``. ``students``/``teachers``: AmyloidNet state
    dicts, full or ``trainable_state_dict()``; the frozen backbone part is stored once (or only
    as its digest); when no state dict holds it, pass ``backbone_state`` (base tensors keyed as
    in vision.safetensors, e.g. ``net.base_state_dict()``). ``embed_backbone`` None = only for
    'tiny'. ``thresholds``: per fold, on the probability (sigmoid of the logit) scale.
    ``decisions``: per fold, the calibrator and operating points (with the same thresholds).
    """
    from bids_amyloid import __version__

    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    model = config_dict.get("model", {})
    kind = model.get("backbone", "biomedclip")
    if kind not in BACKBONES:
        raise ValueError(f"unknown backbone {kind!r} in config")
    n = len(students)
    if n == 0 or len(thresholds) != n or (teachers is not None and len(teachers) != n) or (
            decisions is not None and [d.threshold for d in decisions] != [float(t) for t in thresholds]):
        raise ValueError(f"need one student, threshold (and teacher, decision with that threshold) per fold: got "
                         f"{n} students, {len(thresholds)} thresholds, {None if teachers is None else len(teachers)} "
                         f"teachers, {None if decisions is None else len(decisions)} decisions")
    fold_ids = list(range(n)) if fold_ids is None else [int(f) for f in fold_ids]
    embed = (kind == "tiny") if embed_backbone is None else bool(embed_backbone)
    parts, digest, base_to_store = _shared_backbone(list(students) + list(teachers or []), backbone_state)
    dest_dir = Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{dest_dir.name}-", dir=dest_dir.parent))
    try:
        from safetensors.torch import save_file

        folds = _write_folds(tmp, fold_ids, thresholds, parts, with_teachers=teachers is not None, decisions=decisions)
        if embed:
            save_file(_float32(base_to_store), str(tmp / BACKBONE_FILE))
        meta = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "bids_amyloid_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "backbone": {"kind": kind, "tensor_digest": digest, "file": BACKBONE_FILE if embed else None,
                         "testing_only": bool(BACKBONES[kind]["testing_only"]),
                         "source": _weights_source(kind, model.get("backbone_weights"), digest)},
            "student_layout": model.get("student", "paper"),
            "teacher_layout": "paper",
            "threshold_scale": "probability",
            "calibration": _calibration_meta(config_dict) if decisions is not None else None,
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


def _shared_backbone(states: Sequence[Mapping[str, Tensor]], backbone_state: Mapping[str, Tensor] | None
                     ) -> tuple[list[dict[str, Tensor]], str, dict[str, Tensor]]:
    """(trainable float32 part of each state, digest of the one frozen backbone they share, its tensors)."""
    parts = []
    digest = tensor_digest(backbone_state) if backbone_state is not None else None
    base_to_store = dict(backbone_state) if backbone_state is not None else None
    for state in states:
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
    return parts, digest, base_to_store


def _write_folds(folder: Path, fold_ids: Sequence[int], thresholds: Sequence[float],
                 parts: Sequence[Mapping[str, Tensor]], with_teachers: bool,
                 decisions: Sequence[FoldDecision] | None = None) -> list[dict[str, Any]]:
    """Students (then teachers) of ``parts`` as fold-NN_<role>.safetensors; their bundle.json entries
    (with each fold's calibrator and operating points when ``decisions`` are given)."""
    from safetensors.torch import save_file

    n, folds = len(fold_ids), []
    for i, fold in enumerate(fold_ids):
        entry = {"fold": fold, "threshold": float(thresholds[i]),
                 "student": f"fold-{fold:02d}_student.safetensors", "teacher": None,
                 **(decisions[i].to_json() if decisions else {})}
        save_file(parts[i], str(folder / entry["student"]))
        if with_teachers:
            entry["teacher"] = f"fold-{fold:02d}_teacher.safetensors"
            save_file(parts[n + i], str(folder / entry["teacher"]))
        folds.append(entry)
    return folds


def _calibration_meta(config: dict[str, Any]) -> dict[str, Any]:
    train = config.get("train", {})
    return {"method": train.get("calibration"), "fitted_on": "each fold's validation part",
            "rule_out_sensitivity": train.get("rule_out_sensitivity"),
            "rule_in_specificity": train.get("rule_in_specificity"),
            "zone_scale": "calibrated probability (the model's own without a calibrator)"}


def _calibration_line(meta: dict[str, Any]) -> str:
    methods = [(f.get("calibrator") or {}).get("method", "none") for f in meta["folds"]]
    return ", ".join(methods) if meta.get("calibration") else "none (bundle without calibration)"


def _zones_line(meta: dict[str, Any]) -> str:
    calibration = meta.get("calibration")
    if not calibration:
        return "unavailable"
    pairs = ", ".join(f"[{_num(f.get('rule_out_threshold'))}, {_num(f.get('rule_in_threshold'))})" for f in meta["folds"])
    return (f"rule-out below / rule-in from the thresholds kept at sensitivity {calibration['rule_out_sensitivity']} / "
            f"specificity {calibration['rule_in_specificity']} on validation data, per fold: {pairs}")


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _weights_source(kind: str, weights: Any, digest: str) -> dict[str, Any] | None:
    """Where the backbone came from (hub repo, commit, checkpoint sha256), from its weights folder's
    config when that folder holds these very tensors; None for random weights."""
    from bids_amyloid.errors import BidsAmyloidError
    from bids_amyloid.models.weights import read_weights_config, resolve_weights_dir

    try:
        config = read_weights_config(resolve_weights_dir(kind, Path(weights) if weights else None))
    except BidsAmyloidError:
        return None
    return config.get("source") if config.get("tensor_digest") == digest else None


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


