"""Entry point of participant-level preprocessing: :func:`preprocess_session`.

One call handles one :class:`~bids_amyloid.bids.records.Session`:

1. MRI (once per subject and MRI session, under ``locked(<MRI session>/anat)``, so sessions that
   borrow the same MRI never preprocess it twice at once): load + check + reorient, N4, skull
   strip by registration to MNI152NLin2009aSym, T1w -> template (affine or SyN, estimated at 2 mm,
   applied at 1 mm), other contrasts rigid to the T1w, slice tensors, QC figures.
2. PET (per session and tracer, under ``locked(<session>/pet)``): rigid PET -> T1w of the matched
   MRI session, composed into the template, SUVR (cerebellar grey reference), Centiloid estimate,
   slice tensors, QC figure.

The stages are declared up front (``anat.anat_stages``, ``petstage.pet_stages``) and run by one
:class:`~bids_amyloid.preprocess.stages.StageRunner`: stages whose outputs are complete are skipped
(``config.overwrite`` recomputes); stale temporaries of killed runs are deleted from the
session's folders first. Every file is written atomically.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.io import locked, remove_stale_temporaries
from bids_amyloid.bids.records import Preprocessed, Session
from bids_amyloid.config import Config
from bids_amyloid.errors import MissingInputError
from bids_amyloid.preprocess import register
from bids_amyloid.preprocess.anat import anat_stages, anchor_contrast, contrasts_to_process
from bids_amyloid.preprocess.outputs import Context, Writer, remove_old_figure_temporaries
from bids_amyloid.preprocess.petstage import pet_record, pet_stages
from bids_amyloid.preprocess.stages import ProgressCallback, StageRunner

log = logging.getLogger("bids_amyloid.preprocess")


def preprocess_session(session: Session, config: Config, *, progress: ProgressCallback | None = None) -> Preprocessed:
    """Preprocess one session's MRI (shared per MRI session) and PET; return the output paths.

    Raises ``MissingInputError`` when the session has no MRI, ``DataError`` (naming the file) for
    an unusable image, ``OutputError`` when the output cannot be written.
    """
    if not session.anat:
        raise MissingInputError(f"{session.key}: no MRI to preprocess")
    register.configure_ants(config.seed, config.omp_nthreads)
    mri_session = session.mri_session if session.mri_session is not None else session.session
    paths = Derivatives(config.output_dir).session(session.subject, session.session, mri_session=mri_session,
                                                   anchor=anchor_contrast(session.anat),
                                                   registration=config.preprocess.registration)
    work_root = Path(config.resolved_work_dir) / "preprocess"
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{session.key}-", dir=work_root) as workdir:
        ctx = Context(config, paths, Writer(config), Path(workdir), session.anat)
        mri = anat_stages(ctx)
        pets = [pet_stages(ctx, scan, session) for scan in session.pet]
        runner = StageRunner(ctx.writer, session.key, len(mri) + sum(map(len, pets)), progress)
        with locked(paths.anat_dir):
            _clean(session.key, paths.anat_dir, remove_stale_temporaries(paths.anat_dir)
                   + remove_old_figure_temporaries(paths.figures_dir))
            runner.run(mri)
        if session.pet:
            with locked(paths.pet_dir):
                _clean(session.key, paths.pet_dir, remove_stale_temporaries(paths.pet_dir))
                for stages in pets:
                    runner.run(stages)
        return _record(ctx, session, runner)


def _clean(key: str, folder: Path, removed: int) -> None:
    if removed:
        log.info("%s: removed %d stale temporary file(s) in %s", key, removed, folder)


def _record(ctx: Context, session: Session, runner: StageRunner) -> Preprocessed:
    p = ctx.paths
    contrasts = contrasts_to_process(session.anat, ctx.config.contrasts)
    pet = {scan.tracer: pet_record(ctx, scan) for scan in session.pet}
    figures: tuple[Path, ...] = ()
    if ctx.config.preprocess.qc_figures:
        figures = (p.figure(p.anchor, "brainmask"), *(p.figure(c, "reg") for c in contrasts),
                   *(d.figure for d in pet.values() if d.figure))
    return Preprocessed(
        subject=session.subject, session=session.session, mri_session=p.mri_ses, anchor=p.anchor,
        native_preproc=p.native_preproc(), brain_mask=p.brain_mask(), template_brain_mask=p.template_mask(),
        xfm_to_template=p.xfm_to_template(), xfm_from_template=p.xfm_from_template(),
        template_preproc={c: p.template_preproc(c) for c in contrasts},
        xfm_to_anchor={c: p.xfm_to_anchor(c) for c in contrasts[1:]}, slices={c: p.slices(c) for c in contrasts},
        pet=pet, figures=figures, computed=tuple(runner.computed), reused=tuple(runner.reused))
