"""Where a training step's time goes on this CPU: the floor under any TensorFlow training path.

    .venv/bin/python bench/kernel_floor.py

Each column is measured in a fresh process with its own thread layout:
- "1 thread": one operation at a time on one core;
- "2 threads, one product": each operation spread over both cores (intra-op threads);
- "2 streams": two independent chains side by side, one core each, as our training runs TIM-Net's two
  directions (GM-TCNet's values and gates run side by side with each operation free to use both cores:
  Model.ModelSpec.threads).
It prints the rates of the matrix products of TIM-Net's temporal-aware block, (64 x 188, 39) @ (39, 39), and
of GM-TCNet's gated level, (64 x 188, 78) @ (78, 117); the cost of one element-wise pass over a (64, 188, 39)
tensor with and without XLA; one block's and one level's forward and backward pass (the gradients for the input
and the weights, as a training step computes them) with the hand-written backward (training_kernels.py) on one
thread, also with the fused element-wise ops (nn/fused_tail.cc; nan where setup.sh built none); and the time that
the matrix products alone need per EMODB epoch on two cores, for each model: at the rate of its narrow products,
and at the rate of a large square product (about the most this CPU's float32 products reach), with what issue #24's
target leaves for the rest of the epoch at that rate. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse

from fresh_process import TIMING, run_json

M, C = 64 * 188, 39  # the rows of one batch (64 utterances of T = 188 frames) and the channels
SQUARE = 1024  # the large square product's size
EPOCH_BATCHES = 481 / 64  # an EMODB training fold in batches of 64
TARGETS = {"TIMNET": 0.30, "GMTCN": 0.55}  # issue #24's s per EMODB fold-epoch
LAYOUTS = {"1 thread": (1, 1), "2 threads, one product": (2, 1), "2 streams": (1, 2)}  # (intra-op, inter-op)

JOB = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads({intra})
tf.config.threading.set_inter_op_parallelism_threads({inter})
tf.config.optimizer.set_experimental_options({{"disable_meta_optimizer": True}})  # as our training runs: no rewriting
rng = np.random.default_rng(0)
M, C, streams = {rows}, {channels}, {inter}


{timing}

def normal(*shape):
    return tf.constant(rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(shape[0])))


# TIM-Net's shape: ten products in a row per stream, inside one graph (no Python call overhead per product).
square = normal(C, C)
def chains(*starts):
    outs = []
    for v in starts:
        for _ in range(10):
            v = tf.matmul(v, square)
        outs.append(v)
    return outs
starts = [normal(M, C) for _ in range(streams)]
result = {{"timnet_gflops": streams * 10 * 2 * M * C * C / timed(tf.function(chains), *starts, repeat=50) / 1e9}}

# GM-TCNet's shape: ten different kernels per stream (TensorFlow's graph optimiser merges identical products).
kernels = [normal(2 * C, 3 * C) for _ in range(10 * streams)]
def fan(*inputs):
    return [tf.matmul(v, k) for s, v in enumerate(inputs) for k in kernels[10 * s:10 * (s + 1)]]
inputs = [normal(M, 2 * C) for _ in range(streams)]
result["gmtcn_gflops"] = streams * 10 * 2 * M * 2 * C * 3 * C / timed(tf.function(fan), *inputs, repeat=50) / 1e9

# A large square product per stream: about the most this CPU's float32 products reach in TensorFlow (oneDNN), the
# roof that the models' narrow products are measured against.
N = {square}
bigs = [normal(N, N) for _ in range(streams)]
def squares(*inputs):
    return [tf.matmul(v, v) for v in inputs]
result["square_gflops"] = streams * 2 * N ** 3 / timed(tf.function(squares), *bigs, repeat=20) / 1e9

if streams == 1:
    x = normal(64, 188, C)
    for xla in (False, True):
        for name, op in {{"add": lambda v: v + x, "sigmoid": tf.sigmoid}}.items():
            def passes(v, op=op):  # ten in a row: XLA fuses them into one loop, TensorFlow runs ten kernels
                for _ in range(10):
                    v = op(v)
                return v
            key = f"{{name}}_{{'xla' if xla else 'tf'}}_ms"
            result[key] = timed(tf.function(passes, jit_compile=xla), x, repeat=50) / 10 * 1e3

if {intra} == 1 and streams == 1:
    from timnet_ser.nn import fused_ops, training_kernels
    block_params = [normal(*s) for s in [(2, C, C), (C,), (C,), (C,)] * 2]
    masks = [tf.constant((rng.random((64, 1, C)) >= 0.1).astype("float32") / 0.9) for _ in range(2)]
    level_params = [normal(*s) for s in [(2 * C, 3 * C), (3 * C,)] * 2]

    block = with_backward(lambda x: training_kernels.temporal_aware_block(
        x, *block_params, *masks, 4, keep_scale=1 / 0.9, epsilon=1e-3)[0], block_params)
    result["block_ms"] = 1e3 * timed(block, x, repeat=50)
    with fused_ops.enabled() as fused:  # traced with the fused tail (nn/fused_tail.cc), where setup.sh built it
        fused_block = with_backward(lambda x: training_kernels.temporal_aware_block(
            x, *block_params, *masks, 4, keep_scale=1 / 0.9, epsilon=1e-3)[0], block_params)
        result["fused_block_ms"] = 1e3 * timed(fused_block, x, repeat=50) if fused else float("nan")
    level = with_backward(lambda x: training_kernels.gated_unit(x, *level_params, 4, 3), level_params)
    result["level_ms"] = 1e3 * timed(level, x, repeat=50)
    with fused_ops.enabled() as fused:  # the gated unit's element-wise work in fused_tail.cc
        fused_level = with_backward(lambda x: training_kernels.gated_unit(x, *level_params, 4, 3), level_params)
        result["fused_level_ms"] = 1e3 * timed(fused_level, x, repeat=50) if fused else float("nan")
print(json.dumps(result))
"""

