"""One subject: session design, anatomy per session, MRI and PET images, truth rows.

Runs in a worker process; everything random comes from the subject's own generator, drawn in a
fixed order, so a subject's files do not depend on n_jobs or on the other subjects.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_amyloid.synth import bidsfiles, deform, mri, pet, truth
from bids_amyloid.synth.anatomy import Source


@dataclass(frozen=True)
class SessionSpec:
    session: str  # e.g. "M024"
    months: int
    mri: bool
    tracer: str | None  # key of pet.TRACERS, None = no PET
    t1_runs: int = 1
    mri_session: str | None = None  # MRI session a PET session is matched to


@dataclass(frozen=True)
class Job:
    index: int
    participant: str  # "sub-001"
    seed: np.random.SeedSequence
    phase: float
    root: Path
    template_mm: int
    anatomy: str
    contrasts: tuple[str, ...]
    tracers: tuple[str, ...]
    resolution: float
    effect_mri: float
    effect_pet: float


def design(index: int, tracers: tuple[str, ...]) -> list[SessionSpec]:
    """Session layouts cycle with the subject index so that 6 subjects already show every case."""
    t0, t1 = tracers[index % len(tracers)], tracers[(index + 1) % len(tracers)]
    kind = index % 6
    if kind == 0:  # second session is PET only: matched to the MRI of ses-M000
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M024", 24, False, t0, 1, "M000")]
    if kind == 1:  # two T1w runs in one session (run-1 coarser)
        return [SessionSpec("M000", 0, True, t0, t1_runs=2)]
    if kind == 2:  # three sessions, tracer switches at the last one
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M024", 24, True, t0),
                SessionSpec("M048", 48, True, t1)]
    if kind == 4:  # an MRI-only follow-up (no Centiloid: must be excluded from training)
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M036", 36, True, None)]
    if kind == 5:
        return [SessionSpec("M000", 0, True, t0), SessionSpec("M018", 18, True, t0)]
    return [SessionSpec("M000", 0, True, t0)]


def _atrophy(src: Source, st: truth.SessionState) -> list[np.ndarray]:
    """Class maps of this session: GM loss (global + medial parietal ROI) becomes CSF."""
    gm = src.classes[0]
    frac = np.float32(st.thinning_global) + np.float32(st.thinning_regional) * src.regions["mri_roi"]
    loss = gm * frac
    return [gm - loss, src.classes[1], src.classes[2] + loss, *src.classes[3:]]


def _save(img: nib.Nifti1Image, path: Path, meta: dict[str, Any] | None) -> nib.Nifti1Image:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    if meta is not None:
        bidsfiles.write_json(path.with_name(path.name.replace(".nii.gz", ".json")), meta)
    return img


def run(job: Job, src: Source) -> dict[str, list[dict[str, Any]]]:
    rng = np.random.default_rng(job.seed)
    sub = job.participant
    lat = truth.draw_subject(rng, job.index, job.phase)
    cshape = deform.coarse_shape(src.shape, src.coarse_factor)
    base_disp = deform.random_field(rng, cshape, amplitude_mm=float(rng.uniform(2.0, 4.0)))
    specs = design(job.index, job.tracers)
    needed = {s.mri_session for s in specs if s.mri_session}
    kept: dict[str, tuple[np.ndarray, list[np.ndarray], np.ndarray]] = {}  # for PET-only sessions
    rows: dict[str, list[dict[str, Any]]] = {"truth": [], "images": [], "sessions": []}
    first_t1 = True
    for spec in specs:
        st = truth.session_state(lat, spec.months / 12.0, job.effect_mri, float(rng.normal()))
        ses = f"ses-{spec.session}"
        row: dict[str, Any] = {
            "participant_id": sub, "session_id": ses, "months": spec.months,
            "age": round(st.age, 1), "sex": lat.sex, "has_mri": spec.mri,
            "tracer": spec.tracer or "n/a", "mri_session": f"ses-{spec.mri_session or spec.session}",
            "latent_load": round(st.load, 5), "centiloid": round(st.centiloid, 2),
            "label": st.label, "head_scale": round(lat.head_scale, 4),
            "global_atrophy": round(st.global_atrophy, 4),
            "regional_signal": round(st.regional_signal, 4),
            "ventricle_signal": round(st.ventricle_signal, 4),
            "thinning_global": round(st.thinning_global, 4),
            "thinning_regional": round(st.thinning_regional, 4),
            "ventricle_mm": round(st.ventricle_mm, 3), "orientation": "n/a"}
        if spec.mri:
            pose = deform.pose_matrix(rng, lat.head_scale)
            classes = _atrophy(src, st)
            disp = base_disp + np.float32(st.ventricle_mm) * src.vent_field
            row["orientation"] = _write_mri(job, src, ses, spec, pose, classes, disp, rng,
                                            first_t1, rows["images"])
            first_t1 = False
            if spec.session in needed:
                kept[spec.session] = (pose, classes, disp)
        pet_cl = suvr = None
        if spec.tracer:
            pose_m, classes_m, disp_m = (kept[spec.mri_session] if spec.mri_session
                                         else (pose, classes, disp))
            tracer = pet.TRACERS[spec.tracer]
            pet_cl = truth.pet_centiloid(rng, st.centiloid, spec.tracer, job.effect_pet)
            suvr = pet.suvr_from_centiloid(pet_cl, tracer)
            tpl = pet.uptake_map(src, classes_m, suvr, tracer, rng)
            _write_pet(job, src, ses, tracer, tpl, disp_m, deform.rigid_offset(rng) @ pose_m, rng,
                       rows["images"], pet_cl, suvr)
        row.update(pet_centiloid=_r(pet_cl, 2), suvr_target=_r(suvr, 4))
        rows["truth"].append(row)
        rows["sessions"].append({"session_id": ses, "age": row["age"],
                                 "centiloid": row["centiloid"] if spec.tracer else None,
                                 "tracer": spec.tracer})
    return rows


def _r(x: float | None, n: int) -> float | None:
    return None if x is None else round(float(x), n)


def _write_mri(job: Job, src: Source, ses: str, spec: SessionSpec, pose: np.ndarray,
               classes: list[np.ndarray], disp: np.ndarray, rng: np.random.Generator,
               first_t1: bool, images: list[dict[str, Any]]) -> str:
    sub, t1_orient = job.participant, "n/a"
    for name in job.contrasts:
        c = mri.CONTRASTS[name]
        tpl = mri.template_image(c, classes, rng)
        runs = spec.t1_runs if name == "T1w" else 1
        for run in range(1, runs + 1):
            if name == "T1w" and first_t1 and run == runs:
                orient = c.orientations[job.index % len(c.orientations)]  # subject 0: RAS
            else:
                orient = str(rng.choice(c.orientations))
            coarse = runs > 1 and run == 1
            grid = mri.make_grid(rng, c, job.resolution, pose, orient,
                                 mri.COARSE_RUN_VOXEL if coarse else None)
            coords = deform.grid_coords(grid, pose, src.affine, disp)
            sigma = deform.prefilter_sigma(deform.sampling_matrix(grid, pose, src.affine))
            data = mri.acquire(c, tpl, coords, sigma, grid, rng)
            ent = f"{sub}_{ses}" + (f"_run-{run}" if runs > 1 else "")
            rel = Path(sub) / ses / "anat" / f"{ent}_{name}.nii.gz"
            img = _save(deform.to_image(data, grid), job.root / rel, mri.sidecar(c, grid, coarse))
            images.append(_image_row(sub, ses, run if runs > 1 else None, name, rel, img, pose))
            if name == "T1w":
                t1_orient = t1_orient if t1_orient != "n/a" else orient
                mask = deform.sample(src.brain, coords) > 0.5
                mrel = Path("sourcedata", "synth", sub, f"{ent}_desc-brain_mask.nii.gz")
                img = _save(deform.to_image(mask.astype(np.uint8), grid), job.root / mrel, None)
                images.append(_image_row(sub, ses, run if runs > 1 else None, "mask", mrel, img, pose))
    return t1_orient


def _write_pet(job: Job, src: Source, ses: str, tracer: pet.Tracer, tpl: np.ndarray,
               disp: np.ndarray, pose: np.ndarray, rng: np.random.Generator, images: list[dict[str, Any]],
               pet_cl: float, suvr: float) -> None:
    sub = job.participant
    center = pose[:3, :3] @ deform.HEAD_CENTER + pose[:3, 3]
    vox = pet.VOXEL_MM * max(1.0, 0.75 * job.resolution)  # 2 mm at resolution 1, 3 mm at 2
    grid = deform.make_grid(rng, (vox, vox, vox), pet.FOV_MM, center,
                            str(rng.choice(mri.CONTRASTS["FLAIR"].orientations)))
    fwhm = float(rng.uniform(6.0, 8.0))
    ref = float(rng.uniform(2500.0, 9000.0))
    data = pet.acquire(tpl, deform.grid_coords(grid, pose, src.affine, disp), grid, rng, fwhm, ref)
    rel = Path(sub) / ses / "pet" / f"{sub}_{ses}_trc-{tracer.label}_pet.nii.gz"
    img = deform.to_image(data, grid)
    img.set_data_dtype(np.int16)  # as many scanners export: int16 with scl_slope (nibabel scales)
    img = _save(img, job.root / rel, pet.sidecar(tracer, rng, fwhm, grid))
    row = _image_row(sub, ses, None, "pet", rel, img, pose)
    row.update(tracer=tracer.key, pet_centiloid=round(pet_cl, 2), suvr_target=round(suvr, 4),
               reference_bq_ml=round(ref, 1), fwhm_mm=round(fwhm, 2))
    images.append(row)


def _image_row(sub: str, ses: str, run: int | None, kind: str, rel: Path, img: nib.Nifti1Image,
               pose: np.ndarray) -> dict[str, Any]:
    return {"participant_id": sub, "session_id": ses, "run": run, "suffix": kind,
            "path": rel.as_posix(), "orientation": "".join(nib.aff2axcodes(img.affine)),
            "voxel_mm": " ".join(f"{z:.4g}" for z in img.header.get_zooms()[:3]),
            "shape": " ".join(str(n) for n in img.shape),
            "template_to_scanner": " ".join(f"{v:.6g}" for v in pose[:3].ravel())}
