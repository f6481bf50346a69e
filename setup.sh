#!/usr/bin/env bash
# Create .venv (once), install Code/requirement.txt and tests/requirements.txt into it, the project itself (editable,
# with its extras [onnx,tflite]: the package timnet_ser and the command timnet-ser), and fill librosa's numba cache;
# then build the fused kernels (Code/nn/fused_tail.cc) into .native/ with the machine's C++ compiler, when they
# changed (else: one line, and training uses the pure-TensorFlow path).
# Sourced by run_demo.sh and run_tests.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PYTHON" -m venv "$ROOT/.venv"
fi
# Reinstall only when the requirements or the project's metadata changed since the last successful install.
STAMP="$ROOT/.venv/.requirements.sha"
WANT="$("$PYTHON" "$ROOT/setup_steps.py" digest)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  # pip's and setuptools' chatter (the editable-install notice among it) goes to a log, shown only if a step fails
  LOG="$ROOT/.venv/setup.log"
  echo "setup.sh: installing the requirements into .venv (log: .venv/setup.log)"
  {
    "$ROOT/.venv/bin/python" -m pip install --upgrade pip &&
    "$ROOT/.venv/bin/python" -m pip install -r "$ROOT/Code/requirement.txt" -r "$ROOT/tests/requirements.txt" &&
    "$ROOT/.venv/bin/python" -m pip install -e "$ROOT[onnx,tflite]" &&
    # librosa's numba functions compiled and cached now, by one process (setup_steps.py says why)
    "$ROOT/.venv/bin/python" "$ROOT/setup_steps.py" cache-librosa
  } > "$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; echo "setup.sh: installing failed (whole log: $LOG)" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
fi
"$ROOT/Code/nn/build_fused_tail.sh" "$ROOT/.venv/bin/python" "$ROOT/.native" || true
