"""Where a TIM-Net training step's time goes on this CPU: the floor under any TensorFlow training path.

    .venv/bin/python bench/kernel_floor.py

Prints, each measured in a fresh process with the given number of TensorFlow threads:
- the matrix products of one temporal-aware block, (64 x 188, 39) @ (39, 39), in GFLOP/s, on one and two
  threads (the products of the forward pass, the input gradient and the weight gradient have this shape);
- one element-wise pass over a (64, 188, 39) tensor (an addition, a sigmoid), with and without XLA;
- one temporal-aware block's forward and backward pass with the hand-written backward
  (training_kernels.py) on one thread, and the share of it that its twelve matrix products take.
It prints figures; it asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CODE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Code")

JOB = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {code!r})
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads({threads})
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.optimizer.set_experimental_options({{"disable_meta_optimizer": True}})  # as our training runs: no rewriting
rng = np.random.default_rng(0)


def seconds(function, *args, repeat=50):
    function(*args)  # trace
    start = time.perf_counter()
    for _ in range(repeat):
        out = function(*args)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    return (time.perf_counter() - start) / repeat


M, C = 64 * 188, 39
a = tf.constant(rng.standard_normal((M, C), dtype=np.float32))
w = tf.constant(rng.standard_normal((C, C), dtype=np.float32) / np.float32(np.sqrt(C)))  # values stay in range


def products(v):  # ten products in a row inside one graph: no Python call overhead per product
    for _ in range(10):
        v = tf.matmul(v, w)
    return v


result = {{"matmul_gflops": 10 * 2 * M * C * C / seconds(tf.function(products), a) / 1e9}}
x = tf.constant(rng.standard_normal((64, 188, 39), dtype=np.float32))
for xla in (False, True):
    ten = {{"add": lambda v: v + x, "sigmoid": tf.sigmoid}}
    for name, op in ten.items():
        def chain(v, op=op):  # ten passes in a row: XLA fuses them into one loop, TensorFlow runs ten kernels
            for _ in range(10):
                v = op(v)
            return v
        result[f"{{name}}_{{'xla' if xla else 'tf'}}_ms"] = seconds(tf.function(chain, jit_compile=xla), x) / 10 * 1e3
if {threads} == 1:
    import training_kernels
    params = [tf.constant(rng.normal(scale=0.2, size=s).astype("float32")) for s in
              [(2, C, C), (C,), (C,), (C,)] * 2]
    masks = [tf.constant((rng.random((64, 1, C)) >= 0.1).astype("float32") / 0.9) for _ in range(2)]

    @tf.function
    def block(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out, _ = training_kernels.temporal_aware_block(x, *params, *masks, 4, keep_scale=1 / 0.9, epsilon=1e-3)
            loss = tf.reduce_sum(out * out)
        return tape.gradient(loss, x)
    result["block_ms"] = seconds(block, x) * 1e3
    result["block_matmul_ms"] = 12 * 2 * M * C * C / result["matmul_gflops"] / 1e9 * 1e3
print(json.dumps(result))
"""


def measure(threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", JOB.format(code=CODE, threads=threads)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the timing job failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    one, two = measure(1), measure(2)
    print("| measurement | 1 thread | 2 threads |\n|---|---|---|")
    print(f"| matrix product (12032, 39) @ (39, 39), GFLOP/s | {one['matmul_gflops']:.0f} | {two['matmul_gflops']:.0f} |")
    for name in ("add", "sigmoid"):
        for engine, label in (("tf", "TensorFlow"), ("xla", "XLA")):
            key = f"{name}_{engine}_ms"
            print(f"| one {name} pass over (64, 188, 39), {label}, ms | {one[key]:.3f} | {two[key]:.3f} |")
    print(f"| temporal-aware block, forward + backward (hand-written), ms | {one['block_ms']:.2f} | |")
    print(f"| of which its 12 matrix products at the rate above, ms | {one['block_matmul_ms']:.2f} | |")


if __name__ == "__main__":
    main()
