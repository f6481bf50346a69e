#!/usr/bin/env bash
# Create .venv (once) and install Code/requirement.txt into it. Sourced by run_demo.sh and run_tests.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$ROOT/.venv"
fi
# Reinstall only when the requirements changed since the last successful install.
STAMP="$ROOT/.venv/.requirements.sha"
WANT="$(sha256sum "$ROOT/Code/requirement.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$ROOT/.venv/bin/python" -m pip install --quiet -r "$ROOT/Code/requirement.txt"
  echo "$WANT" > "$STAMP"
fi
