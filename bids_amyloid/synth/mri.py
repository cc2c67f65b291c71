"""MRI contrasts: tissue intensities, acquisition grids, bias field, Rician noise, BIDS sidecars.

Intensities are relative (T1w WM = 1) per class (GM, WM, CSF, FAT, SOFT, BONE; air 0). Values
follow the usual 3 T appearance: T1w WM > GM > CSF with bright fat; T2w CSF > GM > WM; FLAIR
like T2w but CSF nulled; T2*-weighted T2-like with lower SNR and dark bone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bids_amyloid import __version__
from bids_amyloid.synth import deform


@dataclass(frozen=True)
class Contrast:
    suffix: str
    intensities: tuple[float, float, float, float, float, float]  # GM, WM, CSF, FAT, SOFT, BONE
    snr: float  # brightest tissue / noise sigma
    voxel_mm: tuple[float, float, float]  # L-R, A-P, S-I at --resolution 1
    fov_mm: tuple[float, float, float]
    orientations: tuple[str, ...]
    oblique_deg: float
    sidecar: dict[str, Any] = field(default_factory=dict)


SCANNER = {  # the reference scanner (a one-site cohort, site_effect 0)
    "Manufacturer": "Siemens", "ManufacturersModelName": "TrioTim",
    "MagneticFieldStrength": 3, "ReceiveCoilName": "Head_32",
    "ReceiveCoilActiveElements": "HEA;HEP", "CoilCombinationMethod": "SOS",
    "MatrixCoilMode": "GRAPPA", "NonlinearGradientCorrection": False,
    "DeviceSerialNumber": "SYNTH0001", "StationName": "SYNTHMR",
    "SoftwareVersions": f"bids_amyloid-synth {__version__} (simulated acquisition)",
    "InstitutionName": "Synthetic Imaging Centre", "InstitutionalDepartmentName": "Radiology",
    "InstitutionAddress": "1 Simulation Road, Nowhere", "DwellTime": 7.8e-06,
    "PulseSequenceDetails": "Simulated by bids_amyloid-synth from tissue probability maps"}
_ISO_ORIENT = ("RAS", "LPS", "LAS", "RPI", "PIL", "ASL", "LPI", "RSA")
_AXIAL_ORIENT = ("RAS", "LPS", "LAS", "RPI", "LPI", "RPS")

CONTRASTS: dict[str, Contrast] = {
    "T1w": Contrast("T1w", (0.62, 1.0, 0.18, 1.05, 0.55, 0.06), 28.0, (1.0, 1.0, 1.0),
                    (184.0, 232.0, 208.0), _ISO_ORIENT, 0.0,
                    {"RepetitionTime": 2.4, "EchoTime": 0.00316, "InversionTime": 1.0,
                     "FlipAngle": 8, "PulseSequenceType": "MPRAGE", "MRAcquisitionType": "3D",
                     "ScanningSequence": "GR\\IR", "SequenceVariant": "SK\\SP\\MP",
                     "SequenceName": "tfl3d1_16ns"}),
    "T2w": Contrast("T2w", (0.62, 0.45, 1.0, 0.72, 0.3, 0.04), 22.0, (1.0, 1.0, 1.0),
                    (184.0, 232.0, 208.0), _ISO_ORIENT, 0.0,
                    {"RepetitionTime": 3.2, "EchoTime": 0.455, "FlipAngle": 120,
                     "PulseSequenceType": "SPACE", "MRAcquisitionType": "3D",
                     "ScanningSequence": "SE", "SequenceVariant": "SK\\SP", "SequenceName": "spc_314ns"}),
    "FLAIR": Contrast("FLAIR", (0.74, 0.55, 0.07, 0.8, 0.4, 0.03), 16.0, (1.0, 1.0, 3.0),
                      (220.0, 240.0, 180.0), _AXIAL_ORIENT, 6.0,
                      {"RepetitionTime": 9.0, "EchoTime": 0.091, "InversionTime": 2.5,
                       "FlipAngle": 150, "MRAcquisitionType": "2D", "SliceThickness": 3.0,
                       "PulseSequenceType": "FLAIR", "ScanningSequence": "SE\\IR",
                       "SequenceVariant": "SK\\SP\\MP", "SequenceName": "tir2d1_21"}),
    "T2starw": Contrast("T2starw", (0.66, 0.5, 0.9, 0.6, 0.35, 0.02), 10.0, (1.0, 1.0, 4.0),
                        (220.0, 240.0, 180.0), _AXIAL_ORIENT, 6.0,
                        {"RepetitionTime": 0.65, "EchoTime": 0.02, "FlipAngle": 20,
                         "MRAcquisitionType": "2D", "SliceThickness": 4.0,
                         "PulseSequenceType": "GRE", "ScanningSequence": "GR",
                         "SequenceVariant": "SP", "SequenceName": "fl2d1"}),
}
COARSE_RUN_VOXEL = (1.2, 1.05, 1.05)  # run-1 of a repeated T1w: ADNI-like 1.2 mm slices


def make_grid(rng: np.random.Generator, c: Contrast, resolution: float, pose: np.ndarray,
              orientation: str, voxel_mm: tuple[float, float, float] | None = None) -> deform.Grid:
    vox = tuple(v * resolution for v in (voxel_mm or c.voxel_mm))
    # Centre the field of view a little above the pivot: the head reaches higher than the brain.
    center = pose[:3, :3] @ (deform.HEAD_CENTER + np.array([0.0, 0.0, 10.0])) + pose[:3, 3]
    return deform.make_grid(rng, vox, c.fov_mm, center, orientation, c.oblique_deg)  # type: ignore


def template_image(c: Contrast, classes: list[np.ndarray], rng: np.random.Generator,
                   site_gain: tuple[float, ...] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Mix the template-space class maps with this subject's tissue intensities (+-4 % each),
    GM, WM and CSF scaled by the site's contrast gains (sites.py; 1 = the reference scanner)."""
    gains = np.asarray(c.intensities) * (1.0 + rng.normal(0.0, 0.04, 6)) * np.array([*site_gain, 1, 1, 1])
    out = np.zeros(classes[0].shape, dtype=np.float32)
    for k, g in enumerate(gains):
        out += np.float32(g) * classes[k]
    return out


