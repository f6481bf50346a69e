"""Stacked training (Code/stacked_training.py) against sequential training, side by side in one run.

    .venv/bin/python bench/stacked_benchmark.py [--quick] [--sections speed,breakdown,memory] [--markdown PATH]

speed (the default section): ten EMODB-shaped folds (KFold(10) of 535 random utterances: 481 or 482 training rows each, T = 188,
39 MFCCs, 7 classes, batch 64), TIM-Net and GM-TCNet, in seconds per fold-epoch (one fold trained for one
epoch): the sequential Trainer (bench/benchmark.py's job: one fold, median epoch) against the ten folds as one
stack in each layout (stacked_training.LAYOUTS; the median stacked epoch divided by 10). Each path runs in
`runs` fresh processes and its fastest run counts, with main.py's thread layout (configure_tensorflow).
The stack's start-up is its members' models, its trace and its first epoch.

breakdown: where a stacked step's time goes, on one thread (CPU time, so that other processes on a
shared machine count less): one TIM-Net temporal-aware block, forward and backward, per member, in the batched
layout's kernel for stacks of 1, 2, 4 and 10 members against training_kernels' block for one member, and one
element-wise pass over the stack's activations per member; the products of a block are the same per member
in both.

memory: peak resident memory of TIM-Net stacks at IEMOCAP shapes (5531 random utterances, T = 606,
10 blocks per direction, 4 classes, batch 64; the features alone are 523 MB) after two steps, for a few
stack sizes, in both layouts; that is what ``train_members(max_members=...)`` is chosen from.
It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform

from benchmark import PRELUDE, TRAIN_OURS, run
from fresh_process import cpu_name

STACKED = PRELUDE + """
from timnet_ser.Common_Model import RunConfig, configure_tensorflow, make_folds
from timnet_ser.Model import MODELS, Hyper
from timnet_ser import stacked_training
configure_tensorflow(MODELS["{model}"])  # as main.py does
x, y = data({n}, {frames}, {classes})
config = RunConfig(model="{model}", data="BENCH", classes=[str(c) for c in range({classes})], feature_path="-",
                   hyper=Hyper(dilation_size={blocks}))
folds = make_folds(len(x), 10, 46)
plans = [stacked_training.plan_member(config, x, y, folds, f, "") for f in range({members})]
labels = [p.y_train for p in plans]
start = time.time()
trainer = stacked_training.StackedTrainer(MODELS["{model}"], config, x.shape[1:], {classes},
                                          [p.fold_seed for p in plans], "{layout}")
if {steps}:  # a few steps only (memory)
    trainer.train_epoch(x, labels, [p.fit_rows[:64] for p in plans])  # the trace
    start = time.time()
    trainer.train_epoch(x, labels, [p.rng.permutation(p.fit_rows)[:64 * {steps}] for p in plans])
    print(json.dumps({{"step": (time.time() - start) / {steps}, "peak": peak_mb()}}))
    raise SystemExit
trainer.train_epoch(x, labels, [p.rng.permutation(p.fit_rows) for p in plans])
build = time.time() - start
times = []
for _ in range({epochs}):
    start = time.time()
    trainer.train_epoch(x, labels, [p.rng.permutation(p.fit_rows) for p in plans])
    times.append(time.time() - start)
print(json.dumps({{"build": build, "epoch": statistics.median(times), "peak": peak_mb()}}))
"""


BREAKDOWN = PRELUDE + """
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
from timnet_ser import stacked_training, training_kernels
rng = np.random.default_rng(0)
B, T, C = 64, 188, 39


def cpu_ms(function, *args, repeat=20):
    function(*args)  # trace
    start = time.process_time()
    for _ in range(repeat):
        out = function(*args)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    return (time.process_time() - start) / repeat * 1e3


def normal(*shape):
    return tf.constant(rng.standard_normal(shape, dtype=np.float32) * 0.3)


def with_backward(block):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = block(x)
            loss = tf.reduce_sum(out * out)
        return tape.gradient(loss, x)
    return step


@tf.autograph.experimental.do_not_convert
def passes(x):  # ten element-wise passes in a row
    for _ in range(10):
        x = x + x
    return x


result = {}
for M in (1, 2, 4, 10):
    params = [normal(M, 2, C, C), normal(M, C), normal(M, C) + 1, normal(M, C)] * 2
    masks = [tf.constant((rng.random((M, B, 1, C)) >= 0.1).astype("float32") / 0.9) for _ in range(2)]
    rows, count = tf.ones((M, B, 1, 1)), tf.fill((M, 1), float(B * T))
    block = with_backward(lambda x: stacked_training.stacked_temporal_aware_block(
        x, params, masks, rows, count, 4, 1 / 0.9, 1e-3)[0])
    x = normal(M, B, T, C)
    result[f"block_{M}"] = cpu_ms(block, x) / M
    result[f"pass_{M}"] = cpu_ms(tf.function(passes), x) / 10 / M
