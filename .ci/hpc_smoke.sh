#!/usr/bin/env bash
# HPC smoke test: the Docker image as an Apptainer SIF, and the Slurm recipes of examples/slurm/
# submitted as written to a real one-node Slurm cluster. Runs after .ci/docker_smoke.sh (it uses
# the image that one built; it builds it with --build-only when missing).
#
# Apptainer 1.4 is packaged for Debian sid only (it needs a newer libc than Debian 12), so the HPC
# side runs in a container made here from a Debian 13 root file system (debootstrap) with Slurm,
# munge, MariaDB (for sacct) and sid's apptainer: image bids_amyloid-hpc:<HPC_ROOT_VERSION>, kept
# in Docker as the cache for later runs. All HPC commands run in it as a non-root user (uid 4242).
#
#   SIF      docker save -> apptainer build SIF docker-archive://...
#   direct   the commands of docs/apptainer.md, with a hostile host environment (PYTHONPATH,
#            PYTHONHOME, unwritable HOME) that is first shown to break a run without --cleanenv:
#            participant (2 subjects) -> participant (all) -> group -> participant --model;
#            the output file list is diffed against .ci/expected_outputs.txt and validated
#   slurm    sbatch --array participant_array.sbatch (3 tasks, one output folder, concurrent);
#            one task is scancel-ed mid-run and resubmitted (it must reuse its finished stages);
#            group_gpu.sbatch (CPU) and group_multigpu_torchrun.sbatch (2 gloo processes) under
#            srun; every job's state and exit code from sacct; outputs validated
#
# usage: .ci/hpc_smoke.sh [--build-only] [--keep]
#   --build-only  stop after the HPC image and the SIF (scripts/test.sh makes them while pytest runs)
#   --keep        keep the scratch folder
# environment:
#   SMOKE_IMAGE=name:tag  the app image (default bids_amyloid:<package version>)
#   HPC_CACHE=DIR         where the SIF is kept between runs, named by the image ID
#                         (default /var/tmp/bids_amyloid-hpc)
#   HPC_DIR=DIR           scratch folder (default: a new temporary folder; kept when given)
#   HPC_N_SUBJECTS=8      cohort size of the direct runs (2-fold CV needs 4 subjects per class)
#   HPC_ARRAY_TASKS=3     Slurm array size (subjects 1..N)
#   PYTHON=...            host python with bids_amyloid installed (default .venv/bin/python)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
keep=0 build_only=0
for arg in "$@"; do
  case $arg in
    --keep) keep=1 ;;
    --build-only) build_only=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done
CI_TAG=hpc
# shellcheck source=lib.sh
source "$repo/.ci/lib.sh"

python=${PYTHON:-$repo/.venv/bin/python}
bindir=$(dirname "$python")
version=$("$python" -c 'import bids_amyloid; print(bids_amyloid.__version__)')
image=${SMOKE_IMAGE:-bids_amyloid:$version}
HPC_ROOT_VERSION=1                      # bump when the package list below changes
hpc_image=bids_amyloid-hpc:$HPC_ROOT_VERSION
n_subjects=${HPC_N_SUBJECTS:-8}
n_tasks=${HPC_ARRAY_TASKS:-3}
user_id=4242
ctr="" scratch=""

cleanup() {
  local rc=$?
  if [ -n "$ctr" ]; then
    [ "$rc" = 0 ] || { log "slurm logs:"; docker exec "$ctr" sh -c 'tail -n 15 /var/log/slurm/*.log' 2>/dev/null || true; }
    docker rm -f "$ctr" >/dev/null 2>&1 || true
  fi
  if [ -n "$scratch" ] && { [ "$keep" = 1 ] || [ -n "${HPC_DIR:-}" ]; }; then
    log "kept $scratch"
  elif [ -n "$scratch" ]; then
    rm -rf "$scratch"
  fi
  docker_engine_down
  print_timings
  [ "$rc" = 0 ] && log "PASSED ($((SECONDS - ci_t0)) s)" || log "FAILED (exit $rc)"
}
trap cleanup EXIT

# ---- 1. engines and images -----------------------------------------------------------------------
t=$SECONDS
docker_engine_up
if ! docker image inspect "$image" >/dev/null 2>&1; then
  log "no image $image: building it"
  SMOKE_IMAGE=$image bash "$repo/.ci/docker_smoke.sh" --build-only
  docker_engine_up
fi
stamp "docker engine + app image" $((SECONDS - t))

