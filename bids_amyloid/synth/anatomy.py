"""The anatomical source: a real brain (nilearn MNI152 2009a) inside a real or synthetic head.

All maps live on the nilearn template grid (1 or 2 mm, RAS, MNI world coordinates). Tissue is a
partition into six soft classes (GM, WM, CSF, FAT, SOFT tissue, BONE; air is the remainder), so
that any MRI contrast or PET uptake is a linear combination of the class maps and commutes with
linear interpolation (contrasts are mixed in template space, then sampled once per image).
"""
from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from bids_amyloid.synth import deform, regions
from bids_amyloid.synth.deform import COARSE_MM

CLASSES = ("GM", "WM", "CSF", "FAT", "SOFT", "BONE")
MRICRON_DIR = Path(os.environ.get("BIDS_AMYLOID_MRICRON_DIR", "/usr/share/mricron/templates"))
ANATOMIES = ("auto", "ch2", "nilearn")


@dataclass
class Source:
    """Template-space anatomy shared (read-only) by every subject of a cohort."""

    affine: np.ndarray  # template voxel -> MNI world (mm)
    voxel_mm: float
    classes: np.ndarray  # (6, X, Y, Z) float32, order of CLASSES
    brain: np.ndarray  # (X, Y, Z) float32 in [0, 1]: the true brain (GM+WM+CSF inside the mask)
    regions: dict[str, np.ndarray]  # see regions.py
    vent_field: np.ndarray  # (3, cx, cy, cz) unit field pointing into the lateral ventricles
    head: str  # "ch2 (Colin27) skull/scalp" or "synthetic shells"
    region_source: str  # "AAL (mricron)" or "geometric MNI boxes"
    files: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.brain.shape)  # type: ignore[return-value]

    @property
    def coarse_factor(self) -> float:
        return COARSE_MM / self.voxel_mm


def mricron_available() -> bool:
    return (MRICRON_DIR / "ch2.nii.gz").is_file() and (MRICRON_DIR / "ch2bet.nii.gz").is_file()


def resolve_anatomy(anatomy: str) -> str:
    """'auto' -> 'ch2' when the mricron-data templates are installed, else 'nilearn'."""
    if anatomy not in ANATOMIES:
        raise ValueError(f"anatomy must be one of {ANATOMIES}, got {anatomy!r}")
    if anatomy == "auto":
        return "ch2" if mricron_available() else "nilearn"
    if anatomy == "ch2" and not mricron_available():
        raise FileNotFoundError(
            f"ch2.nii.gz not found in {MRICRON_DIR}: install the Debian package mricron-data "
            "or use anatomy='nilearn'")
    return anatomy


@functools.lru_cache(maxsize=2)
def load_source(template_mm: int, anatomy: str) -> Source:
    """Build (once per process) the shared anatomy; `anatomy` is 'ch2' or 'nilearn'."""
    t1, gm, wm, aff = _nilearn_maps(template_mm)
    mask = (t1 > 0.2).astype(np.float32)  # nilearn's load_mni152_brain_mask rule
    brain = np.maximum(mask, np.clip(gm + wm, 0, 1))
    csf = np.clip(brain - gm - wm, 0, 1)
    dist_mm = ndi.distance_transform_edt(brain < 0.5) * template_mm  # mm outside the brain
    files = {"brain": f"nilearn MNI152 2009a sym {template_mm} mm (GM/WM/brain mask)"}
    if anatomy == "ch2":
        to_ch2 = _moment_match(aff, mask > 0.5)
        ch2 = _resample(MRICRON_DIR / "ch2.nii.gz", to_ch2, aff, brain.shape, order=1)
        ch2_brain = _resample(MRICRON_DIR / "ch2bet.nii.gz", to_ch2, aff, brain.shape, order=1)
        fat, soft, bone, extra_csf = _ch2_head(ch2, ch2_brain, dist_mm)
        labels = _resample(MRICRON_DIR / "aal.nii.gz", to_ch2, aff, brain.shape, order=0)
        regs = regions.from_aal(labels.astype(np.int16), gm, aff, template_mm)
        head, reg_src = "ch2 (Colin27) skull/scalp around the nilearn brain", "AAL (mricron-data)"
        files.update(head=str(MRICRON_DIR / "ch2.nii.gz"), regions=str(MRICRON_DIR / "aal.nii.gz"))
    else:
        fat, soft, bone, extra_csf = _synthetic_head(dist_mm, template_mm)
        regs = regions.geometric(gm, aff)
        head, reg_src = "synthetic skull/scalp shells around the nilearn brain", "geometric MNI boxes"
    outside = 1.0 - brain
    csf = csf + extra_csf * outside
    classes = np.stack([gm, wm, csf, fat * outside, soft * outside, bone * outside]).astype(np.float32)
    vent = regions.ventricles(csf * (brain > 0.5), aff)
    return Source(aff, float(template_mm), classes, brain.astype(np.float32), regs,
                  _inward_field(vent, template_mm), head, reg_src, files)


