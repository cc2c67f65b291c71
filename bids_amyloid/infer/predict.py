"""Participant-level inference: the fold-ensemble student on MRI alone.

Called by ``workflows/participant.py``: :func:`check_model` once before any preprocessing,
:func:`predict_session` per session after preprocessing, then
:func:`bids_amyloid.infer.table.gather_predictions` at the end.

Per session and contrast (requested with ``--contrast`` and supported by the bundle), each fold
model has its own probability scale (on the training benchmark the pooled out-of-fold teacher
AUC is 0.69 from raw probabilities and 0.96 once the folds share a scale), so the folds are put on
one scale first (``models.calibration``):

* calibrated bundle (format 1.1, trained with calibration): each fold's probability goes through
  its own calibrator (fitted on its validation part); ``probability`` = the mean of the calibrated
  fold probabilities, ``threshold`` = the mean of the calibrated fold thresholds, and
  ``rule_out_threshold`` / ``rule_in_threshold`` = the means of the folds' operating points
  (chosen on their calibrated validation probabilities);
* otherwise each fold's probability is ALIGNED at its own validation-chosen threshold: its logit
  minus the logit of its threshold, plus the logit of ``threshold`` = the mean of the folds'
  thresholds; ``probability`` = sigmoid of the mean aligned logit. A bundle made before
  calibration has no operating points: ``zone`` is 'n/a';
* ``label`` = positive when ``probability >= threshold``; ``zone`` = rule-out / intermediate /
  rule-in (``models.calibration.zone``). ``positive_folds`` counts the folds whose own
  probability reaches their own threshold (the majority vote, for reference);
* ``uncertainty`` = population standard deviation of the fold probabilities on the common
  scale; ``fold_min`` / ``fold_max`` = their range.

Outputs: ``sub-X/ses-Y/anat/sub-X_ses-Y_desc-amyloid_predictions.tsv`` (one row per contrast)
with a JSON data dictionary and provenance (:mod:`bids_amyloid.infer.table`), saliency maps
(:mod:`bids_amyloid.infer.saliency`), and ``group/sub-all_desc-amyloid_predictions.tsv``
gathering every session.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from bids_amyloid.bids.dataset import provenance
from bids_amyloid.bids.derivatives import Derivatives, SessionDerivatives
from bids_amyloid.bids.io import sha256_file
from bids_amyloid.bids.names import output_uri, sidecar_of
from bids_amyloid.bids.records import Preprocessed, Session
from bids_amyloid.config import Config
from bids_amyloid.errors import DataError, UsageError
from bids_amyloid.infer.loading import LoadedModel
from bids_amyloid.infer.table import Prediction, read_predictions, write_predictions
from bids_amyloid.models.calibration import FoldDecision, logit, zone

if TYPE_CHECKING:
    from bids_amyloid.models.bundle import Bundle

log = logging.getLogger("bids_amyloid.infer")

ENSEMBLE_RULES = {
    "calibrated": "each fold's probability calibrated by its own calibrator (fitted on its validation part); "
                  "probability = mean of the calibrated fold probabilities; threshold = mean of the calibrated fold "
                  "thresholds; rule-out / rule-in thresholds = means of the folds' operating points; positive when "
                  "probability >= threshold; uncertainty = population SD of the calibrated fold probabilities",
    "aligned": "fold probabilities aligned at their own validation thresholds (logit p - logit t_fold + logit t); "
               "probability = sigmoid(mean aligned logit); threshold t = mean of fold validation thresholds; "
               "positive when probability >= threshold; uncertainty = population SD of aligned fold probabilities",
}


def ensemble_rule(decisions: Sequence[FoldDecision]) -> str:
    """'calibrated' when every fold has a calibrator, else 'aligned'."""
    return "calibrated" if decisions and all(d.calibrator is not None for d in decisions) else "aligned"


def ensemble_prediction(fold_probabilities: Sequence[float], decisions: Sequence[FoldDecision | float], *, subject: str,
                        session: str | None, contrast: str, model_id: str, testing_only: bool,
                        mri_session: str | None = None) -> Prediction:
    """Combine per-fold probabilities (the rules in the module docstring); a bare number for a
    decision is a threshold alone (an uncalibrated fold)."""
    decisions = [d if isinstance(d, FoldDecision) else FoldDecision(float(d)) for d in decisions]
    p = np.asarray(fold_probabilities, dtype=np.float64)
    t = np.asarray([d.threshold for d in decisions], dtype=np.float64)
    if p.size == 0 or p.shape != t.shape:
        raise ValueError(f"need one probability per fold decision, got {p.size} and {t.size}")
    # per fold (rule-out, rule-in): on the calibrated scale, or the fold's own without a calibrator
    operating = np.array([(d.rule_out, d.rule_in) for d in decisions], dtype=float)
    rule = ensemble_rule(decisions)
    if rule == "calibrated":
        q = np.array([d.calibrate(pk) for d, pk in zip(decisions, p)])
        probability = float(q.mean())
        threshold = float(np.mean([d.calibrate(d.threshold) for d in decisions]))
        common = operating.mean(axis=0)
    else:
        threshold = float(t.mean())
        shift = logit(threshold) - logit(t)  # per fold: its own threshold onto the common one
        q = expit(logit(p) + shift)
        probability = float(expit((logit(p) + shift).mean()))
        common = expit((logit(operating) + shift[:, None]).mean(axis=0))
    rule_out, rule_in = (None, None) if np.isnan(operating).any() else (float(common[0]), float(common[1]))
    return Prediction(
        participant_id=f"sub-{subject}", session_id=f"ses-{session}" if session else None,
        mri_session_id=f"ses-{mri_session or session}" if (mri_session or session) else None, contrast=contrast,
        probability=probability, label="positive" if probability >= threshold else "negative",
        zone=zone(probability, rule_out, rule_in), threshold=threshold, rule_out_threshold=rule_out,
        rule_in_threshold=rule_in, uncertainty=float(q.std()), fold_min=float(q.min()), fold_max=float(q.max()),
        positive_folds=int((p >= t).sum()), n_folds=int(p.size), calibrated=rule == "calibrated",
        model_id=model_id, testing_only=testing_only)


# --------------------------------------------------------------------------------------------
# model


def check_model(config: Config) -> dict[str, Bundle]:
    """Open and verify the bundle(s) and load the students before any work; return contrast ->
    bundle.

    Missing or tampered bundle -> DataError (65); a requested contrast no bundle was trained on
    -> UsageError (64). Missing backbone weights for a bundle that does not embed them ->
    MissingInputError (66).
    """
    from bids_amyloid.infer.loading import load_model, open_bundles

    if config.model_path is None:
        raise UsageError("no model bundle given (--model)")
    config.infer.validate()  # settings changed after parsing are checked before any work too
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


def _native_grid(preprocessed: Preprocessed):
    """Native grid (the preprocessed anchor, T1w), its brain mask and the saved template -> native
    transform (a separate inverse file, so nothing is inverted). None when a piece is missing."""
    from bids_amyloid.infer.saliency import NativeGrid

    p = preprocessed
    if not (p.native_preproc.is_file() and p.xfm_from_template.is_file()):
        return None
    return NativeGrid(p.native_preproc, p.brain_mask if p.brain_mask.is_file() else None, (str(p.xfm_from_template),))


def _done(path: Path, model_ids: dict[str, str], expected: list[Path]) -> bool:
    """A previous run finished this session with the same model per contrast."""
    if not path.is_file() or not all(p.is_file() for p in expected):
        return False
    return {r["contrast"]: r["model_id"] for r in read_predictions(path)} == model_ids


def _model_info(model: LoadedModel, config: Config) -> dict[str, Any]:
    bundle = model.bundle
    return {"ModelId": bundle.model_id, "ModelPath": str(bundle.path), "Backbone": bundle.backbone_kind,
            "TestingOnly": bundle.testing_only, "Folds": len(model.students), "FoldThresholds": bundle.thresholds,
            "BundleVersion": bundle.version, "TrainedWith": bundle.bids_amyloid_version,
            "EnsembleRule": ENSEMBLE_RULES[ensemble_rule(bundle.decisions)], "Device": str(model.device),
            "Calibration": [d.calibrator.to_json() if d.calibrator else None for d in bundle.decisions],
            "OperatingPoints": bundle.metadata.get("calibration") or "unavailable: the bundle predates calibration",
            "Precision": model.precision, "PrecisionChoice": model.precision_choice,
            "SaliencyGradient": config.infer.saliency_gradient}


def predict_session(session: Session, preprocessed: Preprocessed, config: Config) -> list[Prediction]:
    """Predict one session from its MRI slice caches; write predictions and saliency maps.

    Resumable: a session whose table lists the same model per contrast and whose saliency
    files all exist is skipped (unless ``--overwrite``). The table is written last.
    """
    from bids_amyloid.infer.loading import load_model

    paths = Derivatives(config.output_dir).session(session.subject, session.session)
    inputs = {}
    for contrast in config.contrasts:
        path = preprocessed.slices.get(contrast)
        if path is None or not path.is_file():
            log.warning("%s: no %s slice cache; no %s prediction", session.key, contrast, contrast)
            continue
        inputs[contrast] = path
    if not inputs:
        log.warning("%s: nothing to predict (no slice cache of %s)", session.key, config.contrasts)
        return []
    models = {c: load_model(config, c) for c in inputs}
    table = paths.predictions()
    native = _native_grid(preprocessed) if config.infer.native_saliency else None
    if config.infer.native_saliency and native is None:
        log.warning("%s: no native T1w / inverse transform in the preprocessing record; template-space saliency "
                    "only", session.key)
    expected = [p for c in inputs for m in config.infer.saliency for k, p in paths.saliency(c, m).items()
                if native or k != "native"]
    if not config.overwrite and _done(table, {c: m.bundle.model_id for c, m in models.items()}, expected):
        log.info("%s: predictions exist (same model); skipping (use --overwrite to redo)", session.key)
        return [Prediction.from_row(r) for r in read_predictions(table)]

    predictions, sources, checksums, infos, selection = [], [], {}, {}, {}
    for contrast, path in inputs.items():
        model = models[contrast]
        infos[contrast] = _model_info(model, config)
        checksums[f"model_{contrast}"] = model.bundle.model_id
        source = output_uri(path, config.output_dir)
        sources.append(source)
        checksums[source] = sha256_file(path)
        prediction, selection[contrast] = _predict_contrast(session, paths, contrast, path, source, model, native,
                                                            config, infos[contrast], checksums[source])
        predictions.append(prediction)
    write_predictions(table, predictions, {
        "Description": "Amyloid-beta positivity predicted from MRI alone by the fold-ensemble student.",
        "Models": infos, "SliceSelection": selection, **provenance(config.to_dict(), sources, checksums)})
    return predictions


def _predict_contrast(session: Session, paths: SessionDerivatives, contrast: str, path: Path, source: str,
                      model: LoadedModel, native, config: Config, info: dict[str, Any], checksum: str
                      ) -> tuple[Prediction, dict[str, Any]]:
    import torch

    from bids_amyloid.infer.ensemble import run_ensemble
    from bids_amyloid.infer.saliency import write_saliency
    from bids_amyloid.models.inputs import select_slices, to_model_input

    start = time.perf_counter()
    bundle = model.bundle
    model_cfg = bundle.model_config
    min_mean = float(bundle.config.preprocess.min_slice_mean)
    sidecar = _read_slice_sidecar(path)
    slices = np.load(path, mmap_mode="r")
    if slices.ndim != 3 or slices.shape[0] != len(sidecar["TemplateXIndex"]):
        raise DataError(f"{path}: shape {slices.shape} does not match {len(sidecar['TemplateXIndex'])} x indices")
    chosen = select_slices(sidecar["SliceMean"], model_cfg.input_slices, min_mean, source=str(path))
    x = to_model_input(np.asarray(slices[chosen]), contrast, model_cfg.pet_suvr_scale).to(model.device)
    methods = list(config.infer.saliency)
    result = run_ensemble(model.students, x, methods=methods, bf16=model.precision == "bf16",
                          gradient_of=config.infer.saliency_gradient)
    del x
    prediction = ensemble_prediction(result.probabilities, bundle.decisions, subject=session.subject,
                                     session=session.session, contrast=contrast, model_id=bundle.model_id,
                                     testing_only=bundle.testing_only, mri_session=session.mri_session)
    x_index = [int(sidecar["TemplateXIndex"][i]) for i in chosen]
    extra = {"Model": info, "Prediction": {"Probability": prediction.probability, "Label": prediction.label,
                                           "Zone": prediction.zone},
             "SliceWeights": np.round(result.slice_weights.mean(axis=0), 6).tolist(),
             **provenance(config.to_dict(), [source], {source: checksum})}
    extra.pop("Sources")
    if methods:
        write_saliency(session=paths, contrast=contrast, maps=result.maps, x_index=x_index, slice_sidecar=sidecar,
                       native=native, sources=[source], extra=extra)
    log.info("%s %s: p=%.3f (%s, threshold %.3f, zone %s, fold SD %.3f) in %.1f s", session.key, contrast,
             prediction.probability, prediction.label, prediction.threshold, prediction.zone, prediction.uncertainty,
             time.perf_counter() - start)
    if model.device.type == "cuda":
        torch.cuda.empty_cache()
    return prediction, {"InputSlices": model_cfg.input_slices, "MinSliceMean": min_mean,
                        "TemplateXIndex": x_index}


def _read_slice_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_of(path)
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{side}: slice-cache sidecar missing or unreadable ({exc})") from exc
    for key in ("TemplateXIndex", "SliceMean", "InPlaneShape"):
        if key not in data:
            raise DataError(f"{side}: no {key!r}")
    return data

