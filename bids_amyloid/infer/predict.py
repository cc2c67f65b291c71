"""Participant-level inference: the fold-ensemble student on MRI alone.

Called by ``workflows/participant.py``: :func:`check_model` once before any preprocessing,
:func:`predict_session` per session after preprocessing, :func:`gather_predictions` at the end.

Per session and contrast (requested with ``--contrast`` and supported by the bundle):

* ``probability`` = mean over folds of sigmoid(student logit) (the ensemble);
* ``threshold`` = mean of the folds' validation-chosen thresholds; ``label`` = positive when
  ``probability >= threshold`` (the same rule the training metrics use). ``positive_folds``
  counts the folds whose own probability reaches their own threshold (the majority vote, for
  reference: it may disagree with ``label`` near the threshold);
* ``uncertainty`` = population standard deviation of the fold probabilities; ``fold_min`` /
  ``fold_max`` = their range.

Outputs: ``sub-X/ses-Y/anat/sub-X_ses-Y_desc-amyloid_predictions.tsv`` (one row per contrast)
with a JSON data dictionary and provenance, saliency maps (:mod:`bids_amyloid.infer.saliency`),
and ``group/sub-all_desc-amyloid_predictions.tsv`` gathering every session.
"""
from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bids_amyloid import __version__
from bids_amyloid.bids.derivatives import derivative_path, provenance, slice_cache_path
from bids_amyloid.bids.io import atomic_write_json, atomic_write_text, locked, sha256_file
from bids_amyloid.bids.records import Session
from bids_amyloid.config import TEMPLATE_SPACE, Config
from bids_amyloid.errors import DataError, UsageError

log = logging.getLogger("bids_amyloid.infer")

GROUP_TABLE = Path("group") / "sub-all_desc-amyloid_predictions.tsv"
"""Gathered predictions, relative to the output folder."""

COLUMNS: dict[str, dict[str, Any]] = {
    "participant_id": {"LongName": "Participant identifier", "Description": "BIDS subject label with 'sub-'."},
    "session_id": {"LongName": "Session identifier",
                   "Description": "BIDS session label with 'ses-'; n/a for a dataset without sessions."},
    "mri_session_id": {"LongName": "MRI session used",
                       "Description": "Session whose MRI the prediction used (differs from session_id when a "
                                      "PET-only session borrows the subject's MRI from another session)."},
    "contrast": {"LongName": "MRI contrast", "Description": "BIDS suffix of the MRI the prediction used.",
                 "Levels": {"T1w": "T1-weighted", "T2w": "T2-weighted", "FLAIR": "FLAIR", "T2starw": "T2*-weighted"}},
    "probability": {"LongName": "Probability of amyloid-beta positivity",
                    "Description": "Mean over the cross-validation folds of the MRI-only student's sigmoid output "
                                   "(estimated probability that Centiloid exceeds the training cut-off).",
                    "Units": "probability (0-1)"},
    "label": {"LongName": "Predicted amyloid status",
              "Description": "positive when probability >= threshold, else negative.",
              "Levels": {"positive": "predicted amyloid-beta positive", "negative": "predicted amyloid-beta negative"}},
    "threshold": {"LongName": "Decision threshold",
                  "Description": "Mean of the per-fold thresholds chosen on each fold's VALIDATION data at training "
                                 "time (never on test data).", "Units": "probability (0-1)"},
    "uncertainty": {"LongName": "Ensemble disagreement",
                    "Description": "Population standard deviation of the fold probabilities.",
                    "Units": "probability (0-1)"},
    "fold_min": {"LongName": "Lowest fold probability", "Description": "Minimum over folds of the probability.",
                 "Units": "probability (0-1)"},
    "fold_max": {"LongName": "Highest fold probability", "Description": "Maximum over folds of the probability.",
                 "Units": "probability (0-1)"},
    "positive_folds": {"LongName": "Folds voting positive",
                       "Description": "Number of folds whose probability reaches their own threshold (majority "
                                      "vote for reference; label uses the ensemble mean)."},
    "n_folds": {"LongName": "Folds in the ensemble", "Description": "Number of fold students averaged."},
    "model_id": {"LongName": "Model identifier",
                 "Description": "sha256 of the model bundle's manifest (which lists the sha256 of every bundle file)."},
    "testing_only": {"LongName": "Testing-only model",
                     "Description": "true when the bundle uses the random 'tiny' backbone: the prediction is "
                                    "MEANINGLESS and exists only to test the software.",
                     "Levels": {"true": "testing-only model", "false": "real model"}},
}
"""JSON data dictionary of the predictions tables (per session and gathered)."""

