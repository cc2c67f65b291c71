"""One subject: session design, anatomy per session, MRI and PET images, truth rows.

Runs in a worker process; everything random comes from the subject's own generator, drawn in a
fixed order, so a subject's files do not depend on n_jobs or on the other subjects. The layout
(layouts.py) only changes names, sessions, sidecars and the PET acquisition, never the anatomy.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_amyloid.synth import bidsfiles, deform, labels, layouts, mri, pet, petwrite, truth
from bids_amyloid.synth.anatomy import Source
from bids_amyloid.synth.layouts import PetSpec, SessionSpec
from bids_amyloid.synth.sites import REFERENCE, Site

__all__ = ["Job", "PetSpec", "SessionSpec", "design", "run"]


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
    layout: str = "default"
    site: Site = REFERENCE  # the subject's acquisition site (every MRI session)


def design(index: int, tracers: tuple[str, ...], layout: str = "default") -> list[SessionSpec]:
    """Session layouts cycle with the subject index so that 6 subjects already show every case
    (default: ses-M000 + a PET-only ses-M006, two T1w runs, three sessions with a tracer switch,
    one session, an MRI-only follow-up, two sessions; see layouts.py for the others)."""
    return layouts.design(layout, index, tracers)


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
    lat = truth.draw_subject(rng, job.index, job.phase)
    lat = replace(lat, u0=lat.u0 + job.site.latent_shift)  # site prevalence confound; no draw
    cshape = deform.coarse_shape(src.shape, src.coarse_factor)
    base_disp = deform.random_field(rng, cshape, amplitude_mm=float(rng.uniform(2.0, 4.0)))
    specs = design(job.index, job.tracers, job.layout)
    needed = {s.mri_session for s in specs if s.mri_session}
    kept: dict[str, tuple[np.ndarray, list[np.ndarray], np.ndarray]] = {}  # for PET-only sessions
    done: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    first_t1 = True
    # MRI sessions first (a PET-only session may precede its MRI); rows are re-sorted below.
    for i in sorted(range(len(specs)), key=lambda j: not specs[j].mri):
        spec, images = specs[i], []
        st = truth.session_state(lat, spec.years, job.effect_mri, float(rng.normal()))
        row = _truth_row(job.participant, spec, lat, st, job.site.name)
        anatomy = None
        if spec.mri:
            pose = deform.pose_matrix(rng, lat.head_scale)
            classes = _atrophy(src, st)
            disp = base_disp + np.float32(st.ventricle_mm) * src.vent_field
            row["orientation"] = _write_mri(job, src, row["session_id"], spec, pose, classes, disp, rng,
                                            first_t1, images)
            first_t1, anatomy = False, (pose, classes, disp)
            if spec.session in needed:
                kept[spec.session] = anatomy
        elif spec.mri_session and spec.pet_list():
            anatomy = kept[spec.mri_session]
        elif spec.pet_list():  # no MRI within reach: the PET shows this session's own anatomy
            anatomy = (deform.pose_matrix(rng, lat.head_scale), _atrophy(src, st),
                       base_disp + np.float32(st.ventricle_mm) * src.vent_field)
        row.update(_write_pets(job, src, spec, st, anatomy, rng, images) if spec.pet_list() else
                   {"pet_centiloid": None, "suvr_target": None})
        row.update(days=spec.day, other_pet=",".join(p.tracer for p in spec.pet_list()
                                                     if pet.ALL_TRACERS[p.tracer].family != "amyloid") or "n/a")
        done[i] = (row, images)
    return _subject_rows(job, specs, [done[i] for i in range(len(specs))], rng)


def _truth_row(sub: str, spec: SessionSpec, lat: truth.SubjectLatent, st: truth.SessionState,
               site: str) -> dict[str, Any]:
    paired = spec.mri or spec.mri_session is not None
    return {
        "participant_id": sub, "session_id": f"ses-{spec.session}", "months": spec.months,
        "age": round(st.age, 1), "sex": lat.sex, "site": site, "has_mri": spec.mri,
        "tracer": spec.tracer or "n/a",
        "mri_session": f"ses-{spec.mri_session or spec.session}" if paired else "n/a",
        "latent_load": round(st.load, 5), "centiloid": round(st.centiloid, 2),
        "label": st.label, "head_scale": round(lat.head_scale, 4),
        "global_atrophy": round(st.global_atrophy, 4),
        "regional_signal": round(st.regional_signal, 4),
        "ventricle_signal": round(st.ventricle_signal, 4),
        "thinning_global": round(st.thinning_global, 4),
        "thinning_regional": round(st.thinning_regional, 4),
        "ventricle_mm": round(st.ventricle_mm, 3), "orientation": "n/a"}


def _write_pets(job: Job, src: Source, spec: SessionSpec, st: truth.SessionState, anatomy: tuple,
                rng: np.random.Generator, images: list[dict[str, Any]]) -> dict[str, Any]:
    """Every PET of the session on ``anatomy`` (pose, class maps, displacement); its truth columns."""
    pose, classes, disp = anatomy
    pet_cl = suvr = amy = None
    if spec.tracer:
        tracer = pet.TRACERS[spec.tracer]
        pet_cl = truth.pet_centiloid(rng, st.centiloid, spec.tracer, job.effect_pet)
        suvr = pet.suvr_from_centiloid(pet_cl, tracer)
        amy = pet.uptake_map(src, classes, suvr, tracer, rng)
    ses = f"ses-{spec.session}"
    for p in spec.pet_list():
        tr = pet.ALL_TRACERS[p.tracer]
        if tr.family == "amyloid":
            if p.tracer != spec.tracer:
                raise ValueError(f"{ses}: amyloid PET {p.tracer} but tracer {spec.tracer}")
            tpl, cl, target = amy, pet_cl, suvr
        else:  # tau / FDG: their own plausible uptake, no Centiloid
            target, cl = pet.target_suvr(tr, st.load), None
            tpl = pet.uptake_map(src, classes, target, tr, rng)
        petwrite.write_pet(petwrite.PetJob(job.root, job.layout, job.resolution, job.participant, ses),
                           src, tr, p, tpl, classes, disp, deform.rigid_offset(rng) @ pose, rng, images, cl, target)
    return {"pet_centiloid": _r(pet_cl, 2), "suvr_target": _r(suvr, 4)}


def _subject_rows(job: Job, specs: list[SessionSpec], done: list[tuple[dict[str, Any], list[dict[str, Any]]]],
                  rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
    """Truth, image and session rows in session order; the layout's label rows; OASIS-3's per-session
    dataset_description."""
    rows: dict[str, list[dict[str, Any]]] = {"truth": [], "images": [], "sessions": []}
    for spec, (row, images) in zip(specs, done):
        rows["truth"].append(row)
        rows["images"].extend(images)
        rows["sessions"].append({"session_id": row["session_id"], "age": row["age"],
                                 "centiloid": row["centiloid"] if spec.tracer else None,
                                 "tracer": spec.tracer, "acq_time": _acq_time(job.index, spec.day)})
        if job.layout == "oasis3":  # the download script's per-session description
            kind = "PET" if spec.pet_list() and not spec.mri else "MR"
            bidsfiles.write_json(job.root / job.participant / row["session_id"] / "dataset_description.json",
                                 {"Name": f"{job.participant[4:]}_{kind}_{spec.session}", "BIDSVersion": "1.0.1"})
    rows["labels"] = labels.label_rows(job.layout, job.index, job.participant, specs, rows["truth"], rng)
    return rows


def _acq_time(index: int, day: int) -> str:
    """A session date (BIDS acq_time): a per-subject baseline plus the session's day (no draw from rng)."""
    from datetime import datetime, timedelta

    return (datetime(2008, 1, 7, 9, 0) + timedelta(days=37 * index + day)).isoformat()


