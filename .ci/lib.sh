# Shared by the CI scripts (sourced, not run): logging with phase timings, the Docker engine,
# Debian root file systems made with debootstrap, and the normalised output file listing.
# The sourcing script sets CI_TAG (the log prefix) before sourcing.

timings=()
ci_t0=$SECONDS
log() { echo "[$CI_TAG] $*"; }
die() { echo "[$CI_TAG] ERROR: $*" >&2; exit 1; }
stamp() { timings+=("$(printf '%-40s %5ds' "$1" "$2")"); log "$1: $2 s"; }
print_timings() {
  [ ${#timings[@]} -gt 0 ] || return 0
  log "---- timings ----"; printf "[$CI_TAG] %s\n" "${timings[@]}"
}

apt_install() {  # apt_install PACKAGE... (on this machine, quietly; the log is shown on failure)
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
    >/tmp/bids_amyloid_apt.log 2>&1 || { tail -20 /tmp/bids_amyloid_apt.log; die "installing $* failed (log: /tmp/bids_amyloid_apt.log)"; }
}

# ---- Docker engine: installed and started when missing; stopped on exit only if we started it ----
started_dockerd=0
docker_engine_up() {
  command -v dockerd >/dev/null 2>&1 || { log "installing docker.io"; apt_install docker.io; }
  docker info >/dev/null 2>&1 && return 0
  log "starting dockerd"
  dockerd >/tmp/bids_amyloid_dockerd.log 2>&1 &
  echo $! >/tmp/bids_amyloid_dockerd.pid
  started_dockerd=1
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  tail -20 /tmp/bids_amyloid_dockerd.log; die "dockerd did not start"
}
docker_engine_down() {
  [ "$started_dockerd" = 1 ] && [ -f /tmp/bids_amyloid_dockerd.pid ] || return 0
  log "stopping the dockerd this script started"
  local pid; pid=$(cat /tmp/bids_amyloid_dockerd.pid)
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  rm -f /tmp/bids_amyloid_dockerd.pid
}

# ---- Debian root file systems (no container registry is reachable; Debian's archive is) ----------
debian_mirror() {
  local mirror
  mirror=$(grep -h -o -E 'https?://[^ ]*debian[^ ]*' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
             /etc/apt/sources.list 2>/dev/null | grep -v -E 'security|snapshot' | head -1 || true)
  echo "${mirror:-http://deb.debian.org/debian}"
}
debootstrap_root() {  # debootstrap_root SUITE DIR: a minimal Debian SUITE in DIR
  command -v debootstrap >/dev/null || apt_install debootstrap
  chmod 0755 "$2"   # a mktemp folder is 0700: the root of the system must be open to its users
  log "debootstrap $1 from $(debian_mirror)"
  debootstrap --variant=minbase "$1" "$2" "$(debian_mirror)" >"/tmp/bids_amyloid_debootstrap_$1.log" 2>&1 \
    || { tail -20 "/tmp/bids_amyloid_debootstrap_$1.log"; die "debootstrap $1 failed"; }
}
import_root() {  # import_root DIR TAG: the root file system as a Docker image, without apt caches
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb
  tar -C "$1" -c . | docker import -c 'CMD ["bash"]' - "$2" >/dev/null
}

# ---- outputs -------------------------------------------------------------------------------------
# Relative paths, sorted; run-dependent parts (dates, times, hashes) normalised.
output_listing() {  # output_listing OUT_DIR
  (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' \
    | sed -E -e 's/[0-9]{8}[-T_]?[0-9]{6}/<timestamp>/g' -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[T_-][0-9:.-]{6,}/<timestamp>/g' \
             -e 's/[0-9a-f]{12,}/<hash>/g' \
    | LC_ALL=C sort -u)
}
check_outputs() {  # check_outputs OUT_DIR LISTING_FILE: file list vs .ci/expected_outputs.txt, then the validator
  local expected; expected=$(dirname "${BASH_SOURCE[0]}")/expected_outputs.txt
  output_listing "$1" >"$2"
  [ -f "$expected" ] || die "no $expected: create it with .ci/docker_smoke.sh --update-expected"
  diff -u "$expected" "$2" || die "the output file list of $1 differs from .ci/expected_outputs.txt"
  log "output file list matches $expected ($(wc -l <"$2") files)"
  "$bindir/bids-validator-deno" "$1" >/tmp/bids_amyloid_validate_out.log 2>&1 \
    || { tail -40 /tmp/bids_amyloid_validate_out.log; die "$1 is not a valid BIDS derivative"; }
  log "bids-validator-deno: $1 is valid"
}
