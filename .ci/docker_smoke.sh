#!/usr/bin/env bash
# Docker smoke test of the bids_amyloid image (BIDS-Apps style CI):
#   engine (install/start if needed) -> local base image (debootstrap, no registry) -> docker build
#   -> --version / --help / --bids-exec-spec under --read-only as a non-root UID
#   -> synthetic cohort (host venv) -> participant (2 subjects) -> participant (all) -> group
#   -> participant --model (prediction for 1 subject)
#   -> output file list vs .ci/expected_outputs.txt -> bids-validator-deno on the output.
#
# usage: .ci/docker_smoke.sh [--update-expected] [--build-only] [--keep]
#   --update-expected  rewrite .ci/expected_outputs.txt from this run's outputs (review the diff!)
#   --build-only       stop after the image checks (--version/--help/--bids-exec-spec)
#   --keep             keep the scratch folder (data/out/work) for inspection
# environment:
#   SMOKE_SKIP_BUILD=1    use the existing image, do not build
#   SMOKE_WARM_BUILD=0    skip the warm-rebuild timing (rebuild after a one-line source change)
#   SMOKE_IMAGE=name:tag  image to build/test (default bids_amyloid:<package version>)
#   SMOKE_N_SUBJECTS=8    cohort size (group-level 2-fold CV needs 4 subjects per class)
#   SMOKE_RESOLUTION=2    voxel-size scale of the synthetic cohort (bids_amyloid-synth --resolution)
#   SMOKE_DIR=DIR         scratch folder (default: a new temporary folder)
#   SMOKE_CA_FILE=FILE    CA bundle for TLS inside the build (default /etc/ssl/certs/ca-certificates.crt
#                         when it exists; set to an empty string to disable)
#   PYTHON=...            host python with bids_amyloid installed (default .venv/bin/python)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
update_expected=0 build_only=0 keep=0
for arg in "$@"; do
  case $arg in
    --update-expected) update_expected=1 ;;
    --build-only) build_only=1 ;;
    --keep) keep=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

export DOCKER_BUILDKIT=0     # the legacy builder: BuildKit/buildx are not available here
python=${PYTHON:-$repo/.venv/bin/python}
bindir=$(dirname "$python")
version=$("$python" -c 'import bids_amyloid; print(bids_amyloid.__version__)')
image=${SMOKE_IMAGE:-bids_amyloid:$version}
expected=$repo/.ci/expected_outputs.txt
n_subjects=${SMOKE_N_SUBJECTS:-8}
resolution=${SMOKE_RESOLUTION:-2}
ca_file=${SMOKE_CA_FILE-/etc/ssl/certs/ca-certificates.crt}

CI_TAG=smoke
# shellcheck source=lib.sh
source "$repo/.ci/lib.sh"

scratch="" ctx=""
cleanup() {
  local rc=$?
  [ -n "$ctx" ] && rm -rf "$ctx"
  if [ -n "$scratch" ] && { [ "$keep" = 1 ] || [ -n "${SMOKE_DIR:-}" ]; }; then
    log "kept $scratch (data, out, work, weights)"
  elif [ -n "$scratch" ]; then
    # outputs written by the container's UID: remove them from inside a container if needed
    rm -rf "$scratch" 2>/dev/null || docker run --rm -v "$scratch:/s" --entrypoint /bin/sh "$image" -c 'rm -rf /s/*' >/dev/null 2>&1 || true
    rm -rf "$scratch" 2>/dev/null || true
  fi
  docker_engine_down
  print_timings
  [ "$rc" = 0 ] && log "PASSED ($((SECONDS - ci_t0)) s)" || log "FAILED (exit $rc)"
}
trap cleanup EXIT

# ---- 1. Docker engine --------------------------------------------------------------------------
t=$SECONDS
docker_engine_up
stamp "docker engine ready" $((SECONDS - t))

