"""Acquisition sites: balanced assignment of subjects, one scanner profile per site.

A site's profile is drawn once from the cohort seed (never per subject) with its own SeedSequence
spawn keys, so the subjects' own random streams, and a one-site cohort's files, stay as they were.
With site_effect e > 0 a site changes every MRI contrast of its subjects: per-tissue intensity
gains 1 + 0.1 e x (GM, WM, CSF; x ~ U(-1, 1) per contrast), noise sigma / exp(0.25 e x), the
bias-field strength range (0.15-0.35) shifted by 0.1 e x, and the scanner named in the sidecars.
With e = 0 the scanners are identical. site_prevalence_shift s (independent of e) moves the amyloid
propensity u of a site's subjects by s * (evenly spread in [-1, 1] over the sites): prevalence
differs between sites, a confound that makes subject-wise CV optimistic against leave-site-out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bids_amyloid.errors import UsageError
from bids_amyloid.synth import mri

TISSUES = ("GM", "WM", "CSF")  # the classes a site's contrast gains scale (fat, soft, bone: 1)
# Alternating vendors: consecutive sites get different manufacturers (up to three sites).
SCANNERS: tuple[dict[str, Any], ...] = (
    {"Manufacturer": "Siemens", "ManufacturersModelName": "Prisma_fit", "MagneticFieldStrength": 3,
     "ReceiveCoilName": "HeadNeck_64", "MatrixCoilMode": "GRAPPA"},
    {"Manufacturer": "GE", "ManufacturersModelName": "DISCOVERY MR750", "MagneticFieldStrength": 3,
     "ReceiveCoilName": "8HRBRAIN", "ReceiveCoilActiveElements": None, "MatrixCoilMode": "ASSET"},
    {"Manufacturer": "Philips", "ManufacturersModelName": "Achieva", "MagneticFieldStrength": 1.5,
     "ReceiveCoilName": "SENSE-Head-8", "ReceiveCoilActiveElements": None, "MatrixCoilMode": "SENSE"},
    {"Manufacturer": "Siemens", "ManufacturersModelName": "Avanto", "MagneticFieldStrength": 1.5,
     "ReceiveCoilName": "HeadMatrix", "MatrixCoilMode": "GRAPPA"},
    {"Manufacturer": "GE", "ManufacturersModelName": "SIGNA Premier", "MagneticFieldStrength": 3,
     "ReceiveCoilName": "48HAP", "ReceiveCoilActiveElements": None, "MatrixCoilMode": "ARC"},
    {"Manufacturer": "Philips", "ManufacturersModelName": "Ingenia", "MagneticFieldStrength": 3,
     "ReceiveCoilName": "dStream HeadNeckSpine", "ReceiveCoilActiveElements": None,
     "MatrixCoilMode": "SENSE"},
)
_RECORDED = ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength", "ReceiveCoilName",
             "DeviceSerialNumber", "StationName", "InstitutionName")
# SeedSequence spawn keys beside the cohort's (0,) phase and (1, i) subjects.
_ASSIGN_KEY, _SCANNER_KEY, _PROFILE_KEY = (2,), (3,), 4
MAX_SITE_EFFECT, MAX_PREVALENCE_SHIFT = 5.0, 3.0  # gains stay within 0.5-1.5; u moves <= 3 SD


@dataclass(frozen=True)
class Site:
    """One site's scanner profile (the identity profile when site_effect is 0)."""

    name: str  # "S1", "S2", ... (participants.tsv / truth.tsv column `site`)
    tissue_gain: dict[str, tuple[float, ...]] = field(default_factory=dict)  # contrast: GM, WM, CSF
    snr_factor: float = 1.0  # noise sigma is divided by it
    bias_shift: float = 0.0  # added to the bias-field strength range
    latent_shift: float = 0.0  # added to the amyloid propensity u of its subjects
    scanner: dict[str, Any] = field(default_factory=dict)  # MRI sidecar fields (None: field dropped)

    def gains(self, contrast: str) -> tuple[float, ...]:
        return self.tissue_gain.get(contrast, (1.0, 1.0, 1.0))

    def to_json(self) -> dict[str, Any]:
        """truth.json record: every gain (1 where the reference scanner's) and the scanner."""
        full = {**mri.SCANNER, **self.scanner}
        return {"tissue_gain": {c: dict(zip(TISSUES, self.gains(c))) for c in mri.CONTRASTS},
                "snr_factor": self.snr_factor, "bias_shift": self.bias_shift,
                "latent_shift": self.latent_shift,
                "scanner": {k: full[k] for k in _RECORDED}}

    def description(self) -> str:
        """participants.json level text: the site's scanner."""
        s = {**mri.SCANNER, **self.scanner}
        return f"{s['Manufacturer']} {s['ManufacturersModelName']} {s['MagneticFieldStrength']} T"


