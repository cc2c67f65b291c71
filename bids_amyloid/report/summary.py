"""What a run shows and where to look next, in plain words (the end of ``scripts/example.sh``).

``python -m bids_amyloid.report.summary OUTPUT_DIR [--timings FILE]``

The first line says whether the models are TESTING ONLY (the random 'tiny' backbone); then the
PET teacher's and the MRI-only student's per-fold AUC on held-out subjects, the predictions, the
time of each step (``--timings``: a TSV of ``step<TAB>seconds``), the three files a user opens
next, and how to run the real model.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.bids.tables import read_table

RULE = "=" * 78


def _testing_only(layout: Derivatives) -> bool:
    for folder in layout.bundles():
        try:
            if json.loads((folder / "bundle.json").read_text())["backbone"]["testing_only"]:
                return True
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return False


def _auc_lines(layout: Derivatives, testing: bool) -> list[str]:
    if not layout.cv_metrics.exists():
        return []
    metrics = read_table(layout.cv_metrics, text=("fold",))
    folds = metrics[metrics["fold"].astype(str) == "mean"]
    n_folds = int(metrics["fold"].astype(str).str.isdigit().groupby(metrics["model"]).sum().max() or 0)
    described = {"teacher": "PET teacher (reads PET + MRI)", "student": "MRI-only student"}
    lines = [f"What the run shows (per-fold AUC on held-out subjects, {n_folds} folds; chance = 0.5):"]
    for row in folds.sort_values("model", ascending=False).itertuples():
        sd = "" if math.isnan(row.auc_fold_sd) else f" +- {row.auc_fold_sd:.3f}"
        note = ""
        if row.model == "teacher":
            note = "  <- PET carries the amyloid signal: the teacher learns it" if row.auc >= 0.8 else \
                "  <- near chance: see the group report"
        elif testing:
            note = "  <- random tiny backbone: no meaning"
        lines.append(f"  {row.contrast:8s} {described.get(row.model, row.model):30s} AUC {row.auc:.3f}{sd}  "
                     f"({row.n} sessions){note}")
    return lines


def _timing_lines(timings: Path | None) -> list[str]:
    if timings is None or not Path(timings).exists():
        return []
    rows = [line.split("\t") for line in Path(timings).read_text().splitlines() if "\t" in line]
    total = sum(float(s) for _, s in rows)
    install = sum(float(s) for name, s in rows if name.startswith("install"))
    lines = ["Time per step:"] + [f"  {name:46s} {float(s):6.0f} s" for name, s in rows]
    if install:
        lines.append(f"  {'total without the install':46s} {total - install:6.0f} s")
    return lines + [f"  {'total':46s} {total:6.0f} s"]


def summarise(out_dir: Path, timings: Path | None = None) -> str:
    layout = Derivatives(out_dir)
    testing = _testing_only(layout)
    lines = []
    if testing:
        lines += [RULE, "TESTING ONLY: these models use the random 'tiny' backbone (--sloppy). Their accuracy",
                  "figures only show that the software runs end to end, not how well MRI predicts amyloid.", RULE]
    lines += _auc_lines(layout, testing)
    predictions = layout.all_predictions
    if predictions.exists():
        table = read_table(predictions)
        positive = int((table["label"] == "positive").sum())
        lines.append(f"MRI-only predictions: {len(table)} (session, contrast) rows, {positive} predicted positive"
                     + (" (testing only)" if testing else ""))
    lines += _timing_lines(timings)
    reports = layout.participant_reports()
    opened = [("group report", layout.group_report),
              ("a participant report", reports[0] if reports else None), ("predictions table", predictions)]
    shown = [(name, path) for name, path in opened if path is not None and path.exists()]
    if shown:
        lines.append("Open next:")
        lines += [f"  {name:22s} {path}" for name, path in shown]
    if testing:
        lines += ["The real model (BiomedCLIP ViT-B/16):",
                  "  bids_amyloid fetch-weights WEIGHTS/biomedclip   # once, on a machine with internet",
                  "  then the same commands without --sloppy, with --backbone-weights WEIGHTS/biomedclip",
                  "  (group level: a GPU, --device cuda; see README.md)"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bids_amyloid.report.summary", description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--timings", type=Path, help="TSV of step<TAB>seconds to print")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(summarise(args.output_dir, args.timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
