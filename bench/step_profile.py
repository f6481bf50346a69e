"""Where one training step's time goes, operation type by operation type, from TensorFlow's own profiler.

    .venv/bin/python bench/step_profile.py --model TIMNET
    .venv/bin/python bench/step_profile.py --model GMTCN --fused_kernels off

It builds the sequential trainer (Common_Model.Trainer) on an EMODB-shaped batch (64 utterances of T = 188 x 39
random values, 7 classes) on ONE thread (one operation at a time, so that the operations' times add up to the
step's), traces and warms the step, then records ``--steps`` steps with ``tf.profiler`` and sums the time of every
executed operation by its type. It prints the step's wall time, the operations' total, and per type the calls and
milliseconds per step and the share of the step, largest first. The matrix products are ``_MklMatMul`` (oneDNN);
the fused ops are ``Fused*``. On two threads a step takes about half as long (the two directions of TIM-Net, the
values and gates of GM-TCNet, side by side); the shares stay. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import tempfile
import time

from fresh_process import checkout_package, cpu_name

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def operation_times(xspace_path: str) -> tuple[collections.Counter, collections.Counter]:
    """Total picoseconds and count of the executed operations in a profile, by operation type (the part after the
    last ':' of TensorFlow's ``name:Type`` event names, on the executor's threads)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as file:
        space.ParseFromString(file.read())
    durations, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads; the Python thread nests them
                continue
            for event in line.events:
                kind = names.get(event.metadata_id, "?").rsplit(":", 1)[-1]
                if kind == "Process":  # the executor's envelope around the operations it runs
                    continue
                durations[kind] += event.duration_ps
                calls[kind] += 1
    return durations, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="TIMNET", choices=("TIMNET", "GMTCN"))
    parser.add_argument("--fused_kernels", default="auto", choices=("auto", "off"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=20, help="operation types listed (default 20)")
    args = parser.parse_args()

    checkout_package()
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})  # as our training runs

    from timnet_ser.Common_Model import Trainer
    from timnet_ser.core.config import Hyper, RunConfig
    from timnet_ser.Model import MODELS, build_model
    from timnet_ser.nn import fused_ops
    fused = args.fused_kernels == "auto" and fused_ops.available()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 188, 39), dtype=np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 64)]
    config = RunConfig(model=args.model, data="BENCH", classes=list("abcdefg"), feature_path="-",
                       fused_kernels=fused)
    trainer = Trainer(lambda: build_model(MODELS[args.model], x.shape[1:], y.shape[1], Hyper()), config)
    trainer.reset(0)
    for _ in range(3):  # traced, then warm
        trainer._step(x, y)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        for _ in range(args.steps):
            trainer._step(x, y)
        wall = (time.perf_counter() - started) / args.steps * 1000
        tf.profiler.experimental.stop()
        durations, calls = operation_times(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0])

    total = sum(durations.values()) / args.steps / 1e9
    print(f"machine: {cpu_name()}, load average {os.getloadavg()[0]:.1f}; TensorFlow {tf.__version__}; {args.model}, one "
          f"training step on an EMODB-shaped batch (64 x 188 x 39), one thread, fused kernels "
          f"{'on' if fused else 'off'}; {args.steps} steps profiled")
    print(f"step: {wall:.1f} ms wall (profiler on); its operations: {total:.1f} ms, {sum(calls.values()) // args.steps} "
          f"executed per step\n")
    print("| operation type | calls per step | ms per step | share of the step |\n|---|---|---|---|")
    for kind, picoseconds in durations.most_common(args.top):
        ms = picoseconds / args.steps / 1e9
        print(f"| {kind} | {calls[kind] // args.steps} | {ms:.2f} | {ms / wall:.0%} |")
    rest = total - sum(p for _, p in durations.most_common(args.top)) / args.steps / 1e9
    print(f"| the {max(0, len(durations) - args.top)} other types | | {rest:.2f} | {rest / wall:.0%} |")


if __name__ == "__main__":
    main()
