"""Discover the sessions to process with PyBIDS.

The PyBIDS index lives in memory (never inside the read-only dataset, never on a shared
filesystem's SQLite). One :class:`Session` per (subject, session) that has MRI or PET; a session
with PET but no MRI borrows the MRI of the nearest session of the same subject.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bids_amyloid.bids.labels import LabelTable, read_labels
from bids_amyloid.bids.records import PetScan, Session
from bids_amyloid.config import Config
from bids_amyloid.errors import (
    BidsValidationError,
    DataError,
    MissingInputError,
    NothingSelectedError,
    UsageError,
)

log = logging.getLogger("bids_amyloid.bids")

LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
FILTER_KEYS = ("T1w", "T2w", "FLAIR", "T2starw", "pet")


def clean_label(value: str, prefix: str) -> str:
    """Strip an optional ``sub-``/``ses-`` prefix and reject anything but a BIDS label.

    BIDS labels are alphanumeric, so this also stops path traversal (``../``) through labels.
    """
    label = value[len(prefix):] if value.startswith(prefix) else value
    if not LABEL_RE.match(label):
        raise UsageError(f"invalid label {value!r}: BIDS labels are letters and digits only")
    return label


def check_bids_root(bids_dir: Path) -> None:
    if not bids_dir.exists():
        raise UsageError(f"BIDS_DIR {bids_dir} does not exist")
    if not bids_dir.is_dir():
        raise UsageError(f"BIDS_DIR {bids_dir} is not a folder")
    if not (bids_dir / "dataset_description.json").is_file():
        raise BidsValidationError(f"{bids_dir} is not a BIDS dataset: dataset_description.json is missing")
    try:
        json.loads((bids_dir / "dataset_description.json").read_text())
    except ValueError as exc:
        raise BidsValidationError(f"{bids_dir / 'dataset_description.json'} is not valid JSON: {exc}") from exc
    if not any(bids_dir.glob("sub-*")):
        raise MissingInputError(f"{bids_dir} contains no subjects (no sub-* folders)")


def run_bids_validator(bids_dir: Path) -> None:
    """Run the BIDS validator (bids-validator-deno) when installed; errors -> exit 16."""
    # next to our interpreter first: a venv's tools are there even when the venv is not activated
    beside = Path(sys.executable).parent / "bids-validator-deno"
    exe = str(beside) if beside.exists() else shutil.which("bids-validator-deno") or shutil.which("bids-validator")
    if exe is None:
        log.warning("BIDS validator not installed; input not validated (install bids-validator-deno)")
        return
    result = subprocess.run([exe, str(bids_dir), "--format", "json"], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return
    messages = []
    try:
        issues = json.loads(result.stdout)["issues"]["issues"]
        messages = sorted({f"{i.get('code')}: {i.get('location', '')}" for i in issues if i.get("severity") == "error"})
    except (ValueError, KeyError, TypeError):
        messages = [result.stdout[-2000:] or result.stderr[-2000:]]
    raise BidsValidationError(
        f"{bids_dir} failed BIDS validation ({len(messages)} errors), e.g. {messages[:5]}; "
        "fix the dataset or pass --skip-bids-validation"
    )


def read_filters(path: Path | None) -> dict[str, dict[str, Any]]:
    """Load ``--bids-filter-file``: ``{"T1w": {"acquisition": "mprage"}, "pet": {...}}``."""
    if path is None:
        return {}
    try:
        filters = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read filter file {path}: {exc}") from exc
    except ValueError as exc:
        raise UsageError(f"filter file {path} is not valid JSON: {exc}") from exc
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise UsageError(f"filter file {path} must map a contrast name to an object of PyBIDS queries")
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise UsageError(f"filter file {path}: unknown keys {sorted(unknown)}; use {list(FILTER_KEYS)}")
    return filters


def _natural_key(text: str | None) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text or ""))


def _session_number(label: str | None) -> float | None:
    digits = re.findall(r"\d+", label or "")
    return float(digits[-1]) if digits else None


def _choose_scan(files: list) -> Path:
    """Method.md rule: prefer a scan without ``run-``, else the finest voxel spacing."""
    import nibabel as nib

    def spacing(f) -> float:
        try:
            return float(max(nib.load(f.path).header.get_zooms()[:3]))
        except Exception:  # unreadable files are reported by preprocessing, with their name
            return float("inf")

    without_run = [f for f in files if "run" not in f.get_entities()]
    pool = without_run or files
    return Path(min(pool, key=lambda f: (spacing(f), _natural_key(f.filename))).path)


def _has_sidecar(layout, path: Path) -> bool:
    """A sidecar next to the scan or inherited from a parent folder (BIDS inheritance)."""
    try:
        return bool(layout.get_metadata(str(path)))
    except Exception:  # pybids raises for files it did not index; treat as "no metadata"
        return False


def _nearest_mri_session(session: str | None, with_mri: list[str | None]) -> str | None:
    """The MRI session closest to ``session`` (by session number, else by order; earlier wins ties)."""
    ordered = sorted(with_mri, key=_natural_key)
    target = _session_number(session)
    if target is not None and all(_session_number(s) is not None for s in ordered):
        return min(ordered, key=lambda s: (abs(_session_number(s) - target), _natural_key(s)))
    return ordered[0]


def discover_sessions(config: Config, *, validate: bool | None = None) -> list[Session]:
    """Every selected (subject, session) with its scans and labels."""
    from bids import BIDSLayout

    bids_dir = Path(config.bids_dir)
    check_bids_root(bids_dir)
    if validate if validate is not None else not config.skip_bids_validation:
        run_bids_validator(bids_dir)
    filters = read_filters(config.bids_filter_file)
    layout = BIDSLayout(str(bids_dir), validate=False, derivatives=False)
    subjects = sorted(layout.get_subjects(), key=_natural_key)
    if not subjects:
        raise MissingInputError(f"{bids_dir} contains no subjects that PyBIDS can index")
    if config.participant_labels:
        missing = sorted(set(config.participant_labels) - set(subjects))
        if missing:
            raise NothingSelectedError(f"participant label(s) {missing} match no subject in {bids_dir}")
        subjects = [s for s in subjects if s in set(config.participant_labels)]
    labels = read_labels(bids_dir, config.labels)
    sessions = [s for sub in subjects for s in _subject_sessions(layout, sub, config, filters, labels)]
    if not sessions:
        raise MissingInputError(f"no selected session in {bids_dir} has a {'/'.join(config.contrasts)} MRI scan "
                                "(PET needs an MRI session of the same subject)")
    if config.session_labels:
        sessions = [s for s in sessions if s.session in set(config.session_labels)]
        if not sessions:
            raise NothingSelectedError(f"session label(s) {config.session_labels} match no session with "
                                       f"{config.contrasts} MRI in {bids_dir}")
    return sessions


def _subject_sessions(layout, subject: str, config: Config, filters: dict, labels: LabelTable) -> list[Session]:
    extensions = [".nii", ".nii.gz"]
    session_ids = sorted(layout.get_sessions(subject=subject), key=_natural_key) or [None]
    anat_by_session: dict[str | None, dict[str, Path]] = {}
    pet_by_session: dict[str | None, tuple[PetScan, ...]] = {}
    for ses in session_ids:
        query = {"subject": subject, "extension": extensions}
        if ses is not None:
            query["session"] = ses
        anat = {}
        for contrast in config.contrasts:
            files = layout.get(datatype="anat", suffix=contrast, **query, **filters.get(contrast, {}))
            if files:
                anat[contrast] = _choose_scan(files)
        pets = layout.get(datatype="pet", suffix="pet", **query, **filters.get("pet", {}))
        anat_by_session[ses] = anat
        pet_by_session[ses] = tuple(
            PetScan(Path(f.path), str(f.get_entities().get("tracer", "unknown")))
            for f in sorted(pets, key=lambda f: _natural_key(f.filename))
        )
    with_mri = [s for s in session_ids if anat_by_session[s]]
    records = []
    for ses in session_ids:
        anat, pets = anat_by_session[ses], pet_by_session[ses]
        mri_session = ses
        if not anat and pets and with_mri:
            mri_session = _nearest_mri_session(ses, with_mri)
            anat = anat_by_session[mri_session]
            log.info("sub-%s ses-%s has PET but no MRI: using the MRI of ses-%s", subject, ses, mri_session)
        if not anat and not pets:
            continue
        if not anat:
            log.warning("sub-%s ses-%s has PET but no MRI in any session: skipped", subject, ses)
            continue
        for path in [*anat.values(), *(p.path for p in pets)]:
            if not _has_sidecar(layout, path):
                log.warning("%s has no JSON sidecar: processed without its acquisition metadata", path)
        value = labels.lookup(subject, ses)
        records.append(
            Session(
                subject=subject,
                session=ses,
                anat=anat,
                mri_session=mri_session,
                pet=pets,
                centiloid=value.centiloid if value else None,
                label=value.label if value else None,
            )
        )
    return records


def require_labels(sessions: list[Session], config: Config) -> list[Session]:
    """Group level: the labelled sessions; clear errors when labels are missing or unusable."""
    labels = read_labels(Path(config.bids_dir), config.labels)
    wanted = config.labels.label_column or config.labels.centiloid_column
    if not labels.columns_found:
        raise MissingInputError(
            f"no label column {wanted!r} in participants.tsv, sub-*/sub-*_sessions.tsv or phenotype/*.tsv "
            f"of {config.bids_dir} (set --centiloid-column or --label-column)"
        )
    labelled = [s for s in sessions if s.label is not None]
    unlabelled = len(sessions) - len(labelled)
    if unlabelled:
        log.warning("%d session(s) have no amyloid label and are excluded from training", unlabelled)
    if not labelled:
        raise DataError(f"none of the {len(sessions)} selected sessions has an amyloid label ({wanted!r})")
    return labelled