# ---- 2. base image, made locally (no registry is reachable) -------------------------------------
make_base_image() {
  local rootfs mirror
  rootfs=$(mktemp -d /tmp/bids_amyloid_rootfs.XXXXXX) mirror=$(debian_mirror)
  debootstrap_root bookworm "$rootfs"
  # like the official image: point releases and security updates
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
  import_root "$rootfs" debian:bookworm-slim
  rm -rf "$rootfs"
}
if [ "${SMOKE_SKIP_BUILD:-0}" != 1 ] && ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  t=$SECONDS; make_base_image; stamp "base image (debootstrap+import)" $((SECONDS - t))
fi

# ---- 3. build ------------------------------------------------------------------------------------
# The build context is a temporary copy of what .dockerignore lets through, plus the CA bundle as
# ci-ca.crt (used by pip in the throw-away stages only): nothing is written into the repository.
make_context() {
  local dest=$1
  mkdir -p "$dest"
  cp Dockerfile .dockerignore pyproject.toml "$dest/"
  for f in README.md LICENSE; do [ -f "$f" ] && cp "$f" "$dest/"; done
  tar -c --exclude=__pycache__ --exclude='*.pyc' bids_amyloid | tar -x -C "$dest"
  if [ -n "$ca_file" ] && [ -s "$ca_file" ]; then cp "$ca_file" "$dest/ci-ca.crt"; fi
}
build() {  # build CONTEXT TAG LOG
  docker build --build-arg FETCH_WEIGHTS=0 --build-arg VERSION="$version" \
    --build-arg VCS_REF="$(git -C "$repo" rev-parse --short --verify -q HEAD 2>/dev/null || echo unknown)" \
    -t "$2" "$1" >"$3" 2>&1 || { tail -40 "$3"; echo "docker build failed (log: $3)" >&2; exit 1; }
}
if [ "${SMOKE_SKIP_BUILD:-0}" != 1 ]; then
  ctx=$(mktemp -d /tmp/bids_amyloid_ctx.XXXXXX)
  make_context "$ctx/main"
  kind=warm; docker image inspect "$image" >/dev/null 2>&1 || kind=cold
  t=$SECONDS; build "$ctx/main" "$image" /tmp/bids_amyloid_build.log; stamp "build ($kind, cache as found)" $((SECONDS - t))
  if [ "${SMOKE_WARM_BUILD:-1}" = 1 ]; then
    # warm rebuild: a one-line change in the package source must rebuild only the last layers
    make_context "$ctx/warm"
    echo "# warm-build probe $(date +%s)" >>"$ctx/warm/bids_amyloid/errors.py"
    t=$SECONDS; build "$ctx/warm" bids_amyloid:smoke-warm-probe /tmp/bids_amyloid_build_warm.log
    stamp "build (warm, package source changed)" $((SECONDS - t))
    docker rmi bids_amyloid:smoke-warm-probe >/dev/null
  fi
  rm -rf "$ctx"; ctx=""
fi
docker image inspect "$image" >/dev/null 2>&1 || { echo "image $image not found" >&2; exit 1; }
size=$(docker image inspect -f '{{.Size}}' "$image")
log "image $image: $((size / 1000000)) MB"

# ---- 4. image checks -----------------------------------------------------------------------------
# No CA / build secret may stay in the final image (history or files).
if docker history --no-trunc "$image" | grep -q -E 'ci-ca\.crt|PIP_CERT|BEGIN CERTIFICATE'; then
  echo "the image history mentions the build CA" >&2; exit 1
fi
docker image inspect -f '{{json .Config.Env}}' "$image" | grep -q -E 'PIP_CERT|SSL_CERT_FILE|REQUESTS_CA_BUNDLE' \
  && { echo "the image environment carries a CA setting" >&2; exit 1; }
docker run --rm --entrypoint /bin/sh "$image" -c 'test ! -e /tmp/build && test ! -e /tmp/src && ! find / -xdev -name ci-ca.crt 2>/dev/null | grep -q .' \
  || { echo "a build-time file was left in the image" >&2; exit 1; }