def _nilearn_maps(template_mm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """T1, GM, WM of nilearn's MNI152 2009a (each scaled to max 1) on its 1 or 2 mm grid.

    Reads the 1 mm files that nilearn.datasets.load_mni152_*_template read, and makes the 2 mm
    grid by Gaussian anti-aliasing + decimation: the same grid as nilearn's 2 mm version, without
    importing nilearn.datasets (1 s) or its cubic resampling (2 s).
    """
    spec = importlib.util.find_spec("nilearn")
    data_dir = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"  # type: ignore
    maps = []
    for tissue in ("t1", "gm", "wm"):
        path = data_dir / f"mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz"
        if not path.is_file():  # a future nilearn may move its files: use its public API
            return _nilearn_api(template_mm)
        img: nib.Nifti1Image = nib.load(path)  # type: ignore[assignment]
        a = np.asarray(img.dataobj, dtype=np.float32)
        a /= a.max()
        if template_mm == 2:
            a = ndi.gaussian_filter(a, 0.85)[::2, ::2, ::2]
        maps.append(np.ascontiguousarray(a))
    aff = img.affine.astype(np.float64).copy()
    aff[:3, :3] *= template_mm
    return maps[0], maps[1], maps[2], aff


def _nilearn_api(template_mm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=template_mm)
    gm = datasets.load_mni152_gm_template(resolution=template_mm)
    wm = datasets.load_mni152_wm_template(resolution=template_mm)
    f32 = lambda i: np.asarray(i.get_fdata(dtype=np.float32))  # noqa: E731
    return f32(t1), f32(gm), f32(wm), t1.affine.astype(np.float64)


def _moments(mask: np.ndarray, aff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-space mean and standard deviation per axis of a mask (diagonal affines only)."""
    mean, std = np.empty(3), np.empty(3)
    for ax in range(3):
        counts = mask.sum(axis=tuple(a for a in range(3) if a != ax), dtype=np.float64)
        pos = aff[ax, ax] * np.arange(mask.shape[ax]) + aff[ax, 3]
        mean[ax] = (counts * pos).sum() / counts.sum()
        std[ax] = np.sqrt((counts * (pos - mean[ax]) ** 2).sum() / counts.sum())
    return mean, std


def _moment_match(aff: np.ndarray, mni_brain: np.ndarray) -> np.ndarray:
    """MNI world -> ch2 world: match centroid and per-axis spread of the two brain masks.

    ch2 (Colin27) is only roughly MNI-aligned; a 9-parameter moment fit is enough to seat the
    nilearn brain inside the ch2 skull without running a registration at every start.
    """
    bet: nib.Nifti1Image = nib.load(MRICRON_DIR / "ch2bet.nii.gz")  # type: ignore[assignment]
    ch2_mask = np.asarray(bet.dataobj) > 0
    lab, n = ndi.label(ch2_mask)
    if n > 1:
        ch2_mask = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    ch2_mask = ndi.binary_fill_holes(ch2_mask)
    (ma, sa), (mb, sb) = _moments(mni_brain, aff), _moments(ch2_mask, bet.affine)
    scale = sb / sa
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = mb - scale * ma
    return m


def _resample(path: Path, world_map: np.ndarray, aff: np.ndarray, shape: tuple[int, ...],
              order: int) -> np.ndarray:
    img: nib.Nifti1Image = nib.load(path)  # type: ignore[assignment]
    data = np.asarray(img.dataobj, dtype=np.float32)
    mat = np.linalg.inv(img.affine) @ world_map @ aff
    return ndi.affine_transform(data, mat[:3, :3], mat[:3, 3], output_shape=shape, order=order,
                                prefilter=False, mode="constant", cval=0.0)


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _ch2_head(ch2: np.ndarray, ch2_brain: np.ndarray, dist_mm: np.ndarray):
    """Soft FAT/SOFT/BONE/CSF classes of the ch2 head from its T1 intensity (outside the brain)."""
    wm_level = float(np.percentile(ch2[ch2_brain > 0.5], 95))
    t = ch2 / wm_level
    head = ndi.binary_fill_holes(ndi.binary_closing(t > 0.12, iterations=3))
    head = ndi.gaussian_filter(head.astype(np.float32), 0.7)
    dark = 1.0 - _ramp(t, 0.2, 0.5)  # bone, sinus air and CSF are dark on T1
    fat = _ramp(t, 0.85, 1.15)  # scalp fat and diploic marrow are bright on T1
    soft = np.clip(1.0 - dark - fat, 0, 1)
    # Next to the nilearn brain, or inside ch2's own (slightly different) brain: CSF, not skull.
    near = np.maximum(_ramp(-dist_mm, -4.0, -1.5), _ramp(ch2_brain, 20.0, 60.0)) * head
    rest = head * (1 - near)
    return fat * rest, soft * rest, dark * rest, near


def _synthetic_head(dist_mm: np.ndarray, vox: float):
    """Concentric shells (CSF, skull with diploe, muscle, fat, skin) around the brain."""
    # A fixed smooth field makes the skull thickness uneven (same for every run: no RNG state).
    wobble = ndi.gaussian_filter(np.random.default_rng(12345).standard_normal(dist_mm.shape), 8 / vox)
    d = (dist_mm * (1 + 0.15 * wobble / (np.abs(wobble).max() + 1e-6))).astype(np.float32)
    band = lambda lo, hi: _ramp(d, lo - 0.5, lo + 0.5) * (1 - _ramp(d, hi - 0.5, hi + 0.5))  # noqa: E731
    csf = band(0.0, 2.5)
    bone = band(2.5, 4.5) + band(6.5, 8.5)
    fat = band(4.5, 6.5) + band(11.5, 15.5)
    soft = band(8.5, 11.5) + band(15.5, 17.0)
    return fat, soft, bone, csf


def _inward_field(vent: np.ndarray, vox: float) -> np.ndarray:
    """Unit-max vector field on the coarse grid pointing into the ventricles (for expansion).

    Sampling the template at x + v * field(x) pulls ventricle signal outwards: the ventricles of
    the subject grow by about v mm. With 7 mm smoothing and v <= 3.5 mm (plus the random warp)
    the Jacobian determinant stays > 0.15: no folding.
    """
    phi = ndi.gaussian_filter(vent.astype(np.float32), 7.0 / vox)
    grad = np.stack(np.gradient(phi))
    grad /= float(np.sqrt((grad**2).sum(0)).max()) + 1e-12
    return np.stack([deform.to_coarse(g, COARSE_MM / vox) for g in grad])
