"""Discover the sessions to process with PyBIDS.

The PyBIDS index lives in memory (never inside the read-only dataset, never on a shared
filesystem's SQLite) and holds no metadata (one broken JSON file stops a PyBIDS metadata index;
sidecars are read by ``bids.sidecars``). One :class:`Session` per (subject, session) that has MRI
or amyloid PET; a session with PET but no MRI is paired with the nearest MRI session of the same
subject within ``--mri-pet-max-days`` (``bids.pairing``). Which files count as which contrast,
which PET is amyloid and which run is used: ``bids.scans``. What is left out is returned with its
reason (:class:`Discovery`).
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

from bids_amyloid.bids import pairing, scans
from bids_amyloid.bids.labels import LabelTable, read_labels, report_unmatched
from bids_amyloid.bids.records import Discovery, Pairing, Session, SkippedScan
from bids_amyloid.bids.sidecars import read_sidecar
from bids_amyloid.config import Config
from bids_amyloid.errors import (
    BidsValidationError,
    DataError,
    MissingInputError,
    NothingSelectedError,
    UsageError,
    read_option_json,
)

log = logging.getLogger("bids_amyloid.bids")

FILTER_KEYS = ("T1w", "T2w", "FLAIR", "T2starw", "pet")


def check_bids_root(bids_dir: Path) -> None:
    if not bids_dir.exists():
        raise UsageError(f"BIDS_DIR {bids_dir} does not exist")
    if not bids_dir.is_dir():
        raise UsageError(f"BIDS_DIR {bids_dir} is not a folder")
    if not (bids_dir / "dataset_description.json").is_file():
        nested = sorted(bids_dir.glob("sub-*/ses-*/dataset_description.json"))
        hint = ""
        if nested:
            hint = (f"; {len(nested)} session folder(s) have one (e.g. {nested[0].relative_to(bids_dir)}), as the OASIS "
                    "download script leaves them: add one at the top of the dataset, e.g. "
                    '{"Name": "OASIS-3", "BIDSVersion": "1.10.0"}, and run with --skip-bids-validation (the '
                    "per-session copies are not BIDS)")
        raise BidsValidationError(f"{bids_dir} is not a BIDS dataset: dataset_description.json is missing{hint}")
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
    filters = read_option_json(path, "--bids-filter-file")
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise UsageError(f"filter file {path} must map a contrast name to an object of PyBIDS queries")
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise UsageError(f"filter file {path}: unknown keys {sorted(unknown)}; use {list(FILTER_KEYS)}")
    return filters


def _natural_key(text: str | None) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text or ""))


def _check_names(layout, bids_dir: Path) -> dict[Path, str]:
    """Warn about image files whose names are not BIDS (read by folder, or not at all); notes for the summary."""
    indexed = {Path(f.path) for f in layout.get(extension=scans.EXTENSIONS)}
    images = [p for p in bids_dir.glob("sub-*/**/*.nii*") if p.name.endswith((".nii", ".nii.gz"))]
    sess = [p for p in images if "_sess-" in p.name]
    if sess:
        log.warning("%d file name(s) use 'sess-' where BIDS has 'ses-' (e.g. %s); read with the session of their "
                    "folder. Rename them (sess- -> ses-) to make the dataset valid BIDS", len(sess), sess[0])
    missed = [p for p in images if p not in indexed and "sourcedata" not in p.parts and "derivatives" not in p.parts]
    if missed:
        log.warning("%d image file(s) are not BIDS names and were not indexed (e.g. %s): rename them "
                    "sub-<label>[_ses-<label>][_<entity>-<value>]_<suffix>.nii.gz to have them used", len(missed), missed[0])
    return {p: "named sess- instead of ses-: read with the session of its folder" for p in sess}


def discover(config: Config, *, validate: bool | None = None) -> Discovery:
    """Every selected (subject, session) with its scans and labels, and what was left out."""
    from bids import BIDSLayout, BIDSLayoutIndexer

    bids_dir = Path(config.bids_dir)
    check_bids_root(bids_dir)
    if validate if validate is not None else not config.skip_bids_validation:
        run_bids_validator(bids_dir)
    filters = read_filters(config.bids_filter_file)
    layout = BIDSLayout(str(bids_dir), validate=False, derivatives=False,
                        indexer=BIDSLayoutIndexer(validate=False, index_metadata=False))
    name_notes = _check_names(layout, bids_dir)
    subjects = sorted(layout.get_subjects(), key=_natural_key)
    if not subjects:
        raise MissingInputError(f"{bids_dir} contains no subjects that PyBIDS can index")
    labels = read_labels(bids_dir, config.labels)
    if config.labels.labels_file is not None:
        known = {(s, t) for s in subjects for t in layout.get_sessions(subject=s) or [None]}
        report_unmatched(labels, known, config.labels.labels_file)
    if config.participant_labels:
        missing = sorted(set(config.participant_labels) - set(subjects))
        if missing:
            raise NothingSelectedError(f"participant label(s) {missing} match no subject in {bids_dir}")
        subjects = [s for s in subjects if s in set(config.participant_labels)]
    found = Discovery([], notes=name_notes)
    for sub in subjects:
        part = _subject_sessions(layout, sub, config, filters, labels)
        found.sessions.extend(part.sessions)
        found.skipped.extend(part.skipped)
        found.pairings.extend(part.pairings)
        found.notes.update(part.notes)
    if not found.sessions:
        raise MissingInputError(f"no selected session in {bids_dir} has a {'/'.join(config.contrasts)} MRI scan "
                                "(PET needs an MRI session of the same subject)")
    if config.session_labels:
        wanted = set(config.session_labels)
        found = Discovery([s for s in found.sessions if s.session in wanted],
                          [k for k in found.skipped if k.session in wanted],
                          [p for p in found.pairings if p.pet_session in wanted], found.notes)
        if not found.sessions:
            raise NothingSelectedError(f"session label(s) {config.session_labels} match no session with "
                                       f"{config.contrasts} MRI in {bids_dir}")
    return found


def discover_sessions(config: Config, *, validate: bool | None = None) -> list[Session]:
    """The sessions of :func:`discover` (group level needs no more)."""
    return discover(config, validate=validate).sessions


def _session_scans(layout, subject: str, ses: str | None, config: Config, filters: dict,
                   skipped: list[SkippedScan], notes: dict[Path, str]) -> tuple[dict[str, Path], tuple]:
    """The chosen MRI per contrast and the PET scans of one session; passed-over scans go to
    ``skipped``, contrast-alias notes (T2star as T2starw, ...) to ``notes``."""
    query = {"subject": subject, **({"session": ses} if ses is not None else {})}
    anat = {}
    for contrast in config.contrasts:
        files = scans.contrast_files(layout, contrast, query, filters.get(contrast))
        chosen, passed = scans.choose_mri(files, contrast, subject, ses)
        skipped += passed
        if chosen is not None:
            anat[contrast] = chosen
            note = scans.alias_note(next(f for f in files if Path(f.path) == chosen), contrast)
            if note:
                log.info("%s: %s", chosen.name, note)
                notes[chosen] = note
    pet_files = layout.get(datatype="pet", suffix="pet", extension=scans.EXTENSIONS, **query,
                           **filters.get("pet", {}))
    pets, passed = scans.pet_scans(layout, Path(config.bids_dir), pet_files, subject, ses, config)
    skipped += passed
    return anat, tuple(pets)


def _subject_sessions(layout, subject: str, config: Config, filters: dict, labels: LabelTable) -> Discovery:
    bids_dir = Path(config.bids_dir)
    session_ids = sorted(layout.get_sessions(subject=subject), key=_natural_key) or [None]
    anat_by_session: dict[str | None, dict[str, Path]] = {}
    pet_by_session: dict[str | None, tuple] = {}
    skipped: list[SkippedScan] = []
    notes: dict[Path, str] = {}
    for ses in session_ids:
        anat_by_session[ses], pet_by_session[ses] = _session_scans(layout, subject, ses, config, filters,
                                                                   skipped, notes)
    with_mri = [s for s in session_ids if anat_by_session[s]]
    dates = pairing.session_dates(bids_dir, subject, session_ids)
    records, pairs, warned = [], [], set()
    for ses in session_ids:
        anat, pets = anat_by_session[ses], pet_by_session[ses]
        if not anat and not pets:
            continue
        mri_session, gap, source = ses, (0.0 if pets else None), ("same session" if pets else None)
        if not anat:
            if not with_mri:
                log.warning("sub-%s ses-%s has PET but no MRI in any session: skipped", subject, ses)
                skipped += [SkippedScan(subject, ses, p.path, "unpaired: the subject has no MRI session") for p in pets]
                pairs.append(Pairing(subject, ses, tuple(p.tracer for p in pets), None, None, None))
                continue
            mri_session, gap, source, rejected = pairing.nearest_mri_session(ses, with_mri, dates,
                                                                             config.mri_pet_max_days)
            if mri_session is None:
                reason = (f"unpaired: the nearest MRI session (ses-{rejected}) is {gap:.0f} days away "
                          f"(> --mri-pet-max-days {config.mri_pet_max_days:g}; dates from {source})")
                log.warning("sub-%s ses-%s: PET %s", subject, ses, reason)
                skipped += [SkippedScan(subject, ses, p.path, reason) for p in pets]
                pairs.append(Pairing(subject, ses, tuple(p.tracer for p in pets), None, gap, source))
                continue
            anat = anat_by_session[mri_session]
            if gap is None:
                log.warning("sub-%s ses-%s has PET but no MRI: paired with ses-%s by session order (no session "
                            "dates: the gap is unknown and --mri-pet-max-days cannot be checked)", subject, ses,
                            mri_session)
            else:
                log.info("sub-%s ses-%s has PET but no MRI: paired with ses-%s, %.0f days away (dates from %s)",
                         subject, ses, mri_session, gap, source)
        if pets:
            pairs.append(Pairing(subject, ses, tuple(p.tracer for p in pets), mri_session, gap, source))
        bare = [p for p in anat.values() if p not in warned and not read_sidecar(p, bids_dir).own]
        for path in bare + [scan.path for scan in pets if not scan.sidecar]:
            log.warning("%s has no JSON sidecar: processed without its acquisition metadata", path)
            warned.add(path)
        value = labels.lookup(subject, ses)
        records.append(Session(subject=subject, session=ses, anat=anat, mri_session=mri_session, pet=pets,
                               centiloid=value.centiloid if value else None, label=value.label if value else None,
                               mri_gap_days=gap, date_source=source))
    return Discovery(records, skipped, pairs, notes)


def require_labels(sessions: list[Session], config: Config) -> list[Session]:
    """Group level: the labelled sessions; clear errors when labels are missing or unusable."""
    labels = read_labels(Path(config.bids_dir), config.labels)
    wanted = config.labels.label_column or config.labels.centiloid_column
    if not labels.columns_found:
        raise MissingInputError(
            f"no label column {wanted!r} in participants.tsv, sub-*/sub-*_sessions.tsv or phenotype/*.tsv "
            f"of {config.bids_dir} (set --centiloid-column or --label-column, or give --labels-file)"
        )
    labelled = [s for s in sessions if s.label is not None]
    unlabelled = len(sessions) - len(labelled)
    if unlabelled:
        log.warning("%d session(s) have no amyloid label and are excluded from training", unlabelled)
    if not labelled:
        raise DataError(f"none of the {len(sessions)} selected sessions has an amyloid label ({wanted!r})")
    return labelled
