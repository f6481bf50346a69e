#!/usr/bin/env bash
# Set up, then run the whole test suite. The golden tests read ../shared (or $SER_SHARED).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -q "$@" tests
