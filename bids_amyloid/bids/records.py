"""Small typed records that travel between stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

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