ENSEMBLE_RULE = ("probability = mean of fold sigmoids; threshold = mean of fold validation thresholds; "
                 "positive when probability >= threshold; uncertainty = population SD of fold probabilities")


@dataclass(frozen=True)
class Prediction:
    participant_id: str
    session_id: str | None
    mri_session_id: str | None
    contrast: str
    probability: float
    label: str
    threshold: float
    uncertainty: float
    fold_min: float
    fold_max: float
    positive_folds: int
    n_folds: int
    model_id: str
    testing_only: bool

    def row(self) -> list[str]:
        values = []
        for name in COLUMNS:
            value = getattr(self, name)
            if value is None:
                values.append("n/a")
            elif isinstance(value, bool):
                values.append(str(value).lower())
            elif isinstance(value, float):
                values.append("n/a" if not np.isfinite(value) else f"{value:.6f}")
            else:
                values.append(str(value))
        return values


def ensemble_prediction(fold_probabilities: Sequence[float], thresholds: Sequence[float], *, subject: str,
                        session: str | None, contrast: str, model_id: str, testing_only: bool,
                        mri_session: str | None = None) -> Prediction:
    """Combine per-fold probabilities (the rule in the module docstring)."""
    p = np.asarray(fold_probabilities, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if p.size == 0 or p.shape != t.shape:
        raise ValueError(f"need one probability per fold threshold, got {p.size} and {t.size}")
    probability, threshold = float(p.mean()), float(t.mean())
    return Prediction(
        participant_id=f"sub-{subject}", session_id=f"ses-{session}" if session else None,
        mri_session_id=f"ses-{mri_session or session}" if (mri_session or session) else None, contrast=contrast,
        probability=probability, label="positive" if probability >= threshold else "negative",
        threshold=threshold, uncertainty=float(p.std()), fold_min=float(p.min()), fold_max=float(p.max()),
        positive_folds=int((p >= t).sum()), n_folds=int(p.size), model_id=model_id, testing_only=testing_only)


# --------------------------------------------------------------------------------------------
# model


def check_model(config: Config) -> dict[str, Any]:
    """Open and verify the bundle(s) and load the students before any work; return contrast ->
    bundle.

    Missing or tampered bundle -> DataError (65); a requested contrast no bundle was trained on,
    or an unknown saliency method -> UsageError (64). Missing backbone weights for a bundle that
    does not embed them -> MissingInputError (66).
    """
    from bids_amyloid.infer.ensemble import METHODS
    from bids_amyloid.infer.loading import load_model, open_bundles

    if config.model_path is None:
        raise UsageError("no model bundle given (--model)")
    bad = [m for m in config.infer.saliency if m not in METHODS]
    if bad:
        raise UsageError(f"unknown saliency method(s) {bad}; choose from {list(METHODS)}")
    bundles = open_bundles(config.model_path)
    missing = [c for c in config.contrasts if c not in bundles]
    if missing:
        raise UsageError(f"--model {config.model_path} was trained on {sorted(bundles)}, not on {missing}; "
                         f"choose --contrast among {sorted(bundles)}")
    for contrast in config.contrasts:
        bundle = bundles[contrast]
        if bundle.testing_only:
            log.warning("model for %s (%s) uses the random 'tiny' backbone: predictions are TESTING ONLY",
                        contrast, bundle.path)
        load_model(config, contrast)  # a missing/mismatched backbone fails here, before preprocessing
        log.info("%s model %s: %d fold(s), thresholds %s", contrast, bundle.model_id[:12], len(bundle.folds),
                 ", ".join(f"{t:.3f}" for t in bundle.thresholds))
    return {c: bundles[c] for c in config.contrasts}


# --------------------------------------------------------------------------------------------
# per session


def predictions_path(out_dir: Path, subject: str, session: str | None) -> Path:
    return derivative_path(out_dir, subject, session, "anat", "predictions", ".tsv", desc="amyloid")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name.split(".")[0] + ".json")