uid=$(id -u) gid=$(id -g)
if [ "$uid" = 0 ]; then uid=4242 gid=4242; fi   # test as an arbitrary non-root UID without a passwd entry
drun=(docker run --rm --read-only --tmpfs /tmp -u "$uid:$gid" --network none)
t=$SECONDS
got=$("${drun[@]}" "$image" --version)
[ "$got" = "bids_amyloid $version" ] || { echo "--version says '$got', expected 'bids_amyloid $version'" >&2; exit 1; }
"${drun[@]}" "$image" --help >/dev/null
"${drun[@]}" "$image" --bids-exec-spec | "$python" -c 'import json, sys; d = json.load(sys.stdin); assert d["tool-version"] == sys.argv[1], d["tool-version"]' "$version"
stamp "--version/--help/--bids-exec-spec" $((SECONDS - t))
log "$got (read-only, uid $uid)"
if [ "$build_only" = 1 ]; then exit 0; fi

# ---- 5. participant and group levels on a synthetic cohort ----------------------------------------
if [ -n "${SMOKE_DIR:-}" ]; then scratch=$SMOKE_DIR; mkdir -p "$scratch"; else scratch=$(mktemp -d /tmp/bids_amyloid_smoke.XXXXXX); fi
data=$scratch/data out=$scratch/out work=$scratch/work weights=$scratch/weights
t=$SECONDS
if [ ! -f "$data/dataset_description.json" ]; then
  "$bindir/bids_amyloid-synth" "$data" --n-subjects "$n_subjects" --resolution "$resolution" --seed 0
fi
# the input is validated here, on the host (the image does not ship the validator)
"$bindir/bids-validator-deno" "$data" >/tmp/bids_amyloid_validate_in.log 2>&1 \
  || { tail -30 /tmp/bids_amyloid_validate_in.log; echo "synthetic input is not valid BIDS" >&2; exit 1; }
mkdir -p "$out" "$work" "$weights"
chown "$uid:$gid" "$out" "$work" "$weights" 2>/dev/null || chmod 0777 "$out" "$work" "$weights"
stamp "synthetic cohort ($n_subjects subjects)" $((SECONDS - t))

threshold=$("$python" .ci/smoke_threshold.py "$data")   # enough subjects per class for 2-fold CV
log "group-level Centiloid threshold: $threshold"

mounts=(-v "$data:/data:ro" -v "$out:/out" -v "$work:/work" -v "$weights:/weights")
t=$SECONDS
"${drun[@]}" "${mounts[@]}" "$image" fetch-weights --tiny /weights/tiny
mapfile -t labels < <(awk -F'\t' 'NR > 1 {sub(/^sub-/, "", $1); print $1}' "$data/participants.tsv")
[ ${#labels[@]} -ge 2 ] || { echo "participants.tsv lists fewer than 2 subjects" >&2; exit 1; }
common=(--sloppy -w /work --skip-bids-validation --backbone-weights /weights/tiny --nprocs 2)
"${drun[@]}" "${mounts[@]}" "$image" /data /out participant --participant-label "${labels[@]:0:2}" "${common[@]}"
stamp "participant (2 subjects)" $((SECONDS - t))
t=$SECONDS   # all subjects: the first two are found complete and skipped
"${drun[@]}" "${mounts[@]}" "$image" /data /out participant "${common[@]}"
stamp "participant (all, resuming)" $((SECONDS - t))
t=$SECONDS
"${drun[@]}" "${mounts[@]}" "$image" /data /out group --folds 2 --centiloid-threshold "$threshold" "${common[@]}"
stamp "group (--sloppy, 2 folds)" $((SECONDS - t))
t=$SECONDS   # prediction with the bundle just trained
"${drun[@]}" "${mounts[@]}" "$image" /data /out participant --model /out --participant-label "${labels[0]}" "${common[@]}"
stamp "participant --model (1 subject)" $((SECONDS - t))

# ---- 6. outputs ----------------------------------------------------------------------------------
t=$SECONDS
if [ "$update_expected" = 1 ]; then
  output_listing "$out" >"$expected"
  log "wrote $expected ($(wc -l <"$expected") files): review and commit it"
else
  check_outputs "$out" "$scratch/outputs.txt"
fi
stamp "outputs: file list + bids-validator-deno" $((SECONDS - t))
