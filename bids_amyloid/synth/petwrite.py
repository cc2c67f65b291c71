"""Write one PET file of a session in the layout's style: a static 3-D frame (Tracer.window_s:
default, Clinica), a 3-D mean over the SUVR window (DLBS), raw 4-D dynamic frames (OASIS-3, with a
static companion and the head motion in sourcedata/synth/), or a failed download (HTML).

The default layout's static PET keeps its original code path (pet.acquire on the uptake map,
pet.sidecar), so its files stay byte-identical for a seed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_amyloid.synth import bidsfiles, deform, dynamic, layouts, mri, pet, petmeta
from bids_amyloid.synth.anatomy import Source
from bids_amyloid.synth.layouts import PetSpec


@dataclass(frozen=True)
class PetJob:
    root: Path
    layout: str
    resolution: float
    sub: str
    ses: str


def _recentre(img: nib.Nifti1Image, pose: np.ndarray) -> tuple[nib.Nifti1Image, np.ndarray]:
    """ADNI's processed PET: the world origin moved to the image centre (pose follows)."""
    centre = img.affine @ np.r_[(np.asarray(img.shape[:3]) - 1) / 2.0, 1.0]
    shift = np.eye(4)
    shift[:3, 3] = -centre[:3]
    new = shift @ img.affine
    img.set_qform(new, code=1)
    img.set_sform(new, code=1)
    return img, shift @ pose


def _save3d(data: np.ndarray, grid: deform.Grid, path: Path, pose: np.ndarray,
            recentre: bool) -> tuple[nib.Nifti1Image, np.ndarray]:
    img = deform.to_image(data, grid)
    img.set_data_dtype(np.int16)  # as many scanners export: int16 with scl_slope (nibabel scales)
    if recentre:
        img, pose = _recentre(img, pose)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return img, pose


def _times(fr: np.ndarray) -> dict[str, Any]:
    return {"n_frames": len(fr), "frame_start": " ".join(f"{v:g}" for v in fr[:, 0]),
            "frame_duration": " ".join(f"{v:g}" for v in fr[:, 1])}


def write_pet(pj: PetJob, src: Source, tracer: pet.Tracer, spec: PetSpec, tpl: np.ndarray,
              classes: list[np.ndarray], disp: np.ndarray, pose: np.ndarray,
              rng: np.random.Generator, images: list[dict[str, Any]], pet_cl: float | None,
              suvr: float) -> None:
    sub, ses = pj.sub, pj.ses
    center = pose[:3, :3] @ deform.HEAD_CENTER + pose[:3, 3]
    vox = pet.VOXEL_MM * max(1.0, 0.75 * pj.resolution)  # 2 mm at resolution 1, 3 mm at 2
    grid = deform.make_grid(rng, (vox, vox, vox), pet.FOV_MM, center,
                            str(rng.choice(mri.CONTRASTS["FLAIR"].orientations)))
    fwhm = float(rng.uniform(6.0, 8.0))
    ref = float(rng.uniform(2500.0, 9000.0))
    stem = layouts.pet_name(pj.layout, sub, ses, tracer.label, tracer.acq, tracer.family, spec)
    rel = Path(sub) / ses / "pet" / f"{stem}.nii.gz"
    base = stem[:-len("_pet")]
    fr = dynamic.frames(spec.protocol, tracer)
    window = tracer.suvr_window_s
    extra: dict[str, Any] = {
        "tracer": tracer.key, "pet_centiloid": None if pet_cl is None else round(pet_cl, 2),
        "suvr_target": round(suvr, 4), "reference_bq_ml": round(ref, 1), "fwhm_mm": round(fwhm, 2),
        "tracer_family": tracer.family, "amyloid": tracer.family == "amyloid",
        "dynamic": len(fr) > 1, **_times(fr), "suvr_window": f"{window[0]} {window[1]}",
        "covers_suvr_window": dynamic.covers(fr, window), "sidecar_style": spec.sidecar,
        "sidecar_defects": " ".join(spec.defects) or "n/a", "static_path": None, "motion_path": None}
    row = functools.partial(bidsfiles.image_row, sub, ses, spec.run)
    out = pj.root / rel
    if spec.broken:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(petmeta.HTML_ERROR)
        images.append({**row("pet-invalid", rel, None, pose), **extra})
    elif len(fr) == 1:  # one 3-D frame
        coords = deform.grid_coords(grid, pose, src.affine, disp)
        if spec.protocol == "static":  # Tracer.window_s: the default layout's original path
            data = pet.acquire(tpl, coords, grid, rng, fwhm, ref)
        else:  # the mean over the SUVR window, noise of its length
            mean, dur = dynamic.window_map(dynamic.perfusion_map(classes), tpl, fr)
            data = pet.acquire(mean, coords, grid, rng, fwhm, ref, dynamic.noise_sd(dur))
        img, pose_f = _save3d(data, grid, out, pose, pj.layout == "clinica-adni")
        images.append({**row("pet", rel, img, pose_f), **extra})
    else:
        images += _write_dynamic_pet(pj, src, classes, tpl, fr, window, grid, pose, disp, rng, fwhm, ref,
                                     out, base, row, extra)
    meta = (pet.sidecar(tracer, rng, fwhm, grid) if spec.protocol == "static"
            and spec.sidecar == "standard" and not spec.defects
            else petmeta.sidecar(spec.sidecar, tracer, rng, fwhm, grid, fr, spec.defects))
    if meta is not None:
        bidsfiles.write_json(out.with_name(f"{stem}.json"), meta)
    if pj.layout == "oasis3":
        out.with_name(f"{stem}.tsv").write_text(petmeta.frame_table(fr))