def _slice_inputs(session: Session, preprocessed: Any, contrast: str, out_dir: Path) -> Path | None:
    """The slice cache of ``contrast`` for this session (None when it was not produced)."""
    slices = getattr(preprocessed, "slices", None) or {}
    path = slices.get(contrast) if isinstance(slices, dict) else None
    if path is None:
        path = slice_cache_path(out_dir, session.subject, session.mri_session or session.session, contrast)
    return Path(path) if Path(path).is_file() else None


def _native_grid(session: Session, preprocessed: Any, out_dir: Path):
    """Native grid (the preprocessed anchor, T1w), its brain mask and the template -> native
    transform of this session, from the ``Preprocessed`` record (``native_preproc``,
    ``brain_mask``, ``xfm_from_template``: a separate inverse file, so nothing is inverted);
    without a record, found by their derivative names. None when a piece is missing."""
    from bids_amyloid.infer.saliency import NativeGrid

    ses = session.mri_session or session.session
    anchor = getattr(preprocessed, "anchor", None) or "T1w"
    def named(suffix: str, ext: str = ".nii.gz", **e: str) -> Path:
        return derivative_path(out_dir, session.subject, ses, "anat", suffix, ext, **e)

    reference = getattr(preprocessed, "native_preproc", None) or named(anchor, desc="preproc")
    mask = getattr(preprocessed, "brain_mask", None) or named("mask", desc="brain")
    inverse = getattr(preprocessed, "xfm_from_template", None)
    if inverse is None:
        for ext in (".h5", ".mat"):
            candidate = named("xfm", ext, **{"from": TEMPLATE_SPACE}, to=anchor, mode="image")
            if candidate.is_file():
                inverse = candidate
                break
    if inverse is None or not Path(reference).is_file() or not Path(inverse).is_file():
        return None
    return NativeGrid(Path(reference), Path(mask) if Path(mask).is_file() else None, (str(inverse),), (False,))


def _done(path: Path, model_ids: dict[str, str], expected: list[Path]) -> bool:
    """A previous run finished this session with the same model per contrast."""
    if not path.is_file() or not all(p.is_file() for p in expected):
        return False
    return {r["contrast"]: r["model_id"] for r in read_table(path)} == model_ids


def _model_info(model, config: Config) -> dict[str, Any]:
    from bids_amyloid.infer.ensemble import precision

    bundle = model.bundle
    return {"ModelId": bundle.model_id, "ModelPath": str(bundle.path), "Backbone": bundle.backbone_kind,
            "TestingOnly": bundle.testing_only, "Folds": len(model.students), "FoldThresholds": bundle.thresholds,
            "BundleVersion": bundle.version, "TrainedWith": bundle.bids_amyloid_version,
            "EnsembleRule": ENSEMBLE_RULE, "Device": str(model.device),
            "Precision": precision(model.device, config.infer.cpu_bf16)}


