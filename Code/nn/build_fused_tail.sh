#!/usr/bin/env bash
# Build fused_tail.cc (the fused element-wise tail of TIM-Net's block, nn/fused_ops.py) into OUT_DIR/fused_tail.so
# with the machine's C++ compiler, against PYTHON's TensorFlow; only when the source or TensorFlow changed since the
# last build (a stamp). Never fails: without a compiler, or when the build fails, it prints one line and training
# uses the pure-TensorFlow path. Usage: build_fused_tail.sh PYTHON OUT_DIR (setup.sh calls it).
set -uo pipefail
PYTHON="$1"
OUT="$2"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fused_tail.cc"
CXX="${CXX:-c++}"
fallback() { echo "setup.sh: $1; training uses the pure-TensorFlow path (no fused kernels)"; exit 0; }
command -v "$CXX" >/dev/null 2>&1 || fallback "no C++ compiler ($CXX)"
FLAGS="$("$PYTHON" -c "import tensorflow as tf, sys
print(tf.__version__); print(' '.join(tf.sysconfig.get_compile_flags())); print(' '.join(tf.sysconfig.get_link_flags()))" \
  2>/dev/null)" || fallback "TensorFlow did not import"
TF_VERSION="$(sed -n 1p <<< "$FLAGS")"
WANT="$(cat "$SOURCE" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1) $TF_VERSION $("$CXX" --version | head -n 1)"
STAMP="$OUT/fused_tail.stamp"
if [ -f "$OUT/fused_tail.so" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  exit 0
fi
mkdir -p "$OUT" || fallback "cannot create $OUT"
rm -f "$STAMP"
LOG="$OUT/fused_tail.log"
# -march=native: the library is built on, and for, this machine (without AVX512-FP16, whose Eigen code GCC 12 rejects); -ffp-contract=off: no fused multiply-adds, so that
# the products and sums round as TensorFlow's separate operations do
# shellcheck disable=SC2046
if "$CXX" -std=c++17 -shared -fPIC -O3 -march=native -mno-avx512fp16 -ffp-contract=off -w "$SOURCE" -o "$OUT/fused_tail.so.tmp" \
     $(sed -n 2p <<< "$FLAGS") $(sed -n 3p <<< "$FLAGS") > "$LOG" 2>&1 &&
   "$PYTHON" -c "import sys, tensorflow as tf; tf.load_op_library(sys.argv[1])" "$OUT/fused_tail.so.tmp" >> "$LOG" 2>&1
then
  mv "$OUT/fused_tail.so.tmp" "$OUT/fused_tail.so" && echo "$WANT" > "$STAMP"
  echo "setup.sh: built the fused TIM-Net kernels ($OUT/fused_tail.so)"
else
  rm -f "$OUT/fused_tail.so.tmp" "$OUT/fused_tail.so"
  fallback "building the fused kernels failed (log: $LOG)"
fi
