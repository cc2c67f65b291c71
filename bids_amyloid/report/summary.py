"""Print where the results of a run are and its headline numbers (used by scripts/example.sh).

``python -m bids_amyloid.report.summary OUTPUT_DIR``
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def summarise(out_dir: Path) -> str:
    out_dir = Path(out_dir)
    lines = [f"Results in {out_dir}"]
    metrics_path = out_dir / "group" / "desc-cv_metrics.tsv"
    if metrics_path.exists():
        metrics = pd.read_csv(metrics_path, sep="\t", na_values="n/a")
        fold = metrics["fold"].astype(str)
        mean = {(r.contrast, r.model): r for r in metrics[fold == "mean"].itertuples()}
        lines.append("Out-of-fold metrics (pooled over folds, threshold chosen on validation data; "
                     "per-fold AUC mean +- SD):")
        for row in metrics[fold == "pooled"].itertuples():
            per_fold = mean.get((row.contrast, row.model))
            folds = f"  folds {per_fold.auc:.3f} +- {per_fold.auc_fold_sd:.3f}" if per_fold is not None else ""
            lines.append(f"  {row.contrast:8s} {row.model:8s} AUC {row.auc:.3f} "
                         f"[{row.auc_ci_low:.3f}, {row.auc_ci_high:.3f}]{folds}  sensitivity {row.sensitivity:.2f}  "
                         f"specificity {row.specificity:.2f}  n={row.n}")
    predictions = out_dir / "group" / "sub-all_desc-amyloid_predictions.tsv"
    if predictions.exists():
        table = pd.read_csv(predictions, sep="\t", na_values="n/a")
        positive = int((table["label"] == "positive").sum())
        lines.append(f"MRI-only predictions: {len(table)} (session, contrast) rows, {positive} positive -> {predictions}")
    for name, path in (("model bundle", out_dir / "models"), ("group report", out_dir / "group" / "group_report.html")):
        if path.exists():
            lines.append(f"{name}: {path}")
    reports = sorted(out_dir.glob("sub-*.html"))
    if reports:
        lines.append(f"participant reports: {len(reports)} (e.g. {reports[0]})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bids_amyloid.report.summary OUTPUT_DIR", file=sys.stderr)
        return 64
    print(summarise(Path(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
