"""Training variants timed A/B in one process, epoch by epoch in turn, so that a shared machine's load falls on
all of them alike.

    .venv/bin/python bench/interleaved.py --model GMTCN --variants float32,bf16 --rounds 7
    .venv/bin/python bench/interleaved.py --model TIMNET --variants float32,xla,xla-tanh --rounds 7
    .venv/bin/python bench/interleaved.py --model TIMNET --variants fused,float32 --rounds 7
    .venv/bin/python bench/interleaved.py --model GMTCN --variants fused,float32 --rounds 5
    .venv/bin/python bench/interleaved.py --model TIMNET --variants fused,fused-keras-adam --rounds 9

On an EMODB-shaped fold (481 training utterances of T = 188 x 39 random values, 7 classes, batch 64) it builds one
``Common_Model.Trainer`` per variant (threads as main.py sets them), trains each one epoch to trace and compile it,
then runs ``--rounds`` rounds of one epoch per variant, the order rotated every round. It prints, per variant, the
median, fastest and slowest seconds per fold-epoch, and the median over rounds of its epoch divided by the first
variant's epoch of the same round (the load of that moment divides out). Variants:

- ``float32``: the pure-TensorFlow kernels (a RunConfig's default);
- ``fused``: TIM-Net's blocks or GM-TCNet's gated units with the fused element-wise ops that setup.sh builds
  (nn/fused_ops.py; the command line's default where they are built);
- ``bf16``: ``--mixed_precision bf16`` (Keras mixed_bfloat16);
- ``float16``: ``--mixed_precision`` (Keras mixed_float16, loss scaling);
- ``xla``: ``--xla`` (the step compiled by XLA);
- ``xla-tanh``: ``--xla`` with the hand-written kernels' sigmoid written as 0.5 tanh(x / 2) + 0.5 while the step is
  traced (issue #24's lead: XLA's logistic is slow on this CPU, its tanh vectorised);
- ``fused-keras-adam``: ``fused`` with Keras' own Adam (one update per variable) instead of the trainer's
  ``nn/flat_adam.FlatAdam`` (the same numbers in one update over all variables).

It also prints the largest difference between the two forms of the sigmoid in float32, eagerly and under XLA. It
prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from fresh_process import checkout_package, cpu_name

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VARIANTS = {"float32": {}, "fused": {"fused_kernels": True}, "bf16": {"mixed_precision": "bf16"}, "float16": {"mixed_precision": True},
            "xla": {"xla": True}, "xla-tanh": {"xla": True}, "fused-keras-adam": {"fused_kernels": True}}


def tanh_sigmoid(x, name=None):
    """sigmoid(x) = 0.5 tanh(x / 2) + 0.5."""
    import tensorflow as tf
    return 0.5 * tf.tanh(0.5 * x) + 0.5


def sigmoid_difference() -> dict:
    """The largest |tanh form - tf.sigmoid| in float32 over [-20, 20], eagerly and under XLA, and float32's spacing
    at 1 (what one rounding of a value near 1 can be off by)."""
    import numpy as np
    import tensorflow as tf
    x = tf.constant(np.linspace(-20, 20, 400_001, dtype=np.float32))
    eager = float(tf.reduce_max(tf.abs(tanh_sigmoid(x) - tf.sigmoid(x))))
    xla = tf.function(lambda v: tf.reduce_max(tf.abs(tanh_sigmoid(v) - tf.sigmoid(v))), jit_compile=True)
    return {"eager": eager, "xla": float(xla(x)), "float32 spacing at 1": float(np.spacing(np.float32(1)))}


def build(model: str, variant: str, x, y):
    """The variant's Trainer, reset and trained one epoch (traced and compiled)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from timnet_ser.Common_Model import Trainer
    from timnet_ser.core import precision
    from timnet_ser.core.config import Hyper, RunConfig
    from timnet_ser.Model import MODELS, build_model
    settings = VARIANTS[variant]
    keras.config.set_dtype_policy(precision.policy(settings.get("mixed_precision", False)))
    config = RunConfig(model=model, data="BENCH", classes=list("abcdefg"), feature_path="-", **settings)
    trainer = Trainer(lambda: build_model(MODELS[model], x.shape[1:], y.shape[1], Hyper()), config)
    if variant == "fused-keras-adam":  # before the step is traced
        trainer.optimizer = keras.optimizers.Adam(learning_rate=config.lr, beta_1=config.beta1, beta_2=config.beta2,
                                                  epsilon=config.epsilon)
        trainer.optimizer.build(trainer.model.trainable_variables)
    trainer.reset(0)
    sigmoid = tf.sigmoid
    if variant == "xla-tanh":  # the kernels' sigmoid while the step is traced (the first epoch)
        tf.sigmoid = tanh_sigmoid
    try:
        trainer.train_epoch(x, y, np.arange(len(x)), 64)
    finally:
        tf.sigmoid = sigmoid
    keras.config.set_dtype_policy("float32")
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="TIMNET", choices=("TIMNET", "GMTCN"))
    parser.add_argument("--variants", default="float32,bf16", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    variants = args.variants.split(",")
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    checkout_package()
    import numpy as np

    from timnet_ser.Common_Model import configure_tensorflow
    from timnet_ser.Model import MODELS
    configure_tensorflow(MODELS[args.model])  # as main.py does, before any operation
    import tensorflow as tf
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; TensorFlow "
          f"{tf.__version__}; {args.model}, EMODB-shaped fold (481 x 188 x 39, batch 64); {args.rounds} rounds")
    if "xla-tanh" in variants:
        print("sigmoid as 0.5 tanh(x/2) + 0.5, largest difference from tf.sigmoid over [-20, 20] in float32:",
              {k: f"{v:.3g}" for k, v in sigmoid_difference().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((481, 188, 39), dtype=np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 481)]
    trainers = {}
    for variant in variants:
        started = time.time()
        trainers[variant] = build(args.model, variant, x, y)
        ops = [op.type for op in trainers[variant]._step.get_concrete_function().graph.get_operations()]
        print(f"{variant}: built, traced and first epoch in {time.time() - started:.1f} s; its step's graph holds "
              f"{ops.count('Sigmoid')} Sigmoid, {ops.count('Tanh')} Tanh, {ops.count('FusedBnReluGate')} "
              f"FusedBnReluGate and {ops.count('FusedGatedUnit')} FusedGatedUnit operations, {len(ops)} in all",
              flush=True)
    times = {v: [] for v in variants}
    order = np.random.default_rng(1)
    for r in range(args.rounds):
        for variant in variants[r % len(variants):] + variants[:r % len(variants)]:
            started = time.time()
            trainers[variant].train_epoch(x, y, order.permutation(len(x)), 64)
            times[variant].append(time.time() - started)
    base = variants[0]
    print(f"\n| variant | s per fold-epoch, median | fastest | slowest | epoch / {base}'s of the same round, median "
          "(range) |\n|---|---|---|---|---|")
    for variant in variants:
        ratios = [t / b for t, b in zip(times[variant], times[base])]
        print(f"| {variant} | {statistics.median(times[variant]):.3f} | {min(times[variant]):.3f} | "
              f"{max(times[variant]):.3f} | {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
