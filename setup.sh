#!/usr/bin/env bash
# Create .venv (once), install Code/requirement.txt and tests/requirements.txt into it, and the project itself
# (editable: the package timnet_ser and the command timnet-ser). Sourced by run_demo.sh and run_tests.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$ROOT/.venv"
fi
# Reinstall only when the requirements or the project's metadata changed since the last successful install.
STAMP="$ROOT/.venv/.requirements.sha"
WANT="$(cat "$ROOT/Code/requirement.txt" "$ROOT/tests/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$ROOT/.venv/bin/python" -m pip install --quiet -r "$ROOT/Code/requirement.txt" -r "$ROOT/tests/requirements.txt"
  "$ROOT/.venv/bin/python" -m pip install --quiet --no-deps -e "$ROOT"
  echo "$WANT" > "$STAMP"
fi