make_hpc_image() {
  local root mirror
  root=$(mktemp -d /tmp/bids_amyloid_hpcroot.XXXXXX) mirror=$(debian_mirror)
  debootstrap_root trixie "$root"
  # sid (pinned low) only for apptainer and Slurm (26.05; trixie's 24.11 was tried first and is
  # not what CI runs). sid's Release file is read without its expiry date: mirrors may serve a
  # snapshot older than a week.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror trixie main
deb $mirror sid main
EOF
  printf 'Package: *\nPin: release n=sid\nPin-Priority: 100\n' >"$root/etc/apt/preferences.d/sid"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"  # no service starts
  mount -t proc proc "$root/proc"
  chroot "$root" /bin/sh -c 'set -e; export DEBIAN_FRONTEND=noninteractive
    apt-get -o Acquire::Check-Valid-Until=false update -qq
    apt-get install -y -qq --no-install-recommends munge mariadb-server squashfs-tools squashfuse fuse2fs \
      uidmap procps ca-certificates
    apt-get install -y -qq --no-install-recommends -t sid apptainer slurm-wlm slurmdbd' >/tmp/bids_amyloid_hpcroot.log 2>&1 \
    || { umount "$root/proc"; tail -20 /tmp/bids_amyloid_hpcroot.log; die "installing the HPC packages failed"; }
  umount "$root/proc"
  import_root "$root" "$hpc_image"
  rm -rf "$root"
}
t=$SECONDS
if docker image inspect "$hpc_image" >/dev/null 2>&1; then
  stamp "HPC image (cached)" $((SECONDS - t))
else
  make_hpc_image; stamp "HPC image (debootstrap trixie + apt)" $((SECONDS - t))
fi

# The SIF, kept in HPC_CACHE under the app image's ID (a rebuilt image gets a new SIF). zstd: the
# same size as mksquashfs' default gzip -9 and about 15 times faster to build (25 s against 6.5 min
# for this image on 2 cores); squashfuse and the kernel read it.
cache=${HPC_CACHE:-/var/tmp/bids_amyloid-hpc}
image_id=$(docker image inspect -f '{{.Id}}' "$image" | sed 's/^sha256://' | cut -c1-12)
sif=$cache/bids_amyloid-$version-$image_id.sif
mkdir -p "$cache" && chmod 0755 "$cache"
hpc_container() {  # hpc_container NAME BIND...: start the HPC container (HPC commands run in it)
  # Apptainer needs user namespaces, mounts and FUSE, as on a real node: every capability but
  # CAP_SYS_RESOURCE (which this VM's Docker does not hold, so --privileged fails), no seccomp filter
  local name=$1 binds=() dir; shift
  for dir in "$@"; do binds+=(-v "$dir:$dir"); done
  docker run -d --name "$name" --hostname hpcnode --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    --device /dev/fuse "${binds[@]}" -v "$repo:$repo:ro" "$hpc_image" sleep infinity >/dev/null
  # users open /dev/fuse on a real node (udev makes it 0666; this VM has no udev)
  docker exec "$name" sh -c "chmod 0666 /dev/fuse && useradd -m -u $user_id -s /bin/bash hpcuser"
  ctr=$name
}
t=$SECONDS
if [ -s "$sif" ]; then
  stamp "SIF (cached: $(basename "$sif"))" $((SECONDS - t))
else
  rm -f "$cache"/bids_amyloid-*.sif   # older images' SIFs
  hpc_container "bids_amyloid_sif_$$" "$cache"
  docker save "$image" -o "$cache/image.tar"
  docker exec -w "$cache" "$ctr" apptainer -s build --mksquashfs-args "-comp zstd -Xcompression-level 3" \
    "$sif.tmp" "docker-archive://$cache/image.tar" >/tmp/bids_amyloid_sif.log 2>&1 \
    || { tail -20 /tmp/bids_amyloid_sif.log; rm -f "$cache/image.tar" "$sif.tmp"; die "apptainer build failed (log: /tmp/bids_amyloid_sif.log)"; }
  rm -f "$cache/image.tar"
  chmod 0644 "$sif.tmp" && mv "$sif.tmp" "$sif"
  docker rm -f "$ctr" >/dev/null; ctr=""
  stamp "SIF (docker save + apptainer build)" $((SECONDS - t))
fi
log "$(basename "$sif"): $(($(stat -c %s "$sif") / 1000000)) MB (image $(($(docker image inspect -f '{{.Size}}' "$image") / 1000000)) MB)"
[ "$build_only" = 1 ] && exit 0

