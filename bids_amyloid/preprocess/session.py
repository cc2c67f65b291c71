"""Entry point of participant-level preprocessing: :func:`preprocess_session`.

One call handles one :class:`~bids_amyloid.bids.records.Session`:

1. MRI (once per subject and MRI session, under ``locked(<MRI session>/anat)``, so sessions that
   borrow the same MRI never preprocess it twice at once): load + check + reorient, N4, skull
   strip by registration to MNI152NLin2009aSym, T1w -> template (affine or SyN, estimated at 2 mm,
   applied at 1 mm), other contrasts rigid to the T1w, slice tensors, QC figures.
2. PET (per session and tracer, under ``locked(<session>/pet)``): rigid PET -> T1w of the matched
   MRI session, composed into the template, SUVR (cerebellar grey reference), Centiloid estimate,
   slice tensors, QC figure.

Stages whose outputs are complete are skipped (``config.overwrite`` recomputes); stale temporaries
of killed runs are deleted from the session's folders first. Every file is written atomically.
"""
from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bids_amyloid.bids.io import locked, remove_stale_temporaries
from bids_amyloid.bids.records import Session
from bids_amyloid.errors import MissingInputError
from bids_amyloid.preprocess import anat as anat_stage
from bids_amyloid.preprocess import register
from bids_amyloid.preprocess.outputs import SessionPaths, Writer, remove_old_figure_temporaries
from bids_amyloid.preprocess.petstage import PetDerivatives, process_pet

log = logging.getLogger("bids_amyloid.preprocess")

ProgressCallback = Callable[[str, str, int, int], None]
"""``progress(session_key, stage, step, total)``: called before each stage (step counts from 1)."""


@dataclass(frozen=True)
class Preprocessed:
    """Paths of everything preprocessing wrote for one session (all under ``config.output_dir``).

    MRI derivatives live in the MRI session's folder (``mri_session``; another session's when the
    MRI is borrowed), PET derivatives in this session's ``pet/`` folder. Template-space images are
    on the 1 mm MNI152NLin2009aSym grid (197 x 233 x 189).
    """

    subject: str
    session: str | None
    mri_session: str | None
    anchor: str
    """Contrast the MRI was anchored on (T1w when present)."""
    native_preproc: Path
    """Anchor (T1w) bias-corrected, RAS, native grid, with skull."""
    brain_mask: Path
    """Brain mask on the native grid."""
    template_brain_mask: Path
    xfm_to_template: Path
    """Anchor -> template (ANTs: affine ``.mat``, or composite ``.h5`` for SyN)."""
    xfm_from_template: Path
    """Template -> anchor (the inverse, a separate file)."""
    template_preproc: dict[str, Path] = field(default_factory=dict)
    """Contrast -> bias-corrected, skull-stripped image in template space."""
    xfm_to_anchor: dict[str, Path] = field(default_factory=dict)
    """Non-anchor contrast -> rigid transform onto the anchor."""
    slices: dict[str, Path] = field(default_factory=dict)
    """Contrast -> MRI slice tensor (float16 .npy, [n_slices, 224, 224])."""
    pet: dict[str, PetDerivatives] = field(default_factory=dict)
    """Tracer -> PET derivatives (SUVR image, transform, slices, figure, reference numbers)."""
    figures: tuple[Path, ...] = ()
    computed: tuple[str, ...] = ()
    """Stages run by this call."""
    reused: tuple[str, ...] = ()
    """Stages skipped because their outputs were complete."""

    @property
    def key(self) -> str:
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def pet_slices(self) -> dict[str, Path]:
        return {tracer: p.slices for tracer, p in self.pet.items()}

    def files(self) -> list[Path]:
        """Every data file listed above (sidecars not included)."""
        out = [self.native_preproc, self.brain_mask, self.template_brain_mask, self.xfm_to_template,
               self.xfm_from_template, *self.template_preproc.values(), *self.xfm_to_anchor.values(),
               *self.slices.values(), *self.figures]
        for p in self.pet.values():
            out += [p.suvr, p.xfm_to_anchor, p.slices] + ([p.figure] if p.figure else []) + (
                [p.static] if p.static else [])
        return list(dict.fromkeys(out))


def preprocess_session(session: Session, config, *, progress: ProgressCallback | None = None) -> Preprocessed:
    """Preprocess one session's MRI (shared per MRI session) and PET; return the output paths.

    Raises ``MissingInputError`` when the session has no MRI, ``DataError`` (naming the file) for
    an unusable image, ``OutputError`` when the output cannot be written.
    """
    if not session.anat:
        raise MissingInputError(f"{session.key}: no MRI to preprocess")
    register.configure_ants(config.seed, config.omp_nthreads)
    mri_session = session.mri_session if session.mri_session is not None else session.session
    anchor = anat_stage.anchor_contrast(session.anat)
    paths = SessionPaths(config.output_dir, session.subject, mri_session, session.session, anchor,
                         config.preprocess.registration)
    writer = Writer(config)
    cache = anat_stage.ImageCache()
    n_contrasts = len(anat_stage.contrasts_to_process(session.anat, config.contrasts))
    n_mri = 3 + (n_contrasts - 1) + n_contrasts + (1 + n_contrasts) * int(config.preprocess.qc_figures)
    total = n_mri + sum(3 + int(p.volumes > 1) + int(config.preprocess.qc_figures) for p in session.pet)
    counter = {"step": 0}

    def step(stage: str) -> None:
        counter["step"] += 1
        log.info("%s: %s (%d/%d)", session.key, stage, counter["step"], total)
        if progress is not None:
            progress(session.key, stage, counter["step"], total)

    work_root = Path(config.resolved_work_dir) / "preprocess"
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{session.key}-", dir=work_root) as workdir:
        with locked(paths.anat_dir):
            removed = remove_stale_temporaries(paths.anat_dir)
            removed += remove_old_figure_temporaries(paths.figures_dir)
            if removed:
                log.info("%s: removed %d stale temporary file(s)", session.key, removed)
            mri = anat_stage.process_anat(session.anat, config, paths, writer, cache, Path(workdir), step)
        pet: dict[str, PetDerivatives] = {}
        if session.pet:
            with locked(paths.pet_dir):
                removed = remove_stale_temporaries(paths.pet_dir)
                if removed:
                    log.info("%s: removed %d stale temporary PET file(s)", session.key, removed)
                for scan in session.pet:
                    pet[scan.tracer] = process_pet(scan, session, mri, config, paths, writer, cache, Path(workdir),
                                                   step, mri.computed, mri.reused)
    figures = tuple(mri.figures) + tuple(p.figure for p in pet.values() if p.figure)
    return Preprocessed(
        subject=session.subject, session=session.session, mri_session=mri_session, anchor=anchor,
        native_preproc=mri.native_preproc, brain_mask=mri.brain_mask, template_brain_mask=mri.template_mask,
        xfm_to_template=mri.xfm_to_template, xfm_from_template=mri.xfm_from_template,
        template_preproc=dict(mri.template_preproc), xfm_to_anchor=dict(mri.xfm_to_anchor),
        slices=dict(mri.slices), pet=pet, figures=figures,
        computed=tuple(mri.computed), reused=tuple(mri.reused),
    )
