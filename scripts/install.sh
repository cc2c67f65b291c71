#!/usr/bin/env bash
# Create .venv and install bids_amyloid (+ test tools with --test). Idempotent.
# System packages (Debian, needs root; skipped otherwise): mricron-data gives the real ch2 head and
# atlases the tests and the synthetic generator use; chromium renders the HTML reports in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [ "${1:-}" = "--test" ]; then extras="[test]"; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  want="mricron-data"
  if [ -n "$extras" ]; then want="$want chromium"; fi
  missing=$(for p in $want; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".${extras}"
