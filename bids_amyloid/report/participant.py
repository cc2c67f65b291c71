"""Participant report ``OUT/sub-X.html``: predictions with uncertainty per session and contrast,
saliency overlays, the preprocessing QC figures and the provenance, in one self-contained file.

It reads only files of the output folder (what ``preprocess`` and ``infer`` wrote), so it can be
called whenever a subject's sessions are done, with or without a model:

the subject's predictions tables, saliency maps (overlays drawn once and cached as PNG, redrawn
when the map is newer), regions tables and QC figures, as ``Derivatives.subject_files`` finds them.
"""
from __future__ import annotations

import base64
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bids_amyloid import __version__
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.io import atomic_write_bytes
from bids_amyloid.bids.names import sidecar_of
from bids_amyloid.bids.tables import read_rows
from bids_amyloid.config import Config
from bids_amyloid.report import figures
from bids_amyloid.report import html as H

log = logging.getLogger("bids_amyloid.report")

TOP_REGIONS = 8


def entities(name: str) -> dict[str, str]:
    """``sub-01_ses-02_desc-x_suffix.ext`` -> {'sub': '01', 'ses': '02', 'desc': 'x', 'suffix': 'suffix'}."""
    stem = name.split(".")[0]
    parts = stem.split("_")
    found = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    found["suffix"] = parts[-1]
    return found


def read_tsv(path: Path) -> list[dict[str, Any]]:
    return read_rows(path, text=("participant_id", "session_id", "mri_session_id", "model_id"), missing="n/a")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _resolve(uri: str, out_dir: Path) -> Path | None:
    if uri.startswith("bids::"):
        return out_dir / uri[len("bids::"):]
    path = Path(uri)
    return path if path.is_absolute() else None


def _background(saliency: Path, meta: dict[str, Any], out_dir: Path) -> Path | None:
    """The T1w to draw a map over: its Sources' native T1w, or the template-space T1w beside it
    (None: nilearn's own copy of the template)."""
    if "space" not in entities(saliency.name):
        for uri in meta.get("Sources", []):
            path = _resolve(str(uri), out_dir)
            if path is not None and path.name.endswith("_T1w.nii.gz") and "space" not in entities(path.name) \
                    and path.is_file():
                return path
        return None
    space = entities(saliency.name)["space"]
    for candidate in sorted(saliency.parent.glob(f"*_space-{space}_desc-preproc_T1w.nii.gz")):
        return candidate
    return None


def _overlay(saliency: Path, out_dir: Path) -> str:
    meta = read_json(sidecar_of(saliency))
    cached = Derivatives(out_dir).overlay_figure(saliency)
    if not cached.is_file() or cached.stat().st_mtime < saliency.stat().st_mtime:
        method = meta.get("Method", {}).get("Name", entities(saliency.name).get("desc", "saliency"))
        space = "template" if "space" in entities(saliency.name) else "native T1w"
        uri = figures.saliency_overlay(saliency, _background(saliency, meta, out_dir),
                                       f"{method}, {meta.get('Contrast', '')} ({space})")
        atomic_write_bytes(cached, base64.b64decode(uri.split(",", 1)[1]))
    return figures.file_uri(cached)