def _r(x: float | None, n: int) -> float | None:
    return None if x is None else round(float(x), n)


def _write_mri(job: Job, src: Source, ses: str, spec: SessionSpec, pose: np.ndarray,
               classes: list[np.ndarray], disp: np.ndarray, rng: np.random.Generator,
               first_t1: bool, images: list[dict[str, Any]]) -> str:
    sub, t1_orient = job.participant, "n/a"
    for name in job.contrasts:
        if layouts.anat_name(job.layout, sub, ses, name, 1, 1) is None:
            continue  # this layout has no such contrast
        c = mri.CONTRASTS[name]
        tpl = mri.template_image(c, classes, rng, job.site.gains(name))
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
            data = mri.acquire(c, tpl, coords, sigma, grid, rng, job.site.snr_factor, job.site.bias_shift)
            stem, has_json = layouts.anat_name(job.layout, sub, ses, name, run, runs,  # type: ignore[misc]
                                               spec.sess_typo and run == runs)
            run_ent = layouts.anat_run(job.layout, run, runs)
            rel = Path(sub) / ses / "anat" / f"{stem}.nii.gz"
            meta = mri.sidecar(c, grid, coarse, job.site.scanner) if has_json else None
            img = _save(deform.to_image(data, grid), job.root / rel, meta)
            images.append(bidsfiles.image_row(sub, ses, run_ent, name, rel, img, pose))
            if name == "T1w":
                t1_orient = t1_orient if t1_orient != "n/a" else orient
                mask = deform.sample(src.brain, coords) > 0.5
                mrel = Path("sourcedata", "synth", sub,
                            f"{stem.rsplit('_', 1)[0]}_desc-brain_mask.nii.gz")
                img = _save(deform.to_image(mask.astype(np.uint8), grid), job.root / mrel, None)
                images.append(bidsfiles.image_row(sub, ses, run_ent, "mask", mrel, img, pose))
    return t1_orient
