"""Which MRI session goes with a PET session that has none of its own.

Session dates, first source that dates both sessions wins:

1. ``acq_time`` in ``sub-X/sub-X_sessions.tsv``;
2. ``acq_time`` in ``sub-X/ses-Y/sub-X_ses-Y_scans.tsv`` (the session's earliest scan);
3. day labels (``ses-d0129``: days since entry, OASIS-3);
4. month labels (``ses-M006``: months since baseline, Clinica and ADNI; a month is 365.25 / 12 days);
5. else the order of the sessions (the gap is unknown: said in the log).

The PET session is paired with the MRI session nearest in time, at most ``max_days`` away (ties:
the earlier MRI). Without dates the nearest by order is used and the gap is unknown.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

DAY_LABEL = re.compile(r"^d(\d+)$", re.IGNORECASE)
MONTH_LABEL = re.compile(r"^m(\d+)$", re.IGNORECASE)
SESSION_ORDER = "session order"


def _natural_key(text: str | None) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text or ""))


def _acq_day(value: str | None) -> float | None:
    text = (value or "").strip()
    if not text or text.lower() in ("n/a", "na"):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.replace(tzinfo=None)
    return (moment - datetime(1, 1, 1)).total_seconds() / 86400.0


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            return [{(k or "").strip().lower(): (v or "") for k, v in row.items()}
                    for row in csv.DictReader(handle, delimiter="\t")]
    except OSError:
        return []


def session_dates(bids_dir: Path, subject: str, sessions: Sequence[str | None]) -> list[tuple[str, dict]]:
    """``[(source, {session: day})]`` in precedence order (each source dates some of ``sessions``)."""
    bids_dir = Path(bids_dir)
    wanted = [s for s in sessions if s is not None]
    from_sessions: dict[str, float] = {}
    for row in _rows(bids_dir / f"sub-{subject}" / f"sub-{subject}_sessions.tsv"):
        ses = row.get("session_id", "").strip().removeprefix("ses-")
        day = _acq_day(row.get("acq_time"))
        if ses in wanted and day is not None:
            from_sessions[ses] = day
    from_scans: dict[str, float] = {}
    for ses in wanted:
        table = bids_dir / f"sub-{subject}" / f"ses-{ses}" / f"sub-{subject}_ses-{ses}_scans.tsv"
        days = [d for d in (_acq_day(r.get("acq_time")) for r in _rows(table)) if d is not None]
        if days:
            from_scans[ses] = min(days)
    labels_days = {s: float(m.group(1)) for s in wanted if (m := DAY_LABEL.match(s))}
    labels_months = {s: float(round(int(m.group(1)) * 365.25 / 12)) for s in wanted if (m := MONTH_LABEL.match(s))}
    return [("acq_time (sessions.tsv)", from_sessions), ("acq_time (scans.tsv)", from_scans),
            ("day label", labels_days), ("month label", labels_months)]


def nearest_mri_session(pet_session: str | None, mri_sessions: Sequence[str | None], dates: list[tuple[str, dict]],
                        max_days: float) -> tuple[str | None, float | None, str, str | None]:
    """``(mri_session or None, gap_days, date_source, nearest_rejected)`` for one PET session.

    ``nearest_rejected`` names the closest MRI session when every one is more than ``max_days``
    away (the PET is then unpaired).
    """
    for source, days in dates:
        if pet_session in days and all(s in days for s in mri_sessions):
            gaps = sorted(((abs(days[s] - days[pet_session]), days[s], _natural_key(s), s) for s in mri_sessions))
            gap, _, _, best = gaps[0]
            if gap <= max_days:
                return best, gap, source, None
            return None, gap, source, best
    ordered = sorted([*mri_sessions, pet_session], key=_natural_key)
    here = ordered.index(pet_session)
    best = min(mri_sessions, key=lambda s: (abs(ordered.index(s) - here), ordered.index(s)))
    return best, None, SESSION_ORDER, None
