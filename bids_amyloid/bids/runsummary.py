"""The participant-level run summary: every scan with what was done with it, and the MRI-PET pairing.

``logs/participant-<tag>_scans.tsv``: one row per scan considered (used, skipped with the reason,
or failed with the error), and ``logs/participant-<tag>_pairing.tsv``: one row per PET session
(the MRI session it was paired with, the gap in days and where the dates came from).
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from bids_amyloid.bids.records import Discovery
from bids_amyloid.bids.tables import Column, write_table

log = logging.getLogger("bids_amyloid.participant")

SCAN_COLUMNS = {
    "participant_id": Column("BIDS subject label with 'sub-'."),
    "session_id": Column("Session the scan belongs to, with 'ses-' (n/a without sessions)."),
    "kind": Column("MRI contrast the scan was read as, or 'pet'."),
    "tracer": Column("Amyloid tracer family of a PET (n/a for MRI or a skipped PET)."),
    "file": Column("The scan, relative to the input dataset."),
    "status": Column("What the run did with the scan.", levels={
        "used": "processed", "skipped": "left out (see reason)", "failed": "its session failed (see reason)"}),
    "reason": Column("Why it was skipped or failed, or how it was read (n/a: nothing to say)."),
}
PAIRING_COLUMNS = {
    "participant_id": Column("BIDS subject label with 'sub-'."),
    "pet_session_id": Column("Session of the PET scan(s)."),
    "tracers": Column("Amyloid tracer families of the session's PET (comma separated)."),
    "mri_session_id": Column("MRI session paired with the PET (n/a: none close enough; the PET is not used)."),
    "gap_days": Column("Days between the PET and the MRI session (n/a when unknown).", units="day"),
    "dates_from": Column("Where the session dates came from: same session, acq_time (sessions.tsv or scans.tsv), "
                         "day label (ses-d0129), month label (ses-M006) or session order (no dates: gap unknown)."),
}


def _rel(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def scan_rows(found: Discovery, bids_dir: Path, failures: dict[str, str], aliases: dict[Path, str]) -> list[dict]:
    rows, seen = [], set()
    for s in found.sessions:
        status, reason = ("failed", failures[s.key]) if s.key in failures else ("used", None)
        ses = f"ses-{s.session}" if s.session else None
        for contrast, path in s.anat.items():
            note = aliases.get(Path(path))
            if s.borrows_mri:
                note = "; ".join(filter(None, [note, f"MRI of ses-{s.mri_session} for this session's PET"]))
            rows.append(dict(participant_id=f"sub-{s.subject}", session_id=ses, kind=contrast, tracer=None,
                             file=_rel(path, bids_dir), status=status, reason=reason or note or None))
            seen.add((s.key, Path(path)))
        for scan in s.pet:
            rows.append(dict(participant_id=f"sub-{s.subject}", session_id=ses, kind="pet", tracer=scan.tracer,
                             file=_rel(scan.path, bids_dir), status=status,
                             reason=reason or f"tracer {scan.label!r} from {scan.tracer_source}"))
    for k in found.skipped:
        rows.append(dict(participant_id=f"sub-{k.subject}", session_id=f"ses-{k.session}" if k.session else None,
                         kind=k.kind, tracer=None, file=_rel(k.path, bids_dir), status="skipped", reason=k.reason))
    return rows


def pairing_rows(found: Discovery) -> list[dict]:
    return [dict(participant_id=f"sub-{p.subject}", pet_session_id=f"ses-{p.pet_session}" if p.pet_session else None,
                 tracers=",".join(p.tracers), mri_session_id=f"ses-{p.mri_session}" if p.mri_session else None,
                 gap_days=None if p.gap_days is None else round(p.gap_days, 1), dates_from=p.date_source)
            for p in found.pairings]


def write_run_summary(paths: tuple[Path, Path], found: Discovery, bids_dir: Path, failures: dict[str, str],
                      aliases: dict[Path, str]) -> None:
    """Write both tables and log the summary (sessions, PET used, what was skipped and why)."""
    scans_path, pairing_path = paths
    rows = scan_rows(found, bids_dir, failures, aliases)
    write_table(scans_path, rows, SCAN_COLUMNS)
    write_table(pairing_path, pairing_rows(found), PAIRING_COLUMNS)
    used_pet = sum(1 for r in rows if r["kind"] == "pet" and r["status"] == "used")
    skipped = Counter(_reason_kind(r["reason"]) for r in rows if r["status"] == "skipped")
    log.info("run summary: %d session(s), %d failed; %d PET scan(s) used; %d scan(s) skipped%s", len(found.sessions),
             len(failures), used_pet, sum(skipped.values()),
             (": " + ", ".join(f"{n} {why}" for why, n in skipped.most_common())) if skipped else "")
    log.info("every scan and why it was used or not: %s; MRI-PET pairing: %s", scans_path, pairing_path)


def _reason_kind(reason: str | None) -> str:
    text = (reason or "").split(":")[0].split("(")[0].strip()
    for key in ("non-amyloid tracer", "unrecognised tracer", "another"):
        if text.startswith(key):
            return {"another": "extra run"}.get(key, key)
    return text or "other"