def predict_session(session: Session, preprocessed: Any, config: Config) -> list[Prediction]:
    """Predict one session from its MRI slice caches; write predictions and saliency maps.

    Resumable: a session whose table lists the same model per contrast and whose saliency
    files all exist is skipped (unless ``--overwrite``). The table is written last.
    """
    from bids_amyloid.infer.loading import load_model
    from bids_amyloid.infer.saliency import saliency_paths

    out_dir = config.output_dir
    inputs = {}
    for contrast in config.contrasts:
        path = _slice_inputs(session, preprocessed, contrast, out_dir)
        if path is None:
            log.warning("%s: no %s slice cache; no %s prediction", session.key, contrast, contrast)
            continue
        inputs[contrast] = path
    if not inputs:
        log.warning("%s: nothing to predict (no slice cache of %s)", session.key, config.contrasts)
        return []
    models = {c: load_model(config, c) for c in inputs}
    table = predictions_path(out_dir, session.subject, session.session)
    native = _native_grid(session, preprocessed, out_dir) if config.infer.native_saliency else None
    if config.infer.native_saliency and native is None:
        log.warning("%s: no native T1w / inverse transform in the preprocessing record; template-space saliency "
                    "only", session.key)
    expected = [p for c in inputs for m in config.infer.saliency for k, p in
                saliency_paths(out_dir, session.subject, session.session, c, m).items() if native or k != "native"]
    if not config.overwrite and _done(table, {c: m.bundle.model_id for c, m in models.items()}, expected):
        log.info("%s: predictions exist (same model); skipping (use --overwrite to redo)", session.key)
        return [_from_row(r) for r in read_table(table)]

    predictions, sources, checksums, infos, selection = [], [], {}, {}, {}
    for contrast, path in inputs.items():
        model = models[contrast]
        infos[contrast] = _model_info(model, config)
        checksums[f"model_{contrast}"] = model.bundle.model_id
        source = _rel(path, out_dir)
        sources.append(source)
        checksums[source] = sha256_file(path)
        prediction, selection[contrast] = _predict_contrast(session, contrast, path, source, model, native, config,
                                                            infos[contrast], checksums[source])
        predictions.append(prediction)
    _write_table(table, predictions)
    atomic_write_json(_sidecar(table), {
        **COLUMNS,
        "Description": "Amyloid-beta positivity predicted from MRI alone by the fold-ensemble student.",
        "Models": infos,
        "SliceSelection": selection,
        **provenance(config.to_dict(), sources, checksums),
    })
    return predictions


def _predict_contrast(session: Session, contrast: str, path: Path, source: str, model, native, config: Config,
                      info: dict[str, Any], checksum: str) -> tuple[Prediction, dict[str, Any]]:
    import torch

    from bids_amyloid.infer.ensemble import run_ensemble
    from bids_amyloid.infer.saliency import write_saliency
    from bids_amyloid.models.inputs import select_slices, to_model_input

    start = time.perf_counter()
    bundle = model.bundle
    model_cfg = bundle.model_config
    min_mean = float(bundle.config.get("preprocess", {}).get("min_slice_mean", config.preprocess.min_slice_mean))
    sidecar = _read_slice_sidecar(path)
    slices = np.load(path, mmap_mode="r")
    if slices.ndim != 3 or slices.shape[0] != len(sidecar["TemplateXIndex"]):
        raise DataError(f"{path}: shape {slices.shape} does not match {len(sidecar['TemplateXIndex'])} x indices")
    chosen = select_slices(sidecar["SliceMean"], model_cfg.input_slices, min_mean, source=str(path))
    x = to_model_input(np.asarray(slices[chosen]), contrast, model_cfg.pet_suvr_scale).to(model.device)
    methods = list(config.infer.saliency)
    result = run_ensemble(model.students, x, methods=methods, cpu_bf16=config.infer.cpu_bf16)
    prediction = ensemble_prediction(result.probabilities, bundle.thresholds, subject=session.subject,
                                     session=session.session, contrast=contrast, model_id=bundle.model_id,
                                     testing_only=bundle.testing_only, mri_session=session.mri_session)
    x_index = [int(sidecar["TemplateXIndex"][i]) for i in chosen]
    extra = {"Model": info, "Prediction": {"Probability": prediction.probability, "Label": prediction.label},
             "SliceWeights": np.round(result.slice_weights.mean(axis=0), 6).tolist(),
             **provenance(config.to_dict(), [source], {source: checksum})}
    extra.pop("Sources")
    for method in methods:
        write_saliency(out_dir=config.output_dir, subject=session.subject, session=session.session,
                       contrast=contrast, method=method, slice_maps=result.maps[method], x_index=x_index,
                       slice_sidecar=sidecar, native=native, sources=[source], extra=extra)
    log.info("%s %s: p=%.3f (%s, threshold %.3f, fold SD %.3f) in %.1f s", session.key, contrast,
             prediction.probability, prediction.label, prediction.threshold, prediction.uncertainty,
             time.perf_counter() - start)
    if model.device.type == "cuda":
        torch.cuda.empty_cache()
    return prediction, {"InputSlices": model_cfg.input_slices, "MinSliceMean": min_mean,
                        "TemplateXIndex": x_index}


