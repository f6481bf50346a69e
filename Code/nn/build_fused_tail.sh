#!/usr/bin/env bash
# Build fused_tail.cc (the fused element-wise ops of TIM-Net's block and GM-TCNet's gated unit, nn/fused_ops.py)
# into OUT_DIR/fused_tail.so with the machine's C++ compiler, against PYTHON's TensorFlow; only when the source or
# TensorFlow changed since the last build (a stamp: also the CPU's flags, for -march=native). Never fails: without a
# compiler, or when the build fails, it prints one line and training uses the pure-TensorFlow path.
# Usage: build_fused_tail.sh PYTHON OUT_DIR (setup.sh calls it). $FUSED_CXXFLAGS, if set, is added to the compiler's
# flags (bench/sanitize_kernels.sh: the sanitizers).
set -uo pipefail
PYTHON="$1"
OUT="$2"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fused_tail.cc"
CXX="${CXX:-c++}"
EXTRA="${FUSED_CXXFLAGS:-}"
fallback() { echo "setup.sh: $1; training uses the pure-TensorFlow path (no fused kernels)"; exit 0; }
command -v "$CXX" >/dev/null 2>&1 || fallback "no C++ compiler ($CXX)"
# the TensorFlow version without importing TensorFlow (seconds): the stamp is checked at every setup.sh
TF_VERSION="$("$PYTHON" -c "import importlib.metadata as m; print(m.version('tensorflow'))" 2>/dev/null)" ||
  fallback "TensorFlow is not installed"
CPU_FLAGS="$(sed -n 's/^flags[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n 1)"  # empty without /proc
CPU="$(printf '%s\n' "$CPU_FLAGS" | sha256sum | cut -c1-16)"
WANT="$(cat "$SOURCE" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1) $TF_VERSION cpu $CPU $("$CXX" --version | head -n 1) $EXTRA"
STAMP="$OUT/fused_tail.stamp"
if [ -f "$OUT/fused_tail.so" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  exit 0
fi
# one flag a line, compile flags then link flags: a checkout's path with a space in it stays one -I flag
FLAGS="$("$PYTHON" -c "import tensorflow as tf
print('\n'.join(tf.sysconfig.get_compile_flags())); print('--link--'); print('\n'.join(tf.sysconfig.get_link_flags()))" \
  2>/dev/null)" || fallback "TensorFlow did not import"
mapfile -t COMPILE_FLAGS < <(sed '/^--link--$/,$d' <<< "$FLAGS")
mapfile -t LINK_FLAGS < <(sed '1,/^--link--$/d' <<< "$FLAGS")
mkdir -p "$OUT" || fallback "cannot create $OUT"
rm -f "$STAMP"
LOG="$OUT/fused_tail.log"
# First for this machine's instruction set (-march=native, less AVX512-FP16, whose Eigen code GCC 12 rejects), then,
# if that compiler refuses it, portable; -ffp-contract=off: no fused multiply-adds, so that the products and sums
# round as TensorFlow's separate operations do.
: > "$LOG"
for TARGET in "-march=native -mno-avx512fp16" ""; do
  # shellcheck disable=SC2086
  if "$CXX" -std=c++17 -shared -fPIC -O3 $TARGET -ffp-contract=off $EXTRA -w "$SOURCE" -o "$OUT/fused_tail.so.tmp" \
       "${COMPILE_FLAGS[@]}" "${LINK_FLAGS[@]}" >> "$LOG" 2>&1 &&
     "$PYTHON" -c "import sys, tensorflow as tf; tf.load_op_library(sys.argv[1])" "$OUT/fused_tail.so.tmp" >> "$LOG" 2>&1
  then
    # the instruction set it was built for (nn/fused_ops.py refuses it on a CPU that lacks one of these flags)
    if [ -n "$TARGET" ]; then printf '%s\n' "$CPU_FLAGS"; fi > "$OUT/fused_tail.cpu"
    mv "$OUT/fused_tail.so.tmp" "$OUT/fused_tail.so" && echo "$WANT" > "$STAMP"
    echo "setup.sh: built the fused kernels ($OUT/fused_tail.so)"
    exit 0
  fi
done
rm -f "$OUT/fused_tail.so.tmp" "$OUT/fused_tail.so"
fallback "building the fused kernels failed (log: $LOG)"