if [ -n "${HPC_DIR:-}" ]; then scratch=$HPC_DIR; mkdir -p "$scratch"; else scratch=$(mktemp -d /tmp/bids_amyloid_hpc.XXXXXX); fi
chmod 0755 "$scratch"
hpc_container "bids_amyloid_hpc_$$" "$scratch" "$cache"
as_root() { docker exec -i -w "$scratch" "$ctr" "$@"; }
log "$(as_root apptainer --version)"

# ---- 2. inputs, and a host environment that breaks a container that lets it in -----------------
t=$SECONDS
data=$scratch/data weights=$scratch/weights
"$bindir/bids_amyloid-synth" "$data" --n-subjects "$n_subjects" --resolution "${SMOKE_RESOLUTION:-2}" --seed 0 >/dev/null
chmod -R a+rX "$data"
threshold=$("$python" .ci/smoke_threshold.py "$data")
mapfile -t labels < <(awk -F'\t' 'NR > 1 {sub(/^sub-/, "", $1); print $1}' "$data/participants.tsv")
hostile=$scratch/hostile home_ro=$scratch/home-readonly
mkdir -p "$hostile" "$home_ro" "$scratch/logs"
echo 'raise SystemExit("the host PYTHONPATH reached the container")' >"$hostile/sitecustomize.py"
chmod 0555 "$home_ro"          # root's: hpcuser cannot write there
chown "$user_id:$user_id" "$scratch/logs"
hostile_env=(-e "PYTHONPATH=$hostile" -e PYTHONHOME=/nonexistent/python-home -e "HOME=$home_ro")
as_user() { docker exec -i -u "$user_id:$user_id" -w "$scratch/logs" "${hostile_env[@]}" "$ctr" "$@"; }
userdir() { as_root install -d -o "$user_id" -g "$user_id" "$@"; }
userdir "$weights"
as_user apptainer exec --cleanenv --containall -B "$weights:$weights" "$sif" bids_amyloid fetch-weights --tiny "$weights/tiny" >/dev/null
stamp "cohort ($n_subjects subjects) + tiny weights" $((SECONDS - t))

# ---- 3. docs/apptainer.md, as written ------------------------------------------------------------
out=$scratch/out work=$scratch/work
userdir "$out" "$work"
# The negative control: without --cleanenv and --containall (which implies it) the hostile
# environment must break the run, or this test would prove nothing.
if as_user apptainer run "$sif" --version >/tmp/bids_amyloid_leak.log 2>&1; then
  die "a run without --cleanenv survived the hostile environment: the check proves nothing"
fi
log "without --cleanenv the host environment breaks the run, as it should: $(grep -m 1 -E 'Fatal Python error|SystemExit' /tmp/bids_amyloid_leak.log)"
binds=(-B "$data:/data:ro" -B "$out:/out" -B "$work:/work" -B "$weights:/weights:ro")
provenance=BIDS_AMYLOID_CONTAINER_TAG=$(basename "$sif")
direct() { as_user apptainer run --cleanenv --containall --env "$provenance" "${binds[@]}" "$sif" /data /out "$@" \
  -w /work --skip-bids-validation --sloppy --backbone-weights /weights/tiny --nprocs 2; }
t=$SECONDS
direct participant --participant-label "${labels[@]:0:2}"
stamp "apptainer participant (2 subjects)" $((SECONDS - t))
t=$SECONDS
direct participant
stamp "apptainer participant (all, resuming)" $((SECONDS - t))
t=$SECONDS
direct group --folds 2 --centiloid-threshold "$threshold"
stamp "apptainer group (--sloppy, 2 folds)" $((SECONDS - t))
t=$SECONDS
direct participant --model /out --participant-label "${labels[0]}"
stamp "apptainer participant --model (1 subject)" $((SECONDS - t))
t=$SECONDS
check_outputs "$out" "$scratch/outputs.txt"
foreign=$(find "$out" ! -uid "$user_id" | head -n 3)
[ -z "$foreign" ] || die "outputs not owned by the user who ran apptainer: $foreign"
"$python" -c 'import json, sys; c = json.load(open(sys.argv[1]))["GeneratedBy"][0]["Container"]
sys.exit(c != {"Type": "apptainer", "Tag": sys.argv[2]})' "$out/dataset_description.json" "$(basename "$sif")" \
  || die "dataset_description.json does not record the SIF: $(grep -A3 Container "$out/dataset_description.json")"
