#!/usr/bin/env bash
# End to end on a small built-in example, in about 5 minutes on 2 cores (install excluded):
# install, generate a synthetic cohort, participant level (preprocessing), group level (PET+MRI
# teacher, MRI-only student, 3-fold CV), MRI-only prediction with the trained bundle, summary.
# Uses the tiny random backbone (--sloppy, TESTING ONLY): the real BiomedCLIP weights need
# `bids_amyloid fetch-weights` on a machine with internet. Every command's log is kept in
# $EXAMPLE_DIR/logs/ (default example/logs/); the terminal shows the steps and the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${EXAMPLE_DIR:-example}
n=${EXAMPLE_SUBJECTS:-16}
logs=$root/logs
mkdir -p "$logs"
timings=$logs/timings.tsv
: > "$timings"
export MPLBACKEND=Agg

step() {  # step NAME LOGFILE COMMAND...: run quietly, print the time, show the log's end on failure
  local name=$1 logfile=$logs/$2; shift 2
  local t=$SECONDS
  printf '%-50s' "$name ..."
  if "$@" > "$logfile" 2>&1; then
    printf '%4d s\n' $((SECONDS - t))
    printf '%s\t%d\n' "$name" $((SECONDS - t)) >> "$timings"
  else
    echo " FAILED; the end of $logfile:"; tail -n 30 "$logfile"; exit 1
  fi
}

step "install into .venv (pip)" install.log bash scripts/install.sh
bin=.venv/bin
if [ ! -f "$root/bids/dataset_description.json" ]; then
  step "synthetic cohort: $n subjects, 2 mm" synth.log \
    $bin/bids_amyloid-synth "$root/bids" --n-subjects "$n" --seed 0 --resolution 2
fi
[ -f "$root/weights/tiny/manifest.json" ] || step "tiny random backbone (TESTING ONLY)" weights.log \
  $bin/bids_amyloid fetch-weights --tiny "$root/weights/tiny"
common=(--sloppy --backbone-weights "$root/weights/tiny" -w "$root/work" --nprocs 2)
step "participant level: preprocess MRI and PET" participant.log \
  $bin/bids_amyloid "$root/bids" "$root/out" participant "${common[@]}"
# a short training budget the tiny backbone can use: 10 slices per session, more teacher epochs
step "group level: teacher + student, 3-fold CV" group.log \
  $bin/bids_amyloid "$root/bids" "$root/out" group "${common[@]}" --folds 3 \
  --input-slices 10 --phase0-epochs 8 --phase1-epochs 2 --monitor auc
step "prediction from MRI alone (--model)" predict.log \
  $bin/bids_amyloid "$root/bids" "$root/out" participant "${common[@]}" --model "$root/out"
echo
$bin/python -m bids_amyloid.report.summary "$root/out" --timings "$timings"
echo "Logs of every step: $logs/"
