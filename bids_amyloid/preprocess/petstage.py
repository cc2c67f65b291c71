"""PET stages of one session and tracer: (4-D: window frames -> static) -> rigid to the T1w ->
template SUVR -> slices -> QC figure.

See :mod:`bids_amyloid.preprocess.frames` for dynamic PET and :mod:`bids_amyloid.preprocess.pet`
for the SUVR and Centiloid definitions. Every PET derivative's sidecar records the tracer family
(and where it was read), the MRI session it was paired with and how many days away.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from bids_amyloid.bids import tracers
from bids_amyloid.bids.records import PetScan, Session
from bids_amyloid.bids.sidecars import lookup, read_sidecar
from bids_amyloid.errors import DataError
from bids_amyloid.preprocess import frames, qc, register, slices, template
from bids_amyloid.preprocess import pet as petmath
from bids_amyloid.preprocess.images import load_image, max_voxel_for, nifti_like, to_ants
from bids_amyloid.preprocess.outputs import SessionPaths, Writer, sidecar_path

log = logging.getLogger("bids_amyloid.preprocess")

MIN_REFERENCE_COVERAGE = 0.5
"""Fraction of the reference region the PET field of view must cover."""


@dataclass(frozen=True)
class PetDerivatives:
    tracer: str
    source: Path
    """Raw PET file."""
    static: Path | None
    """Static image made from the window frames of a 4-D PET (None for a 3-D PET)."""
    suvr: Path
    """SUVR image in template space (1 mm)."""
    xfm_to_anchor: Path
    """Rigid PET -> anchor (T1w) transform."""
    slices: Path
    """SUVR slice tensor (float16 .npy)."""
    figure: Path | None
    reference_mean: float
    """Mean PET (input units) in the reference region."""
    cortical_suvr: float | None
    centiloid_estimate: float | None
    """ESTIMATE from the cortical SUVR (not a calibrated Centiloid; never used as a label)."""


def pet_identity(scan: PetScan, session: Session) -> dict:
    """Sidecar fields every PET derivative carries: the tracer and the MRI pairing."""
    return {"TracerName": scan.label or scan.tracer, "TracerFamily": scan.tracer,
            "TracerFamilyName": tracers.family(scan.tracer).name, "TracerIdentifiedFrom": scan.tracer_source,
            "MRISession": f"ses-{session.mri_session}" if session.mri_session else None,
            "MRIGapDays": None if session.mri_gap_days is None else round(session.mri_gap_days, 1),
            "MRIPairingDatesFrom": session.date_source}


def process_pet(scan: PetScan, session: Session, mri, config, paths: SessionPaths, writer: Writer, cache,
                workdir: Path, step: Callable[[str], None], computed: list[str], reused: list[str]) -> PetDerivatives:
    """Run (or reuse) the PET stages; stage names are appended to ``computed`` / ``reused``."""
    pcfg, sloppy, tracer = config.preprocess, config.sloppy, scan.tracer
    raw = Path(scan.path)
    out_xfm, out_suvr, out_slices = paths.pet_xfm(tracer), paths.pet_suvr(tracer), paths.pet_slices(tracer)
    identity = pet_identity(scan, session)
    max_voxel = max_voxel_for("pet", pcfg)
    window = scan.window_min or tracers.family(tracer).suvr_window_min

    def run(stage: str, outputs: list[Path], inputs: list[Path], rawfiles: list[Path]) -> bool:
        step(stage)
        outputs = outputs + [sidecar_path(p) for p in outputs if p.suffix != ".svg"]
        if writer.complete(outputs, inputs, rawfiles):
            reused.append(stage)
            return False
        computed.append(stage)
        return True

    static_path = None
    if scan.volumes > 1:
        static_path = paths.pet_static(tracer)
        if run(f"pet-frames-{tracer}", [static_path], [], [raw]):
            static = frames.dynamic_to_static(scan, window, max_voxel_mm=max_voxel,
                                              realign=pcfg.realign_frames, workdir=workdir, sloppy=sloppy)
            writer.nifti(static_path, static.image, writer.sidecar(
                [raw], [raw], Description=f"Static {tracer} PET: duration-weighted mean of the "
                f"{'realigned ' if static.meta['FramesRealigned'] else ''}frames inside the SUVR window",
                Units=_units(raw, config.bids_dir), SkullStripped=False, **identity, **static.meta))
        frame_fields = {k: v for k, v in json.loads(sidecar_path(static_path).read_text()).items()
                        if k in frames.FRAME_FIELDS}
    else:
        frame_fields = frames.static_fields(scan, window)
    source = static_path or raw

    if run(f"pet-register-{tracer}", [out_xfm], [mri.native_preproc, mri.brain_mask] + ([source] if static_path else []),
           [raw]):
        loaded = load_image(source, "pet", max_voxel)
        head, mask = cache.get(mri.native_preproc), cache.get(mri.brain_mask)
        rigid = register.register_rigid(head * mask, to_ants(loaded.image), mask, workdir, f"pet-{tracer}",
                                        sloppy=sloppy)
        writer.copy(rigid.forward[0], out_xfm, writer.sidecar(
            [source, mri.native_preproc, mri.brain_mask], [raw], FromSpace="petref", ToSpace=mri.anchor,
            Registration="Rigid, Mattes MI, to the skull-stripped bias-corrected anchor", **identity,
            OriginalOrientation=frame_fields.get("OriginalOrientation", loaded.orientation)))

    region = template.reference_region()
    cortex = template.cortical_target() if pcfg.centiloid_estimate else None
    if run(f"suvr-{tracer}", [out_suvr], [out_xfm, mri.xfm_to_template, mri.template_mask], [raw]):
        loaded = load_image(source, "pet", max_voxel)
        grid = to_ants(template.template_nifti(1))
        transforms = (str(mri.xfm_to_template), str(out_xfm))
        pet_t = register.apply(grid, to_ants(loaded.image), transforms).numpy()
        brain = np.asarray(nib.load(str(mri.template_mask)).dataobj) > 0
        coverage = float((pet_t[region.mask] != 0).mean())
        if coverage < MIN_REFERENCE_COVERAGE:
            raise DataError(f"{raw}: PET covers only {coverage:.0%} of the cerebellar reference region "
                            "(field of view or registration problem)")
        ref_mean, n_ref = petmath.reference_mean(pet_t, region.mask, brain)
        if not np.isfinite(ref_mean) or ref_mean <= 0:
            raise DataError(f"{raw}: mean PET in the reference region is {ref_mean:g}; cannot compute SUVR")
        suvr = petmath.suvr(pet_t, ref_mean)
        cortical = centiloid = None
        if cortex is not None:
            cortical, _ = petmath.reference_mean(suvr, cortex.mask, brain)
            centiloid = petmath.centiloid_estimate(tracer, cortical)
        writer.nifti(out_suvr, nifti_like(suvr, template.template_nifti(1).affine, np.float32, 4), writer.sidecar(
            [source, out_xfm, mri.xfm_to_template, mri.template_mask], [raw],
            Description=f"SUVR ({tracer}) in template space (1 mm, linear): PET / mean PET in the reference region",
            **template.space_fields(1), Units="SUVR", SkullStripped=False, **identity, **frame_fields,
            ReferenceRegion={"Name": region.name, "Description": region.description, "Voxels": n_ref,
                             "MeanPET": ref_mean, "Coverage": coverage},
            GlobalCorticalSUVR=cortical,
            GlobalCorticalRegion=cortex.description if cortex is not None else None,
            CentiloidEstimate=centiloid,
            CentiloidEstimateNote=_centiloid_note(tracer, centiloid, cortex is not None)))
    meta = json.loads(sidecar_path(out_suvr).read_text())

    if run(f"slices-pet-{tracer}", [out_slices], [out_suvr, mri.template_mask], [raw]):
        volume = np.asarray(nib.load(str(out_suvr)).dataobj, dtype=np.float32)
        brain = np.asarray(nib.load(str(mri.template_mask)).dataobj) > 0
        idx = slices.slice_indices(volume.shape[0], pcfg.n_slices, tuple(pcfg.slice_band))
        stack, pads = slices.extract_slices(np.where(brain, volume, 0.0), idx, pcfg.slice_size)
        info = slices.slice_metadata(idx, stack, volume.shape[1:3], pads, pcfg.slice_size, tuple(pcfg.slice_band))
        writer.npy(out_slices, stack.astype(np.float16), writer.sidecar(
            [out_suvr, mri.template_mask], [raw], Modality="pet", **identity, **template.space_fields(1),
            BrainMasked=True, Values="SUVR (cerebellar grey reference), float, not rescaled", Units="SUVR",
            ReferenceRegion=meta.get("ReferenceRegion", {}).get("Name"), **info))

    figure = None
    if pcfg.qc_figures:
        figure = paths.pet_figure(tracer)
        if run(f"qc-pet-{tracer}", [figure], [out_suvr], []):
            t1 = mri.template_preproc[mri.anchor]
            ref_img = nifti_like(region.mask, template.template_nifti(1).affine, np.uint8, 4)
            title = f"{paths.sub} {paths.ses or ''} {tracer} SUVR".replace("  ", " ")
            writer.figure(figure, lambda tmp: qc.pet_figure(nib.load(str(out_suvr)), nib.load(str(t1)), ref_img,
                                                            tmp, title))
    return PetDerivatives(
        tracer=tracer, source=raw, static=static_path, suvr=out_suvr, xfm_to_anchor=out_xfm, slices=out_slices, figure=figure,
        reference_mean=float(meta["ReferenceRegion"]["MeanPET"]), cortical_suvr=meta.get("GlobalCorticalSUVR"),
        centiloid_estimate=meta.get("CentiloidEstimate"),
    )


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