def _write_dynamic_pet(pj: PetJob, src: Source, classes: list[np.ndarray], tpl: np.ndarray, fr: np.ndarray,
                       window: tuple[float, float], grid, pose: np.ndarray, disp: np.ndarray,
                       rng: np.random.Generator, fwhm: float, ref: float, out: Path, base: str, row,
                       extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The 4-D PET, its motion truth and (when it covers the window) the static companion; their rows."""
    sub = pj.sub
    perf = dynamic.perfusion_map(classes)
    # The recorded pose is the head's at the SUVR window's middle (the static companion's).
    t_ref = sum(window) / 2.0 if extra["covers_suvr_window"] else fr[0, 0]
    img, motion = dynamic.write_dynamic(out, src, perf, tpl, fr, grid, pose, disp, rng, fwhm, ref, t_ref)
    mrel = Path("sourcedata", "synth", sub, f"{base}_motion.tsv")
    _write_motion(pj.root / mrel, fr, motion)
    extra["motion_path"] = mrel.as_posix()
    static_row = None
    if extra["covers_suvr_window"]:  # the same late window acquired as one static frame
        inside = fr[dynamic.window_weights(fr, window) > 0]
        mean, dur = dynamic.window_map(perf, tpl, inside)
        coords = deform.grid_coords(grid, pose, src.affine, disp)
        data = pet.acquire(mean, coords, grid, rng, fwhm, ref, dynamic.noise_sd(dur))
        srel = Path("sourcedata", "synth", sub, f"{base}_desc-static_pet.nii.gz")
        simg, _ = _save3d(data, grid, pj.root / srel, pose, False)
        extra["static_path"] = srel.as_posix()
        static_row = {**row("pet-static", srel, simg, pose), **extra, **_times(inside), "dynamic": False}
    rel = out.relative_to(pj.root)
    return [{**row("pet", rel, img, pose), **extra}] + ([static_row] if static_row else [])


def _write_motion(path: Path, fr: np.ndarray, motion: np.ndarray) -> None:
    lines = ["frame\tstart_s\tduration_s\ttrans_x_mm\ttrans_y_mm\ttrans_z_mm\trot_x_deg\trot_y_deg"
             "\trot_z_deg"]
    for k, ((s, d), p) in enumerate(zip(fr, motion, strict=True)):
        lines.append("\t".join([str(k), f"{s:g}", f"{d:g}", *(f"{v:.4f}" for v in p)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