def _saliency_block(files: dict[str, list[Path]], out_dir: Path) -> str:
    maps = files.get("saliency", [])
    native = [p for p in maps if "space" not in entities(p.name)]
    shown = native or maps
    if not shown:
        return ""
    parts = [H.note("Saliency of the fold-ensemble student: Grad-CAM on the last ViT block and the absolute input "
                    "gradient, weighted by the attention-pooling slice weights, averaged over folds, mapped from the "
                    "sagittal slices to 3-D (only the central slice band the model sees carries saliency). "
                    "Maximum scaled to 1; voxels below 0.1 are transparent.")]
    for path in shown:
        meta = read_json(sidecar_of(path))
        try:
            uri = _overlay(path, out_dir)
        except Exception as exc:  # a figure must not cost the report
            log.warning("%s: overlay failed: %s", path.name, exc)
            continue
        inside = meta.get("MassInsideBrainMask", "n/a")
        space = "template space" if "space" in entities(path.name) else "native T1w space"
        name = meta.get("Method", {}).get("Name", "saliency")
        parts.append(H.figure(uri, f"{name}, {meta.get('Contrast', '')}, {space}: {path.name}. Share of the "
                                   f"unmasked map inside the template brain mask: {inside}."))
    for path in files.get("regions", []):
        rows = read_tsv(path)[:TOP_REGIONS]
        desc = entities(path.name).get("desc", "")
        parts.append(f"<h3>Regions with the largest saliency share ({H.esc(desc)})</h3>")
        parts.append(H.table(rows, ["region", "hemisphere", "saliency_share", "mean_saliency"],
                             {"saliency_share": "share of saliency", "mean_saliency": "mean (max 1)"},
                             numeric=("saliency_share", "mean_saliency")))
        atlas = read_json(sidecar_of(path)).get("Atlas", {})
        if atlas:
            parts.append(H.note(f"Atlas: {atlas.get('Description', atlas.get('Name', ''))}"))
    return "<h3>Where the model looked</h3>\n" + "\n".join(parts)


PRED_COLUMNS = ["session_id", "contrast", "probability", "label", "zone", "threshold", "rule_out_threshold",
                "rule_in_threshold", "uncertainty", "fold_min", "fold_max", "positive_folds", "n_folds",
                "mri_session_id"]
PRED_HEADERS = {"session_id": "session", "probability": "probability", "uncertainty": "fold SD",
                "fold_min": "fold min", "fold_max": "fold max", "positive_folds": "folds positive",
                "n_folds": "folds", "mri_session_id": "MRI from", "rule_out_threshold": "rule-out below",
                "rule_in_threshold": "rule-in from"}
NUMERIC = ("probability", "threshold", "rule_out_threshold", "rule_in_threshold", "uncertainty", "fold_min",
           "fold_max", "positive_folds", "n_folds")
ZONE_MEANING = {
    "rule-out": "rule-out: the probability is below the rule-out threshold. On the training data's held-out folds "
                "few sessions in this zone were amyloid positive (see the model's NPV in the group report); a "
                "pre-screen would not send this session to amyloid PET.",
    "intermediate": "intermediate: between the rule-out and rule-in thresholds. The MRI does not settle it; this is "
                    "the group a pre-screen refers to amyloid PET or a blood test.",
    "rule-in": "rule-in: from the rule-in threshold on. Most sessions in this zone were amyloid positive on the "
               "held-out folds (the model's PPV); confirm with PET or a blood test before acting.",
    "n/a": "n/a: the model has no operating points (a bundle made before calibration, or a fold without both "
           "classes in its validation part); only the probability and label are available.",
}


def _session_block(files: dict[str, list[Path]], out_dir: Path) -> str:
    """One session's section: its predictions, saliency maps and preprocessing QC figures."""
    parts = []
    rows = [r for p in files.get("predictions", []) for r in read_tsv(p)]
    if rows:
        parts.append(H.table(rows, PRED_COLUMNS[1:], PRED_HEADERS, NUMERIC))
    parts.append(_saliency_block(files, out_dir))
    qc = files.get("qc", [])
    if qc:
        parts.append("<h3>Preprocessing quality control</h3>")
        parts += [H.figure(figures.file_uri(p), p.name) for p in qc]
    if not any(parts):
        parts.append(H.note("No outputs yet."))
    return "\n".join(p for p in parts if p)


