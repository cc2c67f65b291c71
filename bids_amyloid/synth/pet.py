"""PET: tracer models, uptake map (SUVR) in template space, acquisition, BIDS sidecar.

Uptake relative to cerebellar grey matter (SUVR 1 by construction): cortical GM follows the
regional binding pattern scaled so that the GM-weighted mean over the composite cortical ROI is
exactly the target SUVR, i.e. the tracer's inverse Centiloid transform of the session's PET
Centiloid. White matter carries tracer-specific non-specific binding (higher for florbetapir).
The image is then smoothed to PET resolution, given correlated noise, and multiplied by a random
reference activity (Bq/mL) so that users must normalise to SUVR themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from bids_amyloid.synth import deform
from bids_amyloid.synth.anatomy import Source


@dataclass(frozen=True)
class Tracer:
    key: str  # user-facing name (--tracers)
    molecular_weight: float  # g/mol
    label: str  # BIDS trc- entity, as Clinica's OASIS-3 conversion
    name: str  # TracerName
    radionuclide: str
    cl_slope: float  # CL = slope * SUVR + intercept
    cl_intercept: float
    uptake: tuple[float, float, float, float, float]  # WM, CSF, FAT, SOFT, BONE (SUVR units)
    window_s: tuple[int, int]  # scan start after injection, duration
    dose_mbq: tuple[float, float]
    half_life_s: float
    acq: str = ""  # OASIS-3 acq- entity (its download script names the tracer only there)
    suvr_window_s: tuple[int, int] = (0, 0)  # static SUVR window (start, end) after injection
    family: str = "amyloid"  # amyloid, tau or fdg


TRACERS: dict[str, Tracer] = {
    # Klunk et al. 2015 (Centiloid level-1 calibration of PiB): CL = 93.7 SUVR - 94.6.
    "PiB": Tracer("PiB", 256.3, "11CPIB", "PIB", "C11", 93.7, -94.6, (1.55, 0.25, 0.2, 0.45, 0.3),
                  (2400, 1200), (450.0, 650.0), 1221.8, "PIB", (3000, 4200)),
    # Navitsky et al. 2018 (florbetapir Centiloid): CL = 175.4 SUVR - 182.3.
    "AV45": Tracer("AV45", 359.4, "18FAV45", "Florbetapir", "F18", 175.4, -182.3,
                   (1.85, 0.3, 0.25, 0.6, 0.55), (3000, 1200), (330.0, 400.0), 6586.2, "AV45",
                   (3000, 3600)),
    # Rowe et al. 2017 (florbetaben Centiloid): CL = 153.4 SUVR - 154.9; ADNI scans 90-110 min.
    "FBB": Tracer("FBB", 359.4, "18FFBB", "Florbetaben", "F18", 153.4, -154.9,
                  (1.7, 0.3, 0.25, 0.6, 0.5), (5400, 1200), (270.0, 330.0), 6586.2, "FBB",
                  (5400, 6600)),
}
# Non-amyloid PET found in the same trees (never a --tracers choice, never labelled). The
# Centiloid fields are unused; target_suvr() gives their composite GM uptake.
OTHER_TRACERS: dict[str, Tracer] = {
    "AV1451": Tracer("AV1451", 263.3, "18FAV1451", "Flortaucipir", "F18", 1.0, 0.0,
                     (1.1, 0.3, 0.3, 0.7, 0.8), (4800, 1200), (350.0, 400.0), 6586.2, "AV1451",
                     (4800, 6000), "tau"),
    "FDG": Tracer("FDG", 181.2, "18FFDG", "Fluorodeoxyglucose", "F18", 1.0, 0.0,
                  (0.45, 0.1, 0.15, 0.35, 0.2), (1800, 1800), (170.0, 200.0), 6586.2, "FDG",
                  (1800, 3600), "fdg"),
}
ALL_TRACERS = {**TRACERS, **OTHER_TRACERS}
VOXEL_MM = 2.0
FOV_MM = (224.0, 240.0, 200.0)


def suvr_from_centiloid(cl: float, tracer: Tracer) -> float:
    return (cl - tracer.cl_intercept) / tracer.cl_slope


def target_suvr(tracer: Tracer, load: float) -> float:
    """Composite cortical SUVR of a non-amyloid tracer: plausible, loosely tied to the load
    (tau rises late in the amyloid cascade, FDG falls)."""
    return 1.05 + 0.6 * load**2 if tracer.family == "tau" else 1.0 - 0.12 * load


def uptake_map(src: Source, classes: list[np.ndarray], suvr: float, tracer: Tracer,
               rng: np.random.Generator) -> np.ndarray:
    """SUVR map on the template grid (before the subject warp) for one PET session."""
    reg = src.regions
    # Subject-specific heterogeneity of the pattern (+-15 %, smooth), renormalised below.
    cs = deform.coarse_shape(src.shape, src.coarse_factor)
    het = ndi.gaussian_filter(rng.standard_normal(cs).astype(np.float32), 25.0 / deform.COARSE_MM)
    het = 1.0 + 0.15 * het / (np.abs(het).max() + 1e-6)
    spec = reg["pattern"] * deform.to_fine(het.astype(np.float32), src.coarse_factor, src.shape)
    gm = classes[0]
    comp = gm * reg["composite"]
    spec /= float((comp * spec).sum() / comp.sum())  # composite GM mean of spec is exactly 1
    jitter = 1.0 + rng.normal(0.0, 0.05, 5)
    out = gm * (1.0 + np.float32(suvr - 1.0) * spec)
    for k, value in enumerate(np.asarray(tracer.uptake) * jitter):
        out += np.float32(value) * classes[k + 1]
    return out.astype(np.float32)


def acquire(tpl_suvr: np.ndarray, coords: np.ndarray, grid: deform.Grid,
            rng: np.random.Generator, fwhm_mm: float, ref_bq_ml: float,
            noise: float = 0.35) -> np.ndarray:
    """Sample, add noise, blur to scanner resolution and scale to Bq/mL (float32).

    noise: relative SD (times sqrt of the uptake) of a 20-min frame; shorter frames pass more.
    """
    img = deform.sample(tpl_suvr, coords)
    img += (np.float32(noise) * np.sqrt(np.clip(img, 0, None))
            * rng.standard_normal(img.shape, dtype=np.float32))
    sigma = fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / np.asarray(grid.zooms)
    img = ndi.gaussian_filter(img, sigma)
    return (np.clip(img, 0, None) * np.float32(ref_bq_ml)).astype(np.float32)


def sidecar(tracer: Tracer, rng: np.random.Generator, fwhm_mm: float,
            grid: deform.Grid) -> dict[str, Any]:
    """PET-BIDS sidecar (required + recommended fields) of a static, decay-corrected frame."""
    start, duration = tracer.window_s
    return {
        "Manufacturer": "Siemens", "ManufacturersModelName": "Biograph mCT",
        "BodyPart": "Brain", "Units": "Bq/mL",
        "TracerName": tracer.name, "TracerRadionuclide": tracer.radionuclide,
        "InjectedRadioactivity": round(float(rng.uniform(*tracer.dose_mbq)), 1),
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": "n/a", "InjectedMassUnits": "n/a",
        "SpecificRadioactivity": "n/a", "SpecificRadioactivityUnits": "n/a",
        "ModeOfAdministration": "bolus", "TimeZero": "10:00:00",
        "ScanStart": start, "InjectionStart": 0,
        "FrameTimesStart": [start], "FrameDuration": [duration],
        "AcquisitionMode": "list mode",
        "ImageDecayCorrected": True, "ImageDecayCorrectionTime": 0,
        "ReconMethodName": "OSEM", "ReconMethodParameterLabels": ["subsets", "iterations"],
        "ReconMethodParameterUnits": ["none", "none"], "ReconMethodParameterValues": [21, 3],
        "ReconMethodImplementationVersion": "bids_amyloid-synth (simulated OSEM)",
        "ReconFilterType": "Gaussian", "ReconFilterSize": round(fwhm_mm, 2),
        "AttenuationCorrection": "CT-based", "ScatterCorrectionMethod": "model-based",
        "AttenuationCorrectionMethodReference": "simulated low-dose CT attenuation map",
        "ScaleFactor": [1.0], "ScatterFraction": [round(float(rng.uniform(30, 40)), 1)],
        "DecayCorrectionFactor": [round(float(np.exp(np.log(2) * (start + duration / 2)
                                                     / tracer.half_life_s)), 4)],
        "DoseCalibrationFactor": 1.0, "InjectedVolume": 10.0, "InjectionEnd": 15,
        "TracerMolecularWeight": tracer.molecular_weight, "TracerMolecularWeightUnits": "g/mol",
        "InstitutionName": "Synthetic Imaging Centre", "InstitutionalDepartmentName": "Nuclear Medicine",
        "InstitutionAddress": "1 Simulation Road, Nowhere",
        "SliceThickness": round(float(max(grid.zooms)), 3),
    }