def acquire(c: Contrast, tpl: np.ndarray, coords: np.ndarray, sigma: np.ndarray,
            grid: deform.Grid, rng: np.random.Generator, snr_factor: float = 1.0,
            bias_shift: float = 0.0) -> np.ndarray:
    """Sample into the scanner grid, then bias field, Rician noise and scanner int16 scaling.
    snr_factor divides the noise, bias_shift moves the bias strength range (the site's scanner)."""
    img = deform.sample(tpl, coords, sigma)
    low, high = max(0.15 + bias_shift, 0.0), max(0.35 + bias_shift, 0.0)
    img *= deform.bias_field(rng, grid.shape, strength=rng.uniform(low, high))
    noise = np.float32(max(c.intensities) / (c.snr * snr_factor) * rng.uniform(0.85, 1.15))
    real = img + noise * rng.standard_normal(img.shape, dtype=np.float32)
    imag = noise * rng.standard_normal(img.shape, dtype=np.float32)
    mag = np.sqrt(real * real + imag * imag)  # magnitude of complex Gaussian data: Rician
    gain = rng.uniform(200.0, 800.0)  # arbitrary scanner units: pipelines must normalise
    return np.clip(np.rint(mag * gain), 0, 32767).astype(np.int16)


def sidecar(c: Contrast, grid: deform.Grid, run_voxel: bool = False,
            scanner: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sequence's sidecar; scanner: a site's fields over the reference scanner's (None: drop)."""
    site = {**SCANNER, **(scanner or {})}
    meta: dict[str, Any] = {**{k: v for k, v in site.items() if v is not None}, **c.sidecar}
    if "SliceThickness" in meta or run_voxel:
        meta["SliceThickness"] = round(max(grid.zooms), 3)
    if meta["MRAcquisitionType"] == "2D":  # axial slices: the third axis of every axial code
        n, tr = grid.shape[2], float(meta["RepetitionTime"])
        order = list(range(0, n, 2)) + list(range(1, n, 2))  # interleaved
        times = np.empty(n)
        times[order] = np.arange(n) * tr / n
        meta["SliceEncodingDirection"] = "k"
        meta["SliceTiming"] = [round(float(t), 4) for t in times]
    return meta