def _provenance_parts(provenance: dict) -> list[str]:
    """The models, the ensemble rule and the prediction's settings, then the report's own stamp."""
    prov = []
    if provenance:
        models = provenance.get("Models") or {}
        rows = [{"contrast": c, "model id": str(m.get("ModelId", ""))[:16], "backbone": m.get("Backbone"),
                 "folds": m.get("Folds"), "fold thresholds": ", ".join(f"{t:.3f}" for t in m.get("FoldThresholds", [])),
                 "device": m.get("Device"), "precision": m.get("Precision"), "trained with": m.get("TrainedWith")}
                for c, m in models.items()]
        if rows:
            prov.append(H.table(rows, list(rows[0])))
        prov.append(H.note(f"Ensemble rule: {next(iter(models.values()), {}).get('EnsembleRule', 'n/a')}"))
        prov.append(H.json_details("Settings, sources and checksums of the prediction", provenance))
    prov.append(H.note(f"Report written by bids_amyloid {__version__} on "
                       f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. {H.DISCLAIMER}"))
    return prov


def _zone_notes(predictions: list[dict[str, Any]]) -> str:
    """What each zone shown means (research use: the zones are operating points, not a diagnosis)."""
    shown = sorted({str(r.get("zone") or "n/a") for r in predictions}, key=lambda z: list(ZONE_MEANING).index(z)
                   if z in ZONE_MEANING else len(ZONE_MEANING))
    lines = [H.esc(ZONE_MEANING.get(z, z)) for z in shown]
    return ('<h3>Zones</h3><ul class="note">' + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"
            + H.note("Zones and their thresholds were chosen on validation data at training time; NPV and PPV depend "
                     "on the prevalence of amyloid positivity, so they hold for populations like the training data."))


def write_participant_report(subject: str, config: Config) -> Path:
    """Write ``OUT/sub-<subject>.html`` from what the output folder holds for this subject."""
    subject = re.sub(r"^sub-", "", subject)
    layout = Derivatives(config.output_dir)
    out_dir = layout.root
    found = layout.subject_files(subject)
    predictions, provenance, testing = [], {}, False
    for ses in sorted(found):
        for path in found[ses].get("predictions", []):
            predictions += read_tsv(path)
            provenance = provenance or read_json(sidecar_of(path))
    testing = any(str(r.get("testing_only")).lower() == "true" for r in predictions)
    body = []
    if testing:
        body.append(H.banner("TESTING ONLY: these predictions come from a model with the random 'tiny' backbone. "
                             "They are meaningless and exist only to test the software."))
    if predictions:
        summary = [H.table(predictions, PRED_COLUMNS, PRED_HEADERS, NUMERIC),
                   H.figure(figures.prediction_strip(predictions), "Ensemble probability (dot), range over the "
                            "fold models (bar) and decision threshold (tick) per session and contrast."),
                   H.note("probability: the fold students' probabilities, each calibrated on its own fold's validation "
                          "part and averaged (a bundle without calibration: aligned at each fold's threshold and "
                          "averaged on the logit scale); label: positive when the probability reaches the threshold; "
                          "fold SD / min / max: disagreement between the fold models."),
                   _zone_notes(predictions)]
        body.append(H.section("Amyloid-beta prediction from MRI", "\n".join(summary), "predictions"))
    else:
        body.append(H.section("Amyloid-beta prediction from MRI",
                              H.note("No predictions for this subject (participant level run without --model, or "
                                     "no usable MRI)."), "predictions"))
    nav = [("Predictions", "predictions")]
    for ses in sorted(found):
        title, anchor = (f"Session {ses}", f"ses-{ses}") if ses else ("Subject-level outputs", "subject")
        body.append(H.section(title, _session_block(found[ses], out_dir), anchor))
        nav.append((title, anchor))
    prov = _provenance_parts(provenance)
    body.append(H.section("Provenance", "\n".join(prov), "provenance"))
    nav.append(("Provenance", "provenance"))
    text = H.page(f"bids_amyloid: sub-{subject}", "Amyloid-beta positivity from MRI alone: participant report",
                  nav, "\n".join(body))
    path = H.write_page(layout.participant_report(subject), text)
    log.info("participant report: %s", path)
    return path
