#!/usr/bin/env bash
# Set up, then run the whole test suite. The golden tests read ../shared (or $SER_SHARED).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/setup.sh"
cd "$ROOT"
# One worker process per core (at most 4), each running one test file at a time: a file's module fixtures (a local
# Ray, a trained toy run) are made once, in one worker. A worker that crashes ends the run (no replacement).
exec "$ROOT/.venv/bin/python" -m pytest -q --numprocesses auto --maxprocesses 4 --dist loadfile --max-worker-restart 0 \
  "$@" tests
