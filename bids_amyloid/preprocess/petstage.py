"""PET stages of one session and tracer, declared up front: (4-D: window frames -> static) ->
rigid to the T1w -> template SUVR -> slices -> QC figure.

See :mod:`bids_amyloid.preprocess.frames` for dynamic PET and :mod:`bids_amyloid.preprocess.pet`
for the SUVR and Centiloid definitions. Every PET derivative's sidecar records the tracer family
(and where it was read), the MRI session it was paired with and how many days away.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from bids_amyloid.bids import tracers
from bids_amyloid.bids.names import sidecar_of
from bids_amyloid.bids.records import PetDerivatives, PetScan, Session
from bids_amyloid.bids.sidecars import lookup, read_sidecar
from bids_amyloid.errors import DataError
from bids_amyloid.preprocess import frames, qc, register, slices
from bids_amyloid.preprocess import pet as petmath
from bids_amyloid.preprocess.images import load_image, max_voxel_for
from bids_amyloid.preprocess.outputs import Context
from bids_amyloid.preprocess.regions import cortical_target, reference_region
from bids_amyloid.preprocess.stages import Stage
from bids_amyloid.space import template
from bids_amyloid.space.antsio import nifti_like, to_ants

MIN_REFERENCE_COVERAGE = 0.5
"""Fraction of the reference region the PET field of view must cover."""


def pet_identity(scan: PetScan, session: Session) -> dict:
    """Sidecar fields every PET derivative carries: the tracer and the MRI pairing."""
    return {"TracerName": scan.label or scan.tracer, "TracerFamily": scan.tracer,
            "TracerFamilyName": tracers.family(scan.tracer).name, "TracerIdentifiedFrom": scan.tracer_source,
            "MRISession": f"ses-{session.mri_session}" if session.mri_session else None,
            "MRIGapDays": None if session.mri_gap_days is None else round(session.mri_gap_days, 1),
            "MRIPairingDatesFrom": session.date_source}


class _Pet:
    """One PET of the session: its paths and the facts every stage writes."""

    def __init__(self, ctx: Context, scan: PetScan, session: Session):
        self.ctx, self.scan, self.tracer, self.raw = ctx, scan, scan.tracer, Path(scan.path)
        self.identity = pet_identity(scan, session)
        self.window = scan.window_min or tracers.family(scan.tracer).suvr_window_min
        self.static = ctx.paths.pet_static(scan.tracer) if scan.volumes > 1 else None
        self.source = self.static or self.raw
        self.xfm, self.suvr = ctx.paths.pet_xfm(scan.tracer), ctx.paths.pet_suvr(scan.tracer)
        self.max_voxel = max_voxel_for("pet", ctx.config.preprocess)

    def frame_fields(self) -> dict[str, Any]:
        if self.static is None:
            return frames.static_fields(self.scan, self.window)
        meta = json.loads(sidecar_of(self.static).read_text())
        return {k: v for k, v in meta.items() if k in frames.FRAME_FIELDS}


def _frames(pet: _Pet) -> Stage:
    ctx, cfg = pet.ctx, pet.ctx.config

    def run() -> None:
        static = frames.dynamic_to_static(pet.scan, pet.window, max_voxel_mm=pet.max_voxel,
                                          realign=cfg.preprocess.realign_frames, workdir=ctx.workdir, sloppy=cfg.sloppy)
        ctx.writer.nifti(pet.static, static.image, ctx.writer.sidecar(
            [pet.raw], [pet.raw], Description=f"Static {pet.tracer} PET: duration-weighted mean of the "
            f"{'realigned ' if static.meta['FramesRealigned'] else ''}frames inside the SUVR window",
            Units=_units(pet.raw, cfg.bids_dir), SkullStripped=False, **pet.identity, **static.meta))

    return Stage(f"pet-frames-{pet.tracer}", (pet.static,), run, raw=(pet.raw,))


def _register(pet: _Pet) -> Stage:
    ctx, p = pet.ctx, pet.ctx.paths

    def run() -> None:
        loaded = load_image(pet.source, "pet", pet.max_voxel)
        head, mask = ctx.cache.get(p.native_preproc()), ctx.cache.get(p.brain_mask())
        rigid = register.register_rigid(head * mask, to_ants(loaded.image), mask, ctx.workdir, f"pet-{pet.tracer}",
                                        sloppy=ctx.config.sloppy)
        ctx.writer.copy(rigid.forward[0], pet.xfm, ctx.writer.sidecar(
            [pet.source, p.native_preproc(), p.brain_mask()], [pet.raw], FromSpace="petref", ToSpace=p.anchor,
            Registration="Rigid, Mattes MI, to the skull-stripped bias-corrected anchor", **pet.identity,
            OriginalOrientation=pet.frame_fields().get("OriginalOrientation", loaded.orientation)))

    inputs = (p.native_preproc(), p.brain_mask()) + ((pet.static,) if pet.static else ())
    return Stage(f"pet-register-{pet.tracer}", (pet.xfm,), run, inputs, (pet.raw,))


def _suvr(pet: _Pet) -> Stage:
    ctx, p, tracer = pet.ctx, pet.ctx.paths, pet.tracer

    def run() -> None:
        region = reference_region()
        cortex = cortical_target() if ctx.config.preprocess.centiloid_estimate else None
        loaded = load_image(pet.source, "pet", pet.max_voxel)
        grid = to_ants(template.template_nifti(1))
        pet_t = register.apply(grid, to_ants(loaded.image), (str(p.xfm_to_template()), str(pet.xfm))).numpy()
        brain = np.asarray(nib.load(str(p.template_mask())).dataobj) > 0
        coverage = float((pet_t[region.mask] != 0).mean())
        if coverage < MIN_REFERENCE_COVERAGE:
            raise DataError(f"{pet.raw}: PET covers only {coverage:.0%} of the cerebellar reference region "
                            "(field of view or registration problem)")
        ref_mean, n_ref = petmath.reference_mean(pet_t, region.mask, brain)
        if not np.isfinite(ref_mean) or ref_mean <= 0:
            raise DataError(f"{pet.raw}: mean PET in the reference region is {ref_mean:g}; cannot compute SUVR")
        suvr = petmath.suvr(pet_t, ref_mean)
        cortical = centiloid = None
        if cortex is not None:
            cortical, _ = petmath.reference_mean(suvr, cortex.mask, brain)
            centiloid = petmath.centiloid_estimate(tracer, cortical)
        ctx.writer.nifti(pet.suvr, nifti_like(suvr, template.template_nifti(1).affine, np.float32, 4), ctx.writer.sidecar(
            [pet.source, pet.xfm, p.xfm_to_template(), p.template_mask()], [pet.raw],
            Description=f"SUVR ({tracer}) in template space (1 mm, linear): PET / mean PET in the reference region",
            **template.space_fields(1), Units="SUVR", SkullStripped=False, **pet.identity, **pet.frame_fields(),
            ReferenceRegion={"Name": region.name, "Description": region.description, "Voxels": n_ref,
                             "MeanPET": ref_mean, "Coverage": coverage},
            GlobalCorticalSUVR=cortical, GlobalCorticalRegion=cortex.description if cortex is not None else None,
            CentiloidEstimate=centiloid, CentiloidEstimateNote=_centiloid_note(tracer, centiloid, cortex is not None)))

    return Stage(f"suvr-{tracer}", (pet.suvr,), run, (pet.xfm, p.xfm_to_template(), p.template_mask()), (pet.raw,))


def _slices(pet: _Pet) -> Stage:
    ctx, p, pcfg = pet.ctx, pet.ctx.paths, pet.ctx.config.preprocess
    out = p.pet_slices(pet.tracer)

    def run() -> None:
        volume = np.asarray(nib.load(str(pet.suvr)).dataobj, dtype=np.float32)
        brain = np.asarray(nib.load(str(p.template_mask())).dataobj) > 0
        idx = slices.slice_indices(volume.shape[0], pcfg.n_slices, tuple(pcfg.slice_band))
        stack, pads = slices.extract_slices(np.where(brain, volume, 0.0), idx, pcfg.slice_size)
        info = slices.slice_metadata(idx, stack, volume.shape[1:3], pads, pcfg.slice_size, tuple(pcfg.slice_band))
        region = json.loads(sidecar_of(pet.suvr).read_text()).get("ReferenceRegion", {}).get("Name")
        ctx.writer.npy(out, stack.astype(np.float16), ctx.writer.sidecar(
            [pet.suvr, p.template_mask()], [pet.raw], Modality="pet", **pet.identity, **template.space_fields(1),
            BrainMasked=True, Values="SUVR (cerebellar grey reference), float, not rescaled", Units="SUVR",
            ReferenceRegion=region, **info))

    return Stage(f"slices-pet-{pet.tracer}", (out,), run, (pet.suvr, p.template_mask()), (pet.raw,))


def _figure(pet: _Pet) -> Stage:
    ctx, p = pet.ctx, pet.ctx.paths
    figure = p.pet_figure(pet.tracer)
    title = f"{p.sub} {p.ses or ''} {pet.tracer} SUVR".replace("  ", " ")

    def run() -> None:
        ref_img = nifti_like(reference_region().mask, template.template_nifti(1).affine, np.uint8, 4)
        ctx.writer.figure(figure, lambda tmp: qc.pet_figure(
            nib.load(str(pet.suvr)), nib.load(str(p.template_preproc(p.anchor))), ref_img, tmp, title))

    return Stage(f"qc-pet-{pet.tracer}", (figure,), run, (pet.suvr,))


def pet_stages(ctx: Context, scan: PetScan, session: Session) -> list[Stage]:
    """Every stage of one PET of the session, in order."""
    pet = _Pet(ctx, scan, session)
    stages = ([_frames(pet)] if pet.static else []) + [_register(pet), _suvr(pet), _slices(pet)]
    return stages + ([_figure(pet)] if ctx.config.preprocess.qc_figures else [])


def pet_record(ctx: Context, scan: PetScan) -> PetDerivatives:
    """What the stages of ``scan`` wrote (after they ran)."""
    p, tracer = ctx.paths, scan.tracer
    meta = json.loads(sidecar_of(p.pet_suvr(tracer)).read_text())
    return PetDerivatives(
        tracer=tracer, source=Path(scan.path), static=p.pet_static(tracer) if scan.volumes > 1 else None,
        suvr=p.pet_suvr(tracer), xfm_to_anchor=p.pet_xfm(tracer), slices=p.pet_slices(tracer),
        figure=p.pet_figure(tracer) if ctx.config.preprocess.qc_figures else None,
        reference_mean=float(meta["ReferenceRegion"]["MeanPET"]), cortical_suvr=meta.get("GlobalCorticalSUVR"),
        centiloid_estimate=meta.get("CentiloidEstimate"))


def _units(raw: Path, bids_dir: Path) -> str:
    units = lookup(read_sidecar(raw, bids_dir).values, "Units")
    return str(units) if units else "n/a"


def _centiloid_note(tracer: str, centiloid: float | None, have_cortex: bool) -> str:
    if centiloid is not None:
        fam = tracers.family(tracer)
        slope, intercept = fam.centiloid
        return (f"ESTIMATE only: {slope} * GlobalCorticalSUVR {intercept:+} ({fam.key} equation, "
                f"{fam.centiloid_reference}, calibrated for the GAAIN standard VOIs and whole-cerebellum reference, "
                "applied here to AAL-based regions and a cerebellar grey reference). Not a calibrated Centiloid; "
                "never used as a label.")
    if not have_cortex:
        return "No Centiloid estimate: the AAL atlas (mricron-data) was not found or the estimate is disabled."
    return f"No Centiloid estimate: no conversion equation for tracer {tracer}."
