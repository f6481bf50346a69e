"""GM-TCNet's gated-unit op in inference: with and without the (B, T, W) activations that only training needs.

    .venv/bin/python bench/gated_unit_inference.py          # batch 64 and batch 1, about 30 s

On random EMODB-shaped input (T = 188, 39 channels) it chains 14 ``FusedGatedUnit`` ops as GM-TCNet's seven blocks do
(W = 234: three value and three gate convolutions of 39 outputs; two taps, the second unit of a block at twice its
dilation), once with ``training=True`` (the activations written to memory, as before) and once with
``training=False`` (each piece's activations in a buffer of its own, as inference now runs). Both run in turn,
7 rounds, on one inter-op and two intra-op threads, as main.py sets them for GM-TCNet's inference. It checks that
both give the same bits and prints the median ms per utterance; it asserts nothing else.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from fresh_process import Tables, checkout_package

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help: says, runs nothing
    checkout_package()
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    from timnet_ser.nn import fused_ops
    library = fused_ops.library()
    if library is None:
        raise SystemExit("error: the fused kernels are not built here (run setup.sh)")
    rng = np.random.default_rng(0)
    wide = tf.constant(0.1 * rng.standard_normal((39, 2 * 234)), tf.float32)  # (C, k W): two taps of W = 234
    bias = tf.constant(0.1 * rng.standard_normal(234), tf.float32)

    def chain(training: bool):
        @tf.function
        def units(x):  # (B, 188, 39) -> (B, 188, 39)
            for dilation in (1, 2, 4, 8, 16, 32, 64):
                for lag in (dilation, 2 * dilation):  # a block's two units
                    x = library.fused_gated_unit(x, wide, bias, lags=[lag, 0], branches=3, training=training)[0]
            return x
        return units

    tables = Tables("GM-TCNet's 14 FusedGatedUnit ops chained, EMODB-shaped input (T = 188, 39 channels); "
                    "median of 7 rounds")
    tables.emit("", "| batch | activations kept (training=True), ms per utterance | none kept (training=False) |",
                "|---|---|---|")
    for batch in (64, 1):
        x = tf.constant(rng.standard_normal((batch, 188, 39)), tf.float32)
        chains = {True: chain(True), False: chain(False)}
        if not np.array_equal(chains[True](x).numpy(), chains[False](x).numpy()):
            raise SystemExit("error: the two modes differ")
        calls = 20 if batch > 1 else 300
        seconds: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(7):
            for training in ((True, False) if round_ % 2 else (False, True)):
                started = time.perf_counter()
                for _ in range(calls):
                    chains[training](x)
                seconds[training].append((time.perf_counter() - started) / calls / batch * 1e3)
        tables.emit(f"| {batch} | {statistics.median(seconds[True]):.3f} | {statistics.median(seconds[False]):.3f} |")


if __name__ == "__main__":
    main()