# Matrix-product arithmetic per batch of 64: TIM-Net's 16 blocks make 12 products of (M, C) @ (C, C) each
# (forward, input gradient, kernel gradient of two kernel-2 convolutions); GM-TCNet's 14 gated levels make
# 4 products of (M, 2C) @ (2C, 3C) (values and gates: forward and kernel gradient) and 4 of (M, 3C) @ (3C, C)
# (the input gradient, per tap).
TIMNET_FLOP = 16 * 12 * 2 * M * C * C
GMTCN_FLOP = 14 * (4 * 2 * M * 2 * C * 3 * C + 4 * 2 * M * 3 * C * C)


def measure(intra: int, inter: int) -> dict:
    return run_json(JOB.format(intra=intra, inter=inter, rows=M, channels=C, square=SQUARE, timing=TIMING), "the timing job")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help: says, runs nothing
    figures = {name: measure(*layout) for name, layout in LAYOUTS.items()}
    one, spread, streams = figures.values()
    print("| measurement | " + " | ".join(LAYOUTS) + " |\n|---|---|---|---|")
    for key, label in (("timnet_gflops", "TIM-Net product (12032, 39) @ (39, 39), GFLOP/s"),
                       ("gmtcn_gflops", "GM-TCNet product (12032, 78) @ (78, 117), GFLOP/s"),
                       ("square_gflops", f"large square product ({SQUARE}, {SQUARE}) @ ({SQUARE}, {SQUARE}), GFLOP/s")):
        print(f"| {label} | {one[key]:.0f} | {spread[key]:.0f} | {streams[key]:.0f} |")
    for name in ("add", "sigmoid"):
        for engine, label in (("tf", "TensorFlow"), ("xla", "XLA")):
            key = f"{name}_{engine}_ms"
            print(f"| one {name} pass over (64, 188, 39), {label}, ms | {one[key]:.3f} | {spread[key]:.3f} | |")
    block_products = TIMNET_FLOP / 16 / one["timnet_gflops"] / 1e6
    level_products = GMTCN_FLOP / 14 / one["gmtcn_gflops"] / 1e6
    print(f"| temporal-aware block, forward + backward (hand-written), ms | {one['block_ms']:.2f} | | |")
    print(f"| temporal-aware block, forward + backward, fused tail, ms | {one['fused_block_ms']:.2f} | | |")
    print(f"| of which its 12 matrix products, ms | {block_products:.2f} | | |")
    print(f"| GM-TCNet gated level, forward + backward (hand-written), ms | {one['level_ms']:.2f} | | |")
    print(f"| GM-TCNet gated level, forward + backward, fused, ms | {one['fused_level_ms']:.2f} | | |")
    print(f"| of which its 8 matrix products, ms | {level_products:.2f} | | |")
    print("\nmatrix products alone per EMODB epoch (481 utterances) on 2 cores, at the faster 2-core rate above:")
    for model, flop, key in (("TIM-Net", TIMNET_FLOP, "timnet_gflops"), ("GM-TCNet", GMTCN_FLOP, "gmtcn_gflops")):
        rate = max(spread[key], streams[key])
        print(f"  {model}: {flop * EPOCH_BATCHES / 1e9:.0f} GFLOP at {rate:.0f} GFLOP/s = "
              f"{flop * EPOCH_BATCHES / rate / 1e9:.2f} s")
    roof = max(spread["square_gflops"], streams["square_gflops"])
    print(f"\nthe same products at the large square product's faster 2-core rate ({roof:.0f} GFLOP/s; the models' "
          "narrow products do not reach it), and what #24's target leaves for the rest of an epoch:")
    for model, flop, target in (("TIM-Net", TIMNET_FLOP, TARGETS["TIMNET"]), ("GM-TCNet", GMTCN_FLOP, TARGETS["GMTCN"])):
        floor = flop * EPOCH_BATCHES / roof / 1e9
        print(f"  {model}: {floor:.2f} s; the target {target:.2f} s leaves {target - floor:.2f} s for everything else")


if __name__ == "__main__":
    main()