MODEL = ("per site, drawn once from the seed: tissue_gain[contrast] = 1 + 0.1 * site_effect * "
         "U(-1, 1) for GM, WM, CSF; snr_factor = exp(0.25 * site_effect * U(-1, 1)) divides the "
         "noise; bias_shift = 0.1 * site_effect * U(-1, 1) moves the bias strength range 0.15-0.35; "
         "latent_shift = site_prevalence_shift * linspace(-1, 1, sites) is added to u. The oracle "
         "AUCs ignore the sites.")
REFERENCE = Site("S1")  # the single site of a default cohort


def check_site_args(n_sites: int, site_effect: float, prevalence_shift: float, n_subjects: int) -> None:
    if not 1 <= n_sites <= max(n_subjects, 1):
        raise UsageError(f"--sites must be between 1 and --n-subjects ({n_subjects}), got {n_sites}")
    if not 0.0 <= site_effect <= MAX_SITE_EFFECT:
        raise UsageError(f"--site-effect must be within 0-{MAX_SITE_EFFECT:g}, got {site_effect}")
    if not 0.0 <= prevalence_shift <= MAX_PREVALENCE_SHIFT:
        raise UsageError(f"--site-prevalence-shift must be within 0-{MAX_PREVALENCE_SHIFT:g}, "
                         f"got {prevalence_shift}")
    if prevalence_shift > 0 and n_sites < 2:
        raise UsageError("--site-prevalence-shift needs --sites 2 or more")


def site_names(n_sites: int) -> list[str]:
    width = len(str(n_sites))  # S01..S12 sort as text too
    return [f"S{k + 1:0{width}d}" for k in range(n_sites)]


def assign_sites(seed: int, n_subjects: int, n_sites: int) -> list[int]:
    """Site index of each subject: a seeded permutation of index % n_sites (balanced to one)."""
    if n_sites == 1:
        return [0] * n_subjects
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_ASSIGN_KEY))
    return [int(k) for k in rng.permutation(np.arange(n_subjects) % n_sites)]


def site_profiles(seed: int, n_sites: int, site_effect: float, prevalence_shift: float) -> list[Site]:
    """Every site's profile. The draws do not depend on site_effect (it only scales them), on the
    other sites or on the contrasts written (gains are drawn for every contrast mri knows)."""
    names = site_names(n_sites)
    shifts = np.linspace(-1.0, 1.0, n_sites) * prevalence_shift if n_sites > 1 else np.zeros(1)
    if site_effect == 0:
        return [Site(n, latent_shift=_r(s)) for n, s in zip(names, shifts)]
    offset = int(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_SCANNER_KEY))
                 .integers(len(SCANNERS)))
    return [_draw_site(seed, k, name, site_effect, _r(shift), SCANNERS[(offset + k) % len(SCANNERS)])
            for k, (name, shift) in enumerate(zip(names, shifts))]


def _draw_site(seed: int, k: int, name: str, e: float, latent_shift: float,
               scanner: dict[str, Any]) -> Site:
    """Site k's profile from its own stream, x ~ U(-1, 1) scaled by the site effect e."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_PROFILE_KEY, k)))
    x_gain = rng.uniform(-1.0, 1.0, (len(mri.CONTRASTS), len(TISSUES)))
    x_snr, x_bias = rng.uniform(-1.0, 1.0, 2)
    gains = {c: tuple(_r(1.0 + 0.1 * e * x) for x in row) for c, row in zip(mri.CONTRASTS, x_gain)}
    own = {**scanner, "DeviceSerialNumber": f"SYNTH{k + 1:04d}", "StationName": f"SYNTHMR{name}",
           "InstitutionName": f"Synthetic Imaging Centre {name}"}
    return Site(name, gains, _r(np.exp(0.25 * e * x_snr)), _r(0.1 * e * x_bias), latent_shift, own)


def _r(x: float) -> float:
    return round(float(x), 4) + 0.0  # + 0.0: no "-0.0" in truth.json
