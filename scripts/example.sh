#!/usr/bin/env bash
# End to end on a small built-in example: install, generate a synthetic cohort, participant level
# (preprocessing), group level (teacher + student, 3-fold CV), then MRI-only prediction with the
# trained bundle. Uses the tiny random backbone (--sloppy, TESTING ONLY): the real BiomedCLIP
# weights need `bids_amyloid fetch-weights` on a machine with internet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export MPLBACKEND=Agg
bin=.venv/bin
root=${EXAMPLE_DIR:-example}
n=${EXAMPLE_SUBJECTS:-16}
[ -f "$root/bids/dataset_description.json" ] || $bin/bids_amyloid-synth "$root/bids" --n-subjects "$n" --seed 0 --resolution 2
[ -f "$root/weights/tiny/manifest.json" ] || $bin/bids_amyloid fetch-weights --tiny "$root/weights/tiny"
common=(--sloppy --backbone-weights "$root/weights/tiny" -w "$root/work" --nprocs 2)
$bin/bids_amyloid "$root/bids" "$root/out" participant "${common[@]}"
$bin/bids_amyloid "$root/bids" "$root/out" group "${common[@]}" --folds 3
$bin/bids_amyloid "$root/bids" "$root/out" participant "${common[@]}" --model "$root/out"
$bin/python -m bids_amyloid.report.summary "$root/out"
