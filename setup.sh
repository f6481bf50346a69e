#!/usr/bin/env bash
# Create .venv (once), install Code/requirement.txt and tests/requirements.txt into it, the project itself (editable,
# with its extras [onnx,tflite]: the package timnet_ser and the command timnet-ser), and fill librosa's numba cache;
# then build the fused kernels (Code/nn/fused_tail.cc) into .native/ with the machine's C++ compiler, when they
# changed (else: one line, and training uses the pure-TensorFlow path).
# Sourced by run_demo.sh and run_tests.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${SER_PYTHON:-python3.11}"  # not $PYTHON: often set to another interpreter
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VERSION="$("$PYTHON" -c 'import sys; print(sys.version.split()[0]); sys.exit(sys.version_info < (3, 11))' 2>/dev/null)" || {
  echo "setup.sh: $PYTHON is $("$PYTHON" -V 2>&1); the project needs Python 3.11 or newer: set SER_PYTHON to one" >&2
  exit 1
}
# Two set-ups of one checkout at once (run_demo.sh and run_tests.sh started together) would both clear and fill
# .venv: the second waits for the first (flock, where the machine has it; the lock goes with the process).
if command -v flock >/dev/null 2>&1; then
  exec 9> "$ROOT/.setup.lock"
  if ! flock -n 9; then
    echo "setup.sh: another set-up of this checkout is running; waiting for it to finish"
    flock 9
  fi
fi
STAMP="$ROOT/.venv/.requirements.sha"  # line 1: what was installed; line 2: by which Python
# A venv records where it was made (its scripts' first line); a checkout that moved holds one that points elsewhere
made_here() { [ "$(realpath -m "$(dirname "$(head -n 1 "$ROOT/.venv/bin/pip" 2>/dev/null | cut -c3-)")")" = \
                "$(realpath -m "$ROOT/.venv/bin")" ]; }
# A .venv without the stamp of a finished install (an interrupted one: a half-unpacked TensorFlow that pip then
# took as installed, or no pip at all), made by another Python, or of a checkout that moved is made anew (never
# through a link: a .venv linked from elsewhere is that checkout's to make).
if [ ! -x "$ROOT/.venv/bin/python" ] || [ "$(sed -n 2p "$STAMP" 2>/dev/null)" != "$VERSION" ] || ! made_here; then
  if [ -L "$ROOT/.venv" ]; then
    echo "setup.sh: .venv links to an environment whose install did not finish, or of another Python; run setup.sh in its own checkout" >&2
    exit 1
  fi
  if [ -e "$ROOT/.venv" ]; then echo "setup.sh: making .venv anew (no finished install here by $PYTHON $VERSION)"; fi
  "$PYTHON" -m venv --clear "$ROOT/.venv"
fi
# Reinstall only when the requirements or the project's metadata changed since the last successful install.
WANT="$("$PYTHON" "$ROOT/setup_steps.py" digest)"
if [ "$(sed -n 1p "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  # pip's and setuptools' chatter (the editable-install notice among it) goes to a log, shown only if a step fails
  LOG="$ROOT/.venv/setup.log"
  echo "setup.sh: installing the requirements into .venv (log: .venv/setup.log)"
  rm -f "$STAMP"
  {
    "$ROOT/.venv/bin/python" -m pip install --upgrade pip &&
    "$ROOT/.venv/bin/python" -m pip install -r "$ROOT/Code/requirement.txt" -r "$ROOT/tests/requirements.txt" &&
    "$ROOT/.venv/bin/python" -m pip install -e "$ROOT[onnx,tflite]" &&
    # librosa's numba functions compiled and cached now, by one process (setup_steps.py says why)
    "$ROOT/.venv/bin/python" "$ROOT/setup_steps.py" cache-librosa &&
    # what every mode imports, imported: an install that pip took as done but is not fails here, not in a run
    "$ROOT/.venv/bin/python" -c "import tensorflow, keras, librosa, soundfile, timnet_ser"
  } > "$LOG" 2>&1 || {
    tail -n 40 "$LOG" >&2
    echo "setup.sh: installing failed (whole log: $LOG); if it stopped half-way, remove .venv and run it again" >&2
    exit 1
  }
  printf '%s\n%s\n' "$WANT" "$VERSION" > "$STAMP"
fi
"$ROOT/Code/nn/build_fused_tail.sh" "$ROOT/.venv/bin/python" "$ROOT/.native" || true
if { true >&9; } 2>/dev/null; then exec 9>&-; fi  # sourced: the caller's tests or demo do not hold the lock