def _read_slice_sidecar(path: Path) -> dict[str, Any]:
    side = path.with_name(path.name.split(".")[0] + ".json")
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{side}: slice-cache sidecar missing or unreadable ({exc})") from exc
    for key in ("TemplateXIndex", "SliceMean", "InPlaneShape"):
        if key not in data:
            raise DataError(f"{side}: no {key!r}")
    return data


def _rel(path: Path, root: Path) -> str:
    try:
        return "bids::" + Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


# --------------------------------------------------------------------------------------------
# tables


def _write_table(path: Path, rows: Sequence[Prediction] | Sequence[list[str]]) -> None:
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join(r.row() if isinstance(r, Prediction) else r) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a predictions TSV as strings (``n/a`` kept)."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _from_row(row: dict[str, str]) -> Prediction:
    num = lambda v: float("nan") if v == "n/a" else float(v)  # noqa: E731
    ses = lambda v: None if v in (None, "", "n/a") else v  # noqa: E731
    return Prediction(row["participant_id"], ses(row["session_id"]), ses(row.get("mri_session_id")),
                      row["contrast"], num(row["probability"]), row["label"], num(row["threshold"]),
                      num(row["uncertainty"]), num(row["fold_min"]), num(row["fold_max"]),
                      int(row["positive_folds"]), int(row["n_folds"]), row["model_id"],
                      row.get("testing_only", "false") == "true")


def gather_predictions(config: Config) -> Path | None:
    """Rebuild ``group/sub-all_desc-amyloid_predictions.tsv`` from every per-session table.

    Runs under a lock, reads all per-session files (so concurrent array jobs each leave a
    complete table, and the last one sees everybody), sorts rows by participant, session and
    contrast: the result depends only on the per-session files.
    """
    out_dir = Path(config.output_dir)
    target = out_dir / GROUP_TABLE
    with locked(target):
        files = sorted(set(out_dir.glob("sub-*/ses-*/anat/*_desc-amyloid_predictions.tsv"))
                       | set(out_dir.glob("sub-*/anat/*_desc-amyloid_predictions.tsv")))
        rows = []
        for path in files:
            for row in read_table(path):
                rows.append([row.get(c, "n/a") or "n/a" for c in COLUMNS])
        if not rows:
            log.info("no per-session predictions to gather")
            return None
        index = {name: i for i, name in enumerate(COLUMNS)}
        rows.sort(key=lambda r: (r[index["participant_id"]], r[index["session_id"]], r[index["contrast"]]))
        models = sorted({r[index["model_id"]] for r in rows})
        if len(models) > 1:
            log.warning("%s gathers predictions of %d different models: %s", target, len(models),
                        ", ".join(m[:12] for m in models))
        _write_table(target, rows)
        atomic_write_json(_sidecar(target), {
            **COLUMNS,
            "Description": "All per-session amyloid predictions of this output folder, one row per session and "
                           "contrast (rebuilt from the per-session tables after every participant-level run).",
            "ModelIds": models,
            "Sources": [_rel(p, out_dir) for p in files],
            "GeneratedBy": {"Name": "bids_amyloid", "Version": __version__},
        })
    log.info("%d prediction(s) of %d session file(s) gathered in %s", len(rows), len(files), target)
    return target
