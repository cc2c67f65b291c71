"""PET sidecar styles of real datasets: standard PET-BIDS with real-world defects, the OASIS-3
pre-standard draft (nested objects, no TracerName), DLBS's two-frame static, frame tables.

Defects (PetSpec.defects): "na-numbers" ("n/a" strings in numeric fields), "units-bq-ml" (the
lower-case spelling), "no-timezero" (recent dcm2niix writes no TimeZero / InjectionStart),
"cumulative-duration" (frame END times stored as FrameDuration, as a BIDS example does),
"no-timing" (no frame timing at all: the _pet.tsv beside the image is the only source).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bids_amyloid.synth import deform, pet
from bids_amyloid.synth.pet import Tracer

DEFECTS = ("na-numbers", "units-bq-ml", "no-timezero", "cumulative-duration", "no-timing")
STYLES = ("standard", "draft", "two-frames", "none")
HTML_ERROR = b"<html><body>404 Not Found</body></html>\n"  # a failed download saved as .nii.gz


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 3)


def standard(tracer: Tracer, rng: np.random.Generator, fwhm_mm: float, grid: deform.Grid,
             fr: np.ndarray, defects: tuple[str, ...] = ()) -> dict[str, Any]:
    """PET-BIDS sidecar of a (possibly multi-frame) decay-corrected scan, then the defects."""
    meta = pet.sidecar(tracer, rng, fwhm_mm, grid)
    n = len(fr)
    mid = fr[:, 0] + fr[:, 1] / 2.0
    meta.update(
        ScanStart=_num(fr[0, 0]), FrameTimesStart=[_num(s) for s in fr[:, 0]],
        FrameDuration=[_num(d) for d in fr[:, 1]], ScaleFactor=[1.0] * n,
        ScatterFraction=[round(float(v), 1) for v in rng.uniform(30, 40, n)],
        DecayCorrectionFactor=[round(float(np.exp(np.log(2) * m / tracer.half_life_s)), 4)
                               for m in mid],
        AcquisitionMode="list mode")
    return apply_defects(meta, fr, defects)


def apply_defects(meta: dict[str, Any], fr: np.ndarray, defects: tuple[str, ...]) -> dict[str, Any]:
    bad = [d for d in defects if d not in DEFECTS]
    if bad:
        raise ValueError(f"unknown sidecar defects {bad}; expected some of {DEFECTS}")
    if "na-numbers" in defects:
        meta.update(InjectedRadioactivity="n/a", InjectedVolume="n/a", TracerMolecularWeight="n/a")
    if "units-bq-ml" in defects:
        meta["Units"] = "Bq/ml"
    if "no-timezero" in defects:
        meta.pop("TimeZero", None)
        meta.pop("InjectionStart", None)
    if "cumulative-duration" in defects:
        meta["FrameDuration"] = [_num(e) for e in fr.sum(1)]
    if "no-timing" in defects:
        for key in ("FrameTimesStart", "FrameDuration", "ScanStart"):
            meta.pop(key, None)
        meta.pop("Time", None)
    return meta


def draft(tracer: Tracer, rng: np.random.Generator, fwhm_mm: float, fr: np.ndarray,
          defects: tuple[str, ...] = ()) -> dict[str, Any]:
    """The pre-standard PET-BIDS draft form of part of OASIS-3: nested objects, no TracerName."""
    meta: dict[str, Any] = {
        "Modality": "PT", "Manufacturer": "Siemens", "ManufacturersModelName": "Biograph 40",
        "BodyPart": "Brain", "Units": "Bq/mL",
        "Tracer": {"Name": tracer.acq, "Isotope": tracer.radionuclide,
                   "InjectedRadioactivity": round(float(rng.uniform(*tracer.dose_mbq)), 1),
                   "InjectedRadioactivityUnits": "MBq"},
        "Recon": {"MethodName": "OSEM", "FilterType": "Gaussian",
                  "FilterSize": round(fwhm_mm, 2)},
        "Time": {"FrameTimes": {"Labels": ["frameStart", "frameEnd"], "Units": ["s", "s"],
                                "Values": [[_num(s), _num(s + d)] for s, d in fr]}},
    }
    return apply_defects(meta, fr, tuple(d for d in defects if d in ("no-timing", "units-bq-ml")))


def two_frames(tracer: Tracer, rng: np.random.Generator, fwhm_mm: float, grid: deform.Grid,
               fr: np.ndarray) -> dict[str, Any]:
    """DLBS (ds004856): a single static volume whose JSON lists a second frame of duration 0."""
    meta = standard(tracer, rng, fwhm_mm, grid, fr)
    end = fr[0].sum()
    meta.update(FrameTimesStart=[_num(fr[0, 0]), _num(end)], FrameDuration=[_num(fr[0, 1]), 0],
                ScaleFactor=[1.0, 1.0], ScatterFraction=meta["ScatterFraction"] * 2,
                DecayCorrectionFactor=meta["DecayCorrectionFactor"] * 2)
    return meta


def sidecar(style: str, tracer: Tracer, rng: np.random.Generator, fwhm_mm: float,
            grid: deform.Grid, fr: np.ndarray, defects: tuple[str, ...]) -> dict[str, Any] | None:
    if style == "standard":
        return standard(tracer, rng, fwhm_mm, grid, fr, defects)
    if style == "draft":
        return draft(tracer, rng, fwhm_mm, fr, defects)
    if style == "two-frames":
        return two_frames(tracer, rng, fwhm_mm, grid, fr)
    if style == "none":
        return None
    raise ValueError(f"unknown sidecar style {style!r}; expected one of {STYLES}")


def frame_table(fr: np.ndarray) -> str:
    """The _pet.tsv beside each OASIS-3 PET: one row per frame, start and end in seconds."""
    rows = ["frame_start\tframe_end"] + [f"{_num(s)}\t{_num(s + d)}" for s, d in fr]
    return "\n".join(rows) + "\n"
