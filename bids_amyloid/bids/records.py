"""Small typed records that travel between stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bids_amyloid.bids.names import session_key


@dataclass(frozen=True)
class FrameTiming:
    """Frame timing of a PET image, in seconds after the injection (see ``bids.pettiming``)."""

    starts: tuple[float, ...]
    durations: tuple[float, ...]
    source: str
    """Where it was read: 'FrameTimesStart/FrameDuration', 'Time.FrameTimes' or '_pet.tsv'."""
    notes: tuple[str, ...] = ()
    """Corrections made while reading (written into the outputs)."""

    @property
    def ends(self) -> tuple[float, ...]:
        return tuple(s + d for s, d in zip(self.starts, self.durations))


@dataclass(frozen=True)
class PetScan:
    path: Path
    tracer: str
    """Tracer family key (``bids.tracers``: PiB, florbetapir, ...): names the derivatives (``trc-<tracer>``)."""
    label: str = ""
    """The tracer as the dataset names it (``11CPIB``, ``PIB``, ``Florbetapir``)."""
    tracer_source: str = "trc"
    """Where the tracer was read: 'trc', 'acq', 'TracerName', 'Tracer.Name' or 'Info.Tracer'."""
    volumes: int = 1
    """Volumes (frames) in the image."""
    timing: FrameTiming | None = None
    """Frame timing when it could be read (required to use a 4-D image)."""
    timing_problems: tuple[str, ...] = ()
    """Why no timing could be read (named in the error for a 4-D image)."""
    window_min: tuple[float, float] | None = None
    """SUVR window (minutes after injection) for this tracer."""
    run: str | None = None
    sidecar: bool = True
    """False when no JSON sidecar applies to the image."""


@dataclass(frozen=True)
class Session:
    """One unit of prediction: a (subject, session) with its MRI and PET scans and label.

    ``anat`` may come from another session of the same subject (``mri_session``) when this
    session has PET but no MRI: the PET is then paired with that MRI session (at most
    ``--mri-pet-max-days`` away; ``mri_gap_days`` and ``date_source`` say how far and how known).
    """

    subject: str
    session: str | None
    anat: dict[str, Path] = field(default_factory=dict)
    """Chosen MRI file per contrast (T1w, T2w, FLAIR, T2starw)."""
    mri_session: str | None = None
    """Session the ``anat`` files come from (== session unless borrowed)."""
    pet: tuple[PetScan, ...] = ()
    centiloid: float | None = None
    label: int | None = None
    """1 amyloid positive, 0 negative, None unknown (excluded from training)."""
    mri_gap_days: float | None = None
    """Days between this session and its MRI session (0 for the same session; None when unknown)."""
    date_source: str | None = None
    """How the gap is known: 'same session', 'acq_time', 'day label', 'month label' or 'session order'."""

    @property
    def key(self) -> str:
        """``sub-X_ses-Y`` (or ``sub-X``): a unique id for logs and tables."""
        return session_key(self.subject, self.session)

    @property
    def borrows_mri(self) -> bool:
        return bool(self.anat) and self.mri_session != self.session


@dataclass(frozen=True)
class SkippedScan:
    """A scan the run did not use, and why (the participant-level summary lists every one)."""

    subject: str
    session: str | None
    path: Path
    reason: str
    kind: str = "pet"
    """'pet' or an MRI contrast."""


@dataclass(frozen=True)
class Pairing:
    """Which MRI session a PET session was paired with (the pairing table, one row per PET session)."""

    subject: str
    pet_session: str | None
    tracers: tuple[str, ...]
    mri_session: str | None
    """None when no MRI session is close enough (the PET is not used)."""
    gap_days: float | None
    date_source: str | None


@dataclass(frozen=True)
class Discovery:
    """What discovery found: the sessions to process, and what it left out (and why)."""

    sessions: list[Session]
    skipped: list[SkippedScan] = field(default_factory=list)
    pairings: list[Pairing] = field(default_factory=list)
    notes: dict[Path, str] = field(default_factory=dict)
    """How a file was read when its name says otherwise (``T2star`` as T2starw, ``acq-FLAIR_T2w`` as FLAIR)."""


@dataclass(frozen=True)
class PetDerivatives:
    """What preprocessing wrote for one PET of a session (paths under OUTPUT_DIR, reference numbers)."""

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
        return session_key(self.subject, self.session)

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
