#!/usr/bin/env bash
# Install everything (.venv + test tools) and run the whole test suite, then (as root, where a
# Docker engine can be installed) the read-only, non-root Docker smoke test of the image.
# SKIP_DOCKER_SMOKE=1 skips the latter.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
printf 'installing into .venv with the test tools (log: build/install.log) ... '
bash scripts/install.sh --test > build/install.log 2>&1 || { echo FAILED; tail -n 30 build/install.log; exit 1; }
echo done
export MPLBACKEND=Agg
export PATH="$PWD/.venv/bin:$PATH"   # the tests call the venv's tools (bids-validator-deno, bosh, hadolint)
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=1800 "$@"
if [ "${SKIP_DOCKER_SMOKE:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  bash .ci/docker_smoke.sh
else
  echo "Docker smoke test skipped (needs root and apt-get; SKIP_DOCKER_SMOKE=${SKIP_DOCKER_SMOKE:-0})"
fi
