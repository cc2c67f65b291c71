"""Small typed records that travel between stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PetScan:
    path: Path
    tracer: str
    """Value of the ``trc-`` entity (e.g. ``11CPIB``, ``18FAV45``)."""


@dataclass(frozen=True)
class Session:
    """One unit of prediction: a (subject, session) with its MRI and PET scans and label.

    ``anat`` may come from another session of the same subject (``mri_session``) when this
    session has PET but no MRI: the PET is then matched to that MRI session.
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

    @property
    def key(self) -> str:
        """``sub-X_ses-Y`` (or ``sub-X``): a unique id for logs and tables."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    @property
    def borrows_mri(self) -> bool:
        return bool(self.anat) and self.mri_session != self.session