single = [p[0] for p in params]
block = with_backward(lambda x: training_kernels.temporal_aware_block(
    x, *single, masks[0][0], masks[1][0], 4, keep_scale=1 / 0.9, epsilon=1e-3)[0])
result["block_sequential"] = cpu_ms(block, normal(B, T, C))
print(json.dumps(result))
"""


def stacked_job(model: str, layout: str, members: int, epochs: int = 0, steps: int = 0, n: int = 535,
                frames: int = 188, classes: int = 7, blocks: int = 8) -> str:
    return STACKED.format(model=model, layout=layout, members=members, epochs=epochs, steps=steps, n=n,
                          frames=frames, classes=classes, blocks=blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 timed epochs and one run of each path")
    parser.add_argument("--sections", default="speed",
                        help="comma-separated, of: speed (about 20 minutes), breakdown (1 minute), memory (minutes "
                             "per stack size); default speed")
    parser.add_argument("--memory_members", default="1,2,4", help="stack sizes of the memory section (default 1,2,4)")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not sections <= {"speed", "breakdown", "memory"}:
        parser.error(f"--sections {args.sections}: choose from speed, breakdown, memory")
    epochs, runs = (2, 1) if args.quick else (3, 3)
    from importlib.metadata import version

    def fastest(code: str) -> dict:
        # one process of the same graph can run much slower than the next on a shared machine: the fastest counts
        return min((run(code) for _ in range(runs)), key=lambda figures: figures["epoch"])

    lines = []

    def emit(*rows: str) -> None:  # each table as soon as it is measured: a later failure keeps it on screen
        lines.extend(rows)
        print("\n".join(rows), flush=True)

    emit(f"machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
         f"TensorFlow {version('tensorflow')}; 10 EMODB-shaped folds (481-482 training utterances, T=188, "
         f"batch 64); fastest of {runs} run(s), median of {epochs} epochs each")
    if "speed" in sections:
        emit("", "| model | training path | s per fold-epoch | fold-epochs/s | start-up, s | peak memory, MB | "
             "speed-up |", "|---|---|---|---|---|---|---|")
        for model in ("TIMNET", "GMTCN"):
            sequential = fastest(TRAIN_OURS.format(model=model, epochs=epochs, xla=False, mixed=False))
            rows = [("sequential (Trainer), one fold", sequential["epoch"], sequential)]
            for layout in ("grouped", "batched"):
                figures = fastest(stacked_job(model, layout, 10, epochs=epochs))
                rows.append((f"stacked, 10 folds, {layout}", figures["epoch"] / 10, figures))
            for name, per_fold, figures in rows:
                emit(f"| {model} | {name} | {per_fold:.3f} | {1 / per_fold:.2f} | {figures['build']:.1f} | "
                     f"{figures['peak']:.0f} | {sequential['epoch'] / per_fold:.2f}x |")
    if "breakdown" in sections:
        figures = run(BREAKDOWN)
        emit("", "| one thread, CPU ms per member | 1 member | 2 | 4 | 10 | sequential kernel |",
             "|---|---|---|---|---|---|",
             "| TIM-Net block forward + backward, batched layout | "
             + " | ".join(f"{figures[f'block_{m}']:.2f}" for m in (1, 2, 4, 10))
             + f" | {figures['block_sequential']:.2f} |",
             "| one element-wise pass over (M, 64, 188, 39) | "
             + " | ".join(f"{figures[f'pass_{m}']:.3f}" for m in (1, 2, 4, 10)) + " | |")
    if "memory" in sections:
        emit("", "| TIM-Net at IEMOCAP shapes (x 5531 x 606 x 39, 10 blocks) | s per step | s per member-step | "
             "peak memory, MB |", "|---|---|---|---|")
        for layout in ("grouped", "batched"):
            for members in (int(m) for m in args.memory_members.split(",")):
                figures = run(stacked_job("TIMNET", layout, members, steps=2, n=5531, frames=606, classes=4,
                                          blocks=10))
                emit(f"| {members} member(s), {layout} | {figures['step']:.1f} | "
                     f"{figures['step'] / members:.2f} | {figures['peak']:.0f} |")
    text = "\n".join(lines)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
