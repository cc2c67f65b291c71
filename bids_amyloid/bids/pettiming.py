"""PET frame timing as real sidecars give it, checked against the image, and the SUVR window.

Sources, first usable wins: sidecar ``FrameTimesStart`` / ``FrameDuration`` (PET-BIDS), the draft
``Time.FrameTimes`` (or ``FrameTimes.FrameTimes``) ``{Labels, Units, Values}`` object, the
``_pet.tsv`` frame table next to the image (columns like ``frame_start`` + ``frame_end`` or
``frame_duration``). Every correction is kept as a note and written into the outputs:

* zero-length frames beyond the image's volumes are dropped (a static image whose sidecar lists
  a second frame of duration 0);
* cumulative END times stored as ``FrameDuration`` (each "duration" equals the next start) are
  converted to durations;
* missing starts are rebuilt from the durations (contiguous from ``ScanStart``, else 0);
* times are made relative to the injection when ``InjectionStart`` is given.

A frame is used for the SUVR window when at least half of it lies inside the window; the
acquisition covers the window when the used frames span at least :data:`MIN_WINDOW_COVERAGE` of it.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bids_amyloid.bids.records import FrameTiming
from bids_amyloid.bids.sidecars import lookup, number, numbers

MIN_WINDOW_COVERAGE = 0.8
"""Fraction of the SUVR window the used frames must cover."""
TOLERANCE_S = 1.0
"""Seconds of slack when comparing frame boundaries."""
_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 0.001, "min": 60.0, "minute": 60.0,
          "minutes": 60.0}


def read_timing(sidecar: Mapping[str, Any], image: Path, volumes: int) -> tuple[FrameTiming | None, list[str]]:
    """The frame timing of a PET image with ``volumes`` volumes, or None and why not."""
    problems: list[str] = []
    sources = (("FrameTimesStart/FrameDuration", _standard(sidecar)), ("Time.FrameTimes", _draft(sidecar)),
               ("_pet.tsv", _tsv(_frame_table(image))))
    for name, found in sources:
        if found is None:
            continue
        starts, durations, notes = found
        timing, problem = _checked(starts, durations, volumes, sidecar, name, notes)
        if timing is not None:
            return timing, problems
        problems.append(f"{name}: {problem}")
    if not problems:
        problems.append("no frame timing (FrameTimesStart/FrameDuration, Time.FrameTimes or a _pet.tsv frame table)")
    return None, problems


def _standard(meta: Mapping[str, Any]):
    starts, durations = numbers(lookup(meta, "FrameTimesStart")), numbers(lookup(meta, "FrameDuration"))
    if starts is None and durations is None:
        return None
    return starts, durations, []


def _draft(meta: Mapping[str, Any]):
    block = lookup(meta, "Time.FrameTimes")
    if isinstance(block, Mapping) and "Values" not in block:
        block = lookup(block, "FrameTimes")  # OASIS-3: {"FrameTimes": {"FrameTimes": {...}}}
    if block is None:
        block = lookup(meta, "FrameTimes.FrameTimes")
    if not isinstance(block, Mapping):
        return None
    rows = lookup(block, "Values")
    if not isinstance(rows, list) or not rows:
        return None
    rows = [r if isinstance(r, list) else [r] for r in rows]
    labels = [str(x).lower() for x in (lookup(block, "Labels") or [])]
    units = lookup(block, "Units") or []
    units = [units] * len(labels or rows[0]) if isinstance(units, str) else list(units)
    columns = labels or (["start", "end"] if len(rows[0]) == 2 else ["start", "end", "duration"][: len(rows[0])])

    def column(word: str) -> list[float | None] | None:
        for i, name in enumerate(columns):
            if word in name:
                scale = _UNITS.get(str(units[i]).strip().lower(), 1.0) if i < len(units) else 1.0
                return [None if number(r[i] if i < len(r) else None) is None else number(r[i]) * scale for r in rows]
        return None

    starts, durations, ends = column("start"), column("dur"), column("end") or column("stop")
    if durations is None and starts is not None and ends is not None:
        durations = [None if s is None or e is None else e - s for s, e in zip(starts, ends)]
    return starts, durations, []


def _frame_table(image: Path) -> Path | None:
    name = Path(image).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            table = Path(image).with_name(name[: -len(ext)] + ".tsv")
            return table if table.is_file() else None
    return None


def _tsv(table: Path | None):
    if table is None:
        return None
    try:
        with open(table, newline="", encoding="utf-8", errors="replace") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except OSError:
        return None
    if not rows:
        return None
    names = {k.lower().strip(): k for k in rows[0] if k}

    def column(*words: str) -> list[float | None] | None:
        for low, original in names.items():
            if any(w in low for w in words):
                scale = 60.0 if "min" in low else 1.0
                return [None if number(r.get(original)) is None else number(r.get(original)) * scale for r in rows]
        return None

    starts = column("start")
    durations = column("dur")
    ends = column("end", "stop")
    if durations is None and starts is not None and ends is not None:
        durations = [None if s is None or e is None else e - s for s, e in zip(starts, ends)]
    if starts is None and durations is None:
        return None
    return starts, durations, [f"frame times from {table.name}"]


def _checked(starts, durations, volumes: int, meta, source: str, notes: list[str]):
    notes = list(notes)
    if durations is not None and len(durations) > volumes:  # [600, 0] for one static volume
        keep = [i for i, d in enumerate(durations) if d != 0]
        if len(keep) == volumes:
            if starts is not None and len(starts) == len(durations):
                starts = [starts[i] for i in keep]
            notes.append(f"dropped {len(durations) - volumes} zero-length frame(s) listed beyond the "
                         f"{volumes} volume(s) of the image")
            durations = [durations[i] for i in keep]
    for what, values in (("start times", starts), ("durations", durations)):
        if values is not None and len(values) != volumes:
            return None, f"{len(values)} frame {what} for {volumes} image volume(s)"
        if values is not None and any(v is None for v in values):
            return None, f"frame {what} contain non-numeric values (e.g. 'n/a')"
    if starts is None:
        first = number(lookup(meta, "ScanStart")) or 0.0
        starts, clock = [], first
        for d in durations:
            starts.append(clock)
            clock += d
        notes.append(f"frame starts missing: frames assumed contiguous from {first:g} s")
    if durations is None:
        if volumes < 2:
            return None, "one frame start but no duration"
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        durations = gaps + [gaps[-1]]
        notes.append("frame durations missing: taken from the start differences (last frame as the one before)")
    if len(starts) > 1 and _cumulative_ends(starts, durations):
        durations = [d - s for s, d in zip(starts, durations)]
        notes.append("FrameDuration held cumulative end times; converted to durations")
    injection = number(lookup(meta, "InjectionStart"))
    if injection:
        starts = [s - injection for s in starts]
        notes.append(f"times shifted by InjectionStart ({injection:g} s) to be relative to the injection")
    if any(d <= 0 for d in durations):
        return None, "frame durations must be positive"
    if any(b < a + da - TOLERANCE_S for a, da, b in zip(starts, durations, starts[1:])):
        return None, "frames overlap or are not in chronological order"
    return FrameTiming(tuple(float(s) for s in starts), tuple(float(d) for d in durations), source, tuple(notes)), ""


def _cumulative_ends(starts, durations) -> bool:
    """Each 'duration' equals the next frame's start, where start + duration does not."""
    ends_match = all(abs(d - s_next) <= TOLERANCE_S for d, s_next in zip(durations, starts[1:]))
    sums_match = all(abs(s + d - s_next) <= TOLERANCE_S for s, d, s_next in zip(starts, durations, starts[1:]))
    return ends_match and not sums_match


def window_frames(timing: FrameTiming, window_min: tuple[float, float]) -> tuple[list[int], float]:
    """Indices of the frames used for the window (at least half inside) and the window coverage."""
    lo, hi = window_min[0] * 60.0, window_min[1] * 60.0
    used, covered = [], 0.0
    for i, (start, duration) in enumerate(zip(timing.starts, timing.durations)):
        overlap = max(0.0, min(start + duration, hi) - max(start, lo))
        if overlap >= 0.5 * duration:
            used.append(i)
            covered += overlap
    return used, covered / (hi - lo)
