#!/usr/bin/env bash
# Install everything (.venv + test tools) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
export MPLBACKEND=Agg
.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