stamp "outputs: file list + bids-validator-deno" $((SECONDS - t))

# ---- 4. a one-node Slurm cluster ---------------------------------------------------------------
t=$SECONDS
as_root bash "$repo/.ci/hpc/start_cluster.sh"
stamp "slurm cluster up (munge, mariadb, slurmdbd, slurmctld, slurmd)" $((SECONDS - t))

sacct_states() {  # sacct_states JOBID: "JobID State ExitCode" of the job (array tasks: one line each)
  as_root sacct -j "$1" -X -n -P -o JobID,State,ExitCode | tr '|' ' '
}
wait_gone() {  # wait_gone JOBID: until the job (all array tasks) has left the queue
  while [ -n "$(as_root squeue -h -j "$1" -o %i 2>/dev/null)" ]; do sleep 2; done
}
expect_states() {  # expect_states JOBID PATTERN...: every line of sacct matches one of the patterns
  local line n=0
  for _ in $(seq 30); do [ -n "$(sacct_states "$1")" ] && break; sleep 1; done  # accounting lags
  while read -r line; do
    n=$((n + 1)); local ok=0
    for pattern in "${@:2}"; do [[ $line =~ $pattern ]] && ok=1; done
    [ "$ok" = 1 ] || die "sacct: unexpected state for job $1: '$line'"
  done < <(sacct_states "$1")
  [ "$n" -gt 0 ] || die "sacct knows no job $1"
  log "sacct $1: $(sacct_states "$1" | paste -s -d ';')"
}

# ---- 5. the README's Slurm recipe: an array into ONE output folder, then the group job ------------
# The array's output folder starts with the direct runs' participant level of the other subjects
# (a cohort partly done), so that the group job has a cohort to train on; tasks 1..N process
# subjects 1..N concurrently, task 2 is cancelled mid-run and resubmitted. Resources the scripts
# ask for that this 2-CPU node lacks (CPUs, memory, GPUs) are overridden on the command line, as a
# user of a small partition would; the scripts are used as they are in the repository.
slurm=$repo/examples/slurm
array_out=$scratch/out-slurm
userdir "$array_out" "$scratch/work-slurm"
as_user sh -c "cp -a '$out'/. '$array_out'/ && cd '$array_out' && rm -rf group models logs" \
  && for label in "${labels[@]:0:$n_tasks}"; do as_user rm -rf "$array_out/sub-$label" "$array_out/sub-$label.html" "$array_out/.sub-$label.lock"; done
# the tiny synthetic cohort needs --sloppy (2 mm voxels); work folders on scratch, as on a cluster
export_vars="ALL,BIDS_DIR=$data,OUT_DIR=$array_out,WORK_ROOT=$scratch/work-slurm,SIF=$sif,BIDS_AMYLOID_EXTRA_ARGS=--sloppy"
submit_array() {  # submit_array RANGE [sbatch options]: prints the job id
  as_user sbatch --parsable --array="$1" --cpus-per-task=1 --mem=3G --export="$export_vars" "${@:2}" \
    "$slurm/participant_array.sbatch"
}
t=$SECONDS
jid=$(submit_array "1-$n_tasks")
victim=2 victim_label=${labels[1]}
log "array job $jid ($n_tasks tasks); task $victim (sub-$victim_label) will be cancelled mid-run"
# cancel the victim once its first stage output is in place: mid-run, by construction
victim_log=$scratch/logs/bids_amyloid-participant-${jid}_$victim.log
for _ in $(seq 1200); do
  [ -n "$(find "$array_out/sub-$victim_label" -name '*.json' 2>/dev/null | head -n 1)" ] && break
  [ -n "$(as_root squeue -h -j "${jid}_$victim" -o %T)" ] \
    || { tail -n 20 "$victim_log" 2>/dev/null; die "task $victim ended before it wrote a stage"; }
  sleep 0.5
