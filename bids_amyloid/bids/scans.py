"""Which files of a session are its MRI contrasts and its amyloid PET, and which run is used.

MRI contrasts as datasets name them (each alias logged; a ``--bids-filter-file`` entry with a
``suffix`` replaces the default query of its contrast):

| contrast | files |
|---|---|
| T1w | ``_T1w`` |
| T2w | ``_T2w`` except ``acq-*FLAIR*`` |
| FLAIR | ``_FLAIR``, and ``_T2w`` with ``acq-*FLAIR*`` (DLBS stores FLAIR so) |
| T2starw | ``_T2starw``, and the deprecated ``_T2star`` (OASIS-3) |

Runs (method rule): readable images first, then one without ``run-``, else the finest spacing.

PET: each image's tracer is identified (``bids.tracers``); non-amyloid and unrecognised tracers
and unreadable files are skipped with their reason. Of several runs of one tracer family in a
session, the run used is the later one among those that cover the SUVR window (a 3-D image counts
as covering it: it is used as it is); the others are reported as skipped.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bids_amyloid.bids import tracers
from bids_amyloid.bids.pettiming import MIN_WINDOW_COVERAGE, read_timing, window_frames
from bids_amyloid.bids.records import PetScan, SkippedScan
from bids_amyloid.bids.sidecars import read_sidecar

log = logging.getLogger("bids_amyloid.bids")

EXTENSIONS = [".nii", ".nii.gz"]
CONTRAST_QUERIES: dict[str, tuple[dict[str, Any], ...]] = {
    "T1w": ({"suffix": "T1w"},),
    "T2w": ({"suffix": "T2w", "_flair": False},),
    "FLAIR": ({"suffix": "FLAIR"}, {"suffix": "T2w", "_flair": True}),
    "T2starw": ({"suffix": "T2starw"}, {"suffix": "T2star"}),
}
"""Default PyBIDS queries per contrast; ``_flair`` keeps (True) or drops (False) ``acq-*FLAIR*``."""


def _natural_key(text: str | None) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text or ""))


def _is_flair(f) -> bool:
    return "flair" in str(f.get_entities().get("acquisition", "")).lower()


def _header(path: str) -> tuple[Any, str | None]:
    """(nibabel image, None) or (None, why it cannot be read)."""
    import nibabel as nib

    try:
        if path.endswith(".gz"):
            with open(path, "rb") as handle:
                if handle.read(2) != b"\x1f\x8b":
                    return None, "named .gz but not gzip data (an HTML page or a failed download?)"
        return nib.load(path), None
    except Exception as exc:  # nibabel raises many types for unreadable headers
        return None, f"not a readable NIfTI image ({type(exc).__name__})"


def contrast_files(layout, contrast: str, query: dict, user_filter: dict | None) -> list:
    """The files of one contrast (the aliases of the module docstring, or the user's query)."""
    alternatives = [user_filter] if user_filter and "suffix" in user_filter else \
        [{**q, **(user_filter or {})} for q in CONTRAST_QUERIES[contrast]]
    found = {}
    for alt in alternatives:
        flair = alt.get("_flair")
        pybids_query = {k: v for k, v in alt.items() if not k.startswith("_")}
        for f in layout.get(datatype="anat", extension=EXTENSIONS, **query, **pybids_query):
            if flair is None or _is_flair(f) == flair:
                found[f.path] = f
    return [found[p] for p in sorted(found, key=lambda p: _natural_key(Path(p).name))]


def alias_note(f, contrast: str) -> str | None:
    """How a file was read as ``contrast`` when its suffix differs (for the log and the summary)."""
    suffix = f.get_entities().get("suffix")
    if suffix == contrast:
        return None
    if suffix == "T2star":
        return "deprecated suffix T2star read as T2starw"
    return f"{suffix} with acq-{f.get_entities().get('acquisition')} read as {contrast}"


def choose_mri(files: list, contrast: str, subject: str, session: str | None) -> tuple[Path | None, list[SkippedScan]]:
    """The method rule (module docstring); the other candidates are returned as skipped."""
    readable, skipped = [], []
    for f in files:
        img, problem = _header(f.path)
        if img is None:
            skipped.append(SkippedScan(subject, session, Path(f.path), f"unreadable: {problem}", contrast))
        else:
            readable.append((f, float(max(img.header.get_zooms()[:3]))))
    if not readable:
        return (Path(files[0].path) if files else None), skipped[1:] if files else skipped
    without_run = [(f, z) for f, z in readable if "run" not in f.get_entities()]
    pool = without_run or readable
    chosen, zoom = min(pool, key=lambda fz: (fz[1], _natural_key(fz[0].filename)))
    why = "no run- entity" if without_run else f"finest voxel spacing ({zoom:g} mm)"
    for f, _ in readable:
        if f is not chosen:
            skipped.append(SkippedScan(subject, session, Path(f.path), f"another {contrast} was used ({why})", contrast))
    if len(files) > 1:
        log.info("sub-%s%s %s: %d candidates; using %s (%s)", subject, f" ses-{session}" if session else "",
                 contrast, len(files), chosen.filename, why)
    return Path(chosen.path), skipped


@dataclass(frozen=True)
class _Candidate:
    scan: PetScan
    covers: bool
    note: str


def pet_scans(layout, root: Path, files: list, subject: str, session: str | None, config
              ) -> tuple[list[PetScan], list[SkippedScan]]:
    """Amyloid PET scans of one session (one per tracer family), and what was skipped and why."""
    by_family: dict[str, list[_Candidate]] = {}
    skipped: list[SkippedScan] = []
    where = f"sub-{subject}" + (f" ses-{session}" if session else "")
    for f in sorted(files, key=lambda f: _natural_key(f.filename)):
        path = Path(f.path)
        img, problem = _header(f.path)
        if img is None:
            log.warning("%s: %s: skipped", path, problem)
            skipped.append(SkippedScan(subject, session, path, f"unreadable: {problem}"))
            continue
        sidecar = read_sidecar(path, root)
        for issue in sidecar.problems:
            log.warning("%s (ignored)", issue)
        ident = tracers.identify(f.get_entities(), sidecar.values, config.pet_tracer_map)
        if ident.conflicts:
            log.warning("%s: tracer %r from %s, but %s; using the %s", path, ident.match.label, ident.source,
                        ", ".join(ident.conflicts), ident.source)
        match = ident.match
        if match.non_amyloid:
            log.info("%s: non-amyloid tracer %s: skipped", path.name, match.non_amyloid)
            skipped.append(SkippedScan(subject, session, path, f"non-amyloid tracer {match.non_amyloid}"))
            continue
        if match.family is None:
            label = match.label or "(none named)"
            log.warning("%s: unrecognised tracer %s: skipped (map it with --pet-tracer %s=FAMILY, FAMILY one of "
                        "%s)", path, label, match.label or "LABEL", ", ".join(t.key for t in tracers.FAMILIES))
            skipped.append(SkippedScan(subject, session, path, f"unrecognised tracer {label} (--pet-tracer)"))
            continue
        volumes = int(img.shape[3]) if len(img.shape) > 3 else 1
        timing, problems = read_timing(sidecar.values, path, volumes)
        window = suvr_window(match.family.key, config.preprocess.suvr_window)
        scan = PetScan(path, match.family.key, match.label, ident.source, volumes, timing, tuple(problems), window,
                       str(f.get_entities().get("run")) if "run" in f.get_entities() else None, sidecar.own)
        by_family.setdefault(scan.tracer, []).append(_covers(scan))
    chosen = []
    for family, candidates in by_family.items():
        pick = _choose_run(candidates)
        chosen.append(pick.scan)
        for other in candidates:
            if other is not pick:
                skipped.append(SkippedScan(subject, session, other.scan.path,
                                           f"another {family} run was used ({pick.scan.path.name}; {other.note})"))
        if len(candidates) > 1:
            log.info("%s: %d %s PET runs; using %s (%s)", where, len(candidates), family, pick.scan.path.name,
                     pick.note)
    return chosen, skipped


def suvr_window(family: str, overrides: dict[str, Any]) -> tuple[float, float]:
    """The SUVR window of a family: ``--suvr-window`` for it, else for 'all', else the family default."""
    chosen = overrides.get(family) or overrides.get("all") or tracers.family(family).suvr_window_min
    return float(chosen[0]), float(chosen[1])


def _covers(scan: PetScan) -> _Candidate:
    if scan.volumes == 1:
        return _Candidate(scan, True, "3-D image, used as it is")
    if scan.timing is None:
        return _Candidate(scan, False, "4-D without usable frame timing")
    _, coverage = window_frames(scan.timing, scan.window_min)
    return _Candidate(scan, coverage >= MIN_WINDOW_COVERAGE, f"covers {coverage:.0%} of the window")


def _choose_run(candidates: list[_Candidate]) -> _Candidate:
    """The later run among those that cover the window (else among all: its error names the file)."""
    pool = [c for c in candidates if c.covers] or candidates
    return max(pool, key=lambda c: (_natural_key(c.scan.run or ""), _natural_key(c.scan.path.name)))
