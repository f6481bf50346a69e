#!/usr/bin/env bash
# The fused kernels (Code/nn/fused_tail.cc) under AddressSanitizer and UndefinedBehaviorSanitizer: every read and
# write they make is checked against the bounds of TensorFlow's buffers, and every integer overflow, shift, array
# index, misaligned access or float-to-int conversion out of range is caught; the first one stops the process with
# a report. A copy of the checkout (the files git tracks) gets a library built with -fsanitize=... by
# Code/nn/build_fused_tail.sh, and the tests that run the fused ops run against it in this .venv, with the sanitizer's
# runtime preloaded (TensorFlow itself is not instrumented; only the kernels' accesses are checked).
#
#   bash bench/sanitize_kernels.sh                                # the kernels' and the training paths' tests
#   bash bench/sanitize_kernels.sh tests/test_fused_kernels.py    # or the tests you name
#
# It prints pytest's summary and one line: no report, or the start of the first report. Exit status: pytest's, or
# 1 after a report.
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
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# UndefinedBehaviorSanitizer's checks less null, vptr and the pointer checks: with those, GCC 12 cannot evaluate
# constexpr code in TensorFlow's headers (absl's hash tables) and the build fails
UNDEFINED="signed-integer-overflow,shift,bounds,alignment,float-cast-overflow,vla-bound,return,unreachable"
UNDEFINED="$UNDEFINED,integer-divide-by-zero,bool,enum"
# exported: tests/test_fused_kernels.py runs the build script too, and with other flags it would rebuild the library
# uninstrumented (the flags are part of its stamp)
export FUSED_CXXFLAGS="-fsanitize=address,$UNDEFINED -fno-sanitize-recover=all -fno-omit-frame-pointer -g"
bash "$COPY/Code/nn/build_fused_tail.sh" "$PYTHON" "$COPY/.native"
instrumented() {
  local symbols
  symbols="$(nm -D "$COPY/.native/fused_tail.so" 2>/dev/null)"
  grep -q __asan_report <<< "$symbols" && grep -q __ubsan_handle <<< "$symbols"
}
instrumented || { echo "sanitize_kernels: the library was not built with the sanitizers" >&2; exit 2; }
BUILT="$(sha256sum "$COPY/.native/fused_tail.so")"
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
# --capture=no: a process the sanitizer stops would take the report in pytest's capture with it
SER_SHARED="${SER_SHARED:-$ROOT/../shared}" "$PYTHON" -m pytest -q --capture=no -p no:cacheprovider "$@" > "$LOG" 2>&1
STATUS=$?
# the tests ran the instrumented library: nothing rebuilt it under them
if ! instrumented || [ "$(sha256sum "$COPY/.native/fused_tail.so")" != "$BUILT" ]; then
  echo "sanitize_kernels: the library was rebuilt during the tests; their results say nothing" >&2
  exit 2
fi
grep -E "^[0-9]+ (passed|failed)|^(FAILED|ERROR) " "$LOG" || tail -n 5 "$LOG"
if grep -qE "ERROR: AddressSanitizer|runtime error: " "$LOG"; then
  grep -m 1 -A 20 -E "ERROR: AddressSanitizer|runtime error: " "$LOG"
  echo "sanitize_kernels: a sanitizer reported an invalid access or undefined behaviour (above)"
  [ "$STATUS" -ne 0 ] || STATUS=1
else
  echo "sanitize_kernels: no sanitizer report (pytest's exit status $STATUS)"
fi
exit "$STATUS"