done
state=$(as_root squeue -h -j "${jid}_$victim" -o %T)
[ "$state" = RUNNING ] || die "task $victim is '$state', not RUNNING, when it should be cancelled"
as_root scancel "${jid}_$victim"
wait_gone "$jid"
expect_states "$jid" "^${jid}_$victim CANCELLED" "^${jid}_[0-9]+ COMPLETED 0:0$"
sacct_states "$jid" | grep -q "^${jid}_$victim CANCELLED" || die "task $victim was not cancelled"
[ "$(sacct_states "$jid" | wc -l)" = "$n_tasks" ] || die "sacct lists $(sacct_states "$jid" | wc -l) tasks, not $n_tasks"
# the tasks shared the node: at least two ran at the same time (sacct's start and end times)
overlap=$(as_root sacct -j "$jid" -X -n -P -o Start,End | sort | awk -F'|' 'NR > 1 && $1 < end {o = 1} $2 > end {end = $2} END {print o + 0}')
[ "$overlap" = 1 ] || die "no two array tasks ran at the same time: $(as_root sacct -j "$jid" -X -n -P -o JobID,Start,End | paste -s -d ' ')"
stamp "slurm array ($n_tasks tasks, 1 cancelled)" $((SECONDS - t))
t=$SECONDS
# sbatch --wait exits with the job's exit code; sacct below says what happened
jid2=$(submit_array "$victim" --wait) || log "sbatch --wait: exit $?"
expect_states "$jid2" "^${jid2}_$victim COMPLETED 0:0$"
resumed=$scratch/logs/bids_amyloid-participant-${jid2}_$victim.log
finished=$(grep "sub-$victim_label.* done in .*; stages computed: .*; reused: " "$resumed" || true)
[ -n "$finished" ] || die "no session of sub-$victim_label finished in $resumed"
grep -q -v "reused: none$" <<<"$finished" || die "the resubmitted task reused none of the cancelled task's stages ($resumed)"
grep -q -v "stages computed: none;" <<<"$finished" || die "the resubmitted task found nothing left to do: the cancel did not interrupt it ($resumed)"
for label in "${labels[@]}"; do
  [ -f "$array_out/sub-$label.html" ] || die "sub-$label missing from $array_out"
done
stamp "slurm resubmitted task (resumed)" $((SECONDS - t))

# ---- 6. the group recipes on the CPU: sbatch after the array (1 process), srun + torchrun (2) ----
group_env="ALL,BIDS_DIR=$data,SIF=$sif,WEIGHTS=$weights/tiny,DEVICE=cpu"
group_env+=",BIDS_AMYLOID_EXTRA_ARGS=--sloppy --folds 2 --centiloid-threshold $threshold"
ddp_out=$scratch/out-torchrun
userdir "$ddp_out"
as_user cp -a "$array_out/." "$ddp_out/"
t=$SECONDS
jid3=$(as_user sbatch --parsable --wait --dependency="afterok:$jid2" --gres=none --cpus-per-task=2 --mem=6G \
  --export="$group_env,OUT_DIR=$array_out,WORK_DIR=$scratch/work-slurm/group" "$slurm/group_gpu.sbatch") \
  || log "sbatch --wait: exit $?"
expect_states "$jid3" "^$jid3 COMPLETED 0:0$"
[ -f "$array_out/models/bundle.json" ] || die "group_gpu.sbatch wrote no bundle"
stamp "slurm group_gpu.sbatch (CPU, afterok)" $((SECONDS - t))
t=$SECONDS
as_user srun --job-name=torchrun-ci --cpus-per-task=2 --mem=6G --export="$group_env,OUT_DIR=$ddp_out,WORK_DIR=$scratch/work-slurm/torchrun,NPROC=2" \
  bash "$slurm/group_multigpu_torchrun.sbatch" >"$scratch/logs/torchrun.log" 2>&1 \
  || { tail -n 30 "$scratch/logs/torchrun.log"; die "group_multigpu_torchrun.sbatch under srun failed"; }
jid4=$(as_root sacct -n -X -P -o JobID --name=torchrun-ci | tail -n 1)
expect_states "$jid4" "^$jid4 COMPLETED 0:0$"
"$python" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["processes"] != 2)' \
  "$ddp_out/models/training_summary.json" || die "the torchrun recipe did not train with 2 processes"
stamp "slurm torchrun recipe (srun, 2 processes)" $((SECONDS - t))
t=$SECONDS
for dest in "$array_out" "$ddp_out"; do
  "$bindir/bids-validator-deno" "$dest" >/tmp/bids_amyloid_validate_slurm.log 2>&1 \
    || { tail -40 /tmp/bids_amyloid_validate_slurm.log; die "$dest is not a valid BIDS derivative"; }
done
foreign=$(find "$array_out" "$ddp_out" ! -uid "$user_id" | head -n 3)
[ -z "$foreign" ] || die "outputs not owned by the submitting user: $foreign"
stamp "slurm outputs: bids-validator-deno" $((SECONDS - t))
