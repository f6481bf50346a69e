#!/usr/bin/env bash
# The speed table on a GPU in one command: bash bench/gpu.sh [--quick] [--markdown PATH]
# With a GPU (nvidia-smi lists one): a fresh environment .venv-gpu with tensorflow[and-cuda] at the version of
# Code/requirement.txt (the package index is the only download), then bench/gpu.py. Without one: says so and runs
# bench/gpu.py in .venv (setup.sh) on the CPU, so the script is exercised everywhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
  ENV="$ROOT/.venv-gpu"
  [ -x "$ENV/bin/python" ] || "${PYTHON:-python3.11}" -m venv "$ENV"
  TF="$(grep -E '^tensorflow==' Code/requirement.txt)"
  echo "gpu.sh: installing ${TF/tensorflow/tensorflow[and-cuda]} and the requirements into .venv-gpu (log: .venv-gpu/setup.log)"
  { "$ENV/bin/python" -m pip install -r Code/requirement.txt "${TF/tensorflow/tensorflow[and-cuda]}" &&
    "$ENV/bin/python" -m pip install --no-deps -e "$ROOT"; } > "$ENV/setup.log" 2>&1 ||
    { tail -n 30 "$ENV/setup.log" >&2; exit 1; }
  PY="$ENV/bin/python"
else
  echo "gpu.sh: no GPU (nvidia-smi finds none): measuring on this CPU in .venv"
  source setup.sh
  PY="$ROOT/.venv/bin/python"
fi
exec "$PY" bench/gpu.py "$@"
