#!/usr/bin/env python3
"""Print a Centiloid threshold that gives the group level of the docker smoke test enough subjects
per class: 2-fold cross-validation needs 4 subjects of each class (outer test fold + inner
validation part). The app's default (20.6) is kept when the cohort allows it; else the cohort is
split at its 4th-highest subject. The synthetic labels are random: only the mechanics are tested.

usage: smoke_threshold.py BIDS_DIR [--per-class 4] [--default 20.6]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def subject_maxima(bids_dir: Path) -> dict[str, float]:
    best: dict[str, float] = {}
    for tsv in sorted(bids_dir.glob("sub-*/sub-*_sessions.tsv")):
        with tsv.open(newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                value = {k.lower(): v for k, v in row.items()}.get("centiloid", "n/a")
                if value not in ("n/a", "", None):
                    best[tsv.parent.name] = max(best.get(tsv.parent.name, float("-inf")), float(value))
    return best


def choose(values: list[float], per_class: int, default: float) -> float:
    top = sorted(values, reverse=True)
    if len(top) < 2 * per_class:
        raise ValueError(f"{len(top)} labelled subjects; the group level needs >= {2 * per_class}")
    if per_class <= sum(v > default for v in top) <= len(top) - per_class:
        return default
    return round((top[per_class - 1] + top[per_class]) / 2, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bids_dir", type=Path)
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--default", type=float, default=20.6)
    args = ap.parse_args()
    try:
        print(choose(list(subject_maxima(args.bids_dir).values()), args.per_class, args.default))
    except ValueError as exc:
        print(f"smoke_threshold: {exc} (raise SMOKE_N_SUBJECTS)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
