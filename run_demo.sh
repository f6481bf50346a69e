#!/usr/bin/env bash
# Set up, then run the main job on the embedded synthetic corpus:
# wav -> MFCC -> 10-fold training -> results -> re-test of the saved weights. Extra flags go to main.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/setup.sh"
cd "$ROOT/Code"
exec "$ROOT/.venv/bin/python" main.py --mode demo "$@"
