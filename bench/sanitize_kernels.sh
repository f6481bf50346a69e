#!/usr/bin/env bash
# The fused kernels (Code/nn/fused_tail.cc) under AddressSanitizer: every read and write they make is checked
# against the bounds of TensorFlow's buffers, and the first one outside (or into freed memory) stops the process with
# a report. A copy of the checkout (the files git tracks) gets a library built with -fsanitize=address by
# Code/nn/build_fused_tail.sh, and the tests that run the fused ops run against it in this .venv, with the sanitizer's
# runtime preloaded (TensorFlow itself is not instrumented; only the kernels' accesses are checked).
#
#   bash bench/sanitize_kernels.sh                                # the kernels' and the training paths' tests
#   bash bench/sanitize_kernels.sh tests/test_fused_kernels.py    # or the tests you name
#
# It prints pytest's summary and one line: no report, or the sanitizer's report. Exit status: pytest's, or 1 after
# a report.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
CXX="${CXX:-c++}"
[ -x "$PYTHON" ] || { echo "sanitize_kernels: no .venv; run setup.sh first" >&2; exit 2; }
ASAN="$("$CXX" -print-file-name=libasan.so)"
STDCXX="$("$CXX" -print-file-name=libstdc++.so.6)"
# -print-file-name answers the bare name where the compiler has no such library
[ -f "$ASAN" ] || { echo "sanitize_kernels: $CXX has no AddressSanitizer runtime (libasan.so)" >&2; exit 2; }
COPY="$(mktemp -d)"
trap 'rm -rf "$COPY"' EXIT
(cd "$ROOT" && git ls-files -z | while IFS= read -r -d '' name; do
  [ -f "$name" ] && mkdir -p "$COPY/$(dirname "$name")" && cp "$name" "$COPY/$name"
done)
# the runtime first in the process (libstdc++ beside it: its exception interceptor needs the real __cxa_throw)
export LD_PRELOAD="$ASAN $STDCXX"
# reports to files (pytest captures the tests' stderr, and a process the sanitizer stops never prints it)
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$COPY/asan-report"
FUSED_CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
  bash "$COPY/Code/nn/build_fused_tail.sh" "$PYTHON" "$COPY/.native"
nm -D "$COPY/.native/fused_tail.so" 2>/dev/null | grep -q __asan_report ||
  { echo "sanitize_kernels: the library was not built with the sanitizer (log: .native/fused_tail.log)" >&2; exit 2; }
cd "$COPY"
"$PYTHON" -c "import sys; sys.path.insert(0, 'tests'); import conftest
from timnet_ser.nn import fused_ops
assert fused_ops.available(), 'the sanitized library did not load'" 2>/dev/null ||
  { echo "sanitize_kernels: the sanitized library does not load in TensorFlow" >&2; exit 2; }
if [ "$#" -eq 0 ]; then
  set -- tests/test_fused_kernels.py tests/test_training_kernels.py tests/test_fast_path.py \
    tests/test_stacked_training.py tests/test_training_paths.py tests/test_engine.py
fi
LOG="$COPY/sanitize.log"
SER_SHARED="${SER_SHARED:-$ROOT/../shared}" "$PYTHON" -m pytest -q -p no:cacheprovider "$@" > "$LOG" 2>&1
STATUS=$?
grep -E "^[0-9]+ (passed|failed)|^(FAILED|ERROR) " "$LOG" || tail -n 5 "$LOG"
if compgen -G "$COPY/asan-report*" > /dev/null; then
  head -n 40 "$COPY"/asan-report*
  echo "sanitize_kernels: AddressSanitizer reported an invalid access (above)"
  [ "$STATUS" -ne 0 ] || STATUS=1
else
  echo "sanitize_kernels: no AddressSanitizer report (pytest's exit status $STATUS)"
fi
exit "$STATUS"
