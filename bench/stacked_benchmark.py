"""Where the stacked training step's time and memory go (Code/stacked_training.py); its speed against the
sequential path and the reference graph is a table of bench/benchmark.py.

    .venv/bin/python bench/stacked_benchmark.py [--sections breakdown,memory,start] [--memory_members 1,2,4]
        [--rounds 2] [--against ../base] [--markdown PATH]

breakdown: on one thread (CPU time, so that other processes on a shared machine count less): one TIM-Net
temporal-aware block, forward and backward, per member, in the batched layout's kernel for stacks of 1, 2, 4
and 10 members against training_kernels' block for one member, and one element-wise pass over the stack's
activations per member; the products of a block are the same per member in both.

memory: peak resident memory of TIM-Net stacks at IEMOCAP shapes (5531 random utterances, T = 606,
10 blocks per direction, 4 classes, batch 64; the features alone are 523 MB) after two steps, for a few
stack sizes, in both layouts; that is what ``--stack_members`` is chosen from.

start: a run's 10 folds in one stack of the grouped layout (the CPU's default) at EMODB shapes, TIM-Net and
GM-TCNet: the time from the trainer's construction to the end of its first step (the members' models, the trace
of the step, TensorFlow's graph optimisation), seconds per stacked epoch (median of 3, after a warm-up epoch) and
peak memory, ``--rounds`` fresh processes each; with ``--against``, another checkout's Code/ runs the same job right
after each of this checkout's, in turn.
It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os

from benchmark import PRELUDE, run, stacked_job
from fresh_process import TIMING, Tables

BREAKDOWN = PRELUDE + """
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
from timnet_ser.engine import stacked_training
from timnet_ser.nn import training_kernels
rng = np.random.default_rng(0)
B, T, C = 64, 188, 39
""" + TIMING + """

def cpu_ms(function, *args):
    return 1e3 * timed(function, *args, clock=time.process_time)


def normal(*shape):
    return tf.constant(rng.standard_normal(shape, dtype=np.float32) * 0.3)


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
    block = with_backward(lambda x: training_kernels.temporal_aware_block(
        x, *params, *masks, 4, 1 / 0.9, 1e-3, stacked_training.MemberBatches, rows, count)[0], params)
    x = normal(M, B, T, C)
    result[f"block_{M}"] = cpu_ms(block, x) / M
    result[f"pass_{M}"] = cpu_ms(tf.function(passes), x) / 10 / M
single = [p[0] for p in params]
block = with_backward(lambda x: training_kernels.temporal_aware_block(
    x, *single, masks[0][0], masks[1][0], 4, keep_scale=1 / 0.9, epsilon=1e-3)[0], single)
result["block_sequential"] = cpu_ms(block, normal(B, T, C))
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="breakdown,memory",
                        help="comma-separated, of: breakdown (1 minute), memory (minutes per stack size), start (about "
                             "a minute per round and checkout); default breakdown,memory")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per checkout in the start section")
    parser.add_argument("--against", help="another checkout, timed in turn with this one in the start section")
    parser.add_argument("--memory_members", default="1,2,4", help="stack sizes of the memory section (default 1,2,4)")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not sections <= {"breakdown", "memory", "start"}:
        parser.error(f"--sections {args.sections}: choose from breakdown, memory, start")
    if args.against and not os.path.isfile(os.path.join(args.against, "Code", "__init__.py")):
        parser.error(f"--against {args.against}: not a checkout (no Code/__init__.py)")
    tables = Tables("stacked training (each table's first column says its shapes)", args.markdown)
    emit = tables.emit
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
    if "start" in sections:
        checkouts = {"this": None, **({"--against": os.path.join(os.path.abspath(args.against), "Code")}
                                       if args.against else {})}
        emit("", "| EMODB shapes, 10 folds in one grouped stack | checkout | round | build + first step, s | "
             "s per stacked epoch | peak memory, MB |", "|---|---|---|---|---|---|")
        for model in ("TIMNET", "GMTCN"):
            for round_ in range(1, args.rounds + 1):
                for name, code in checkouts.items():
                    figures = run(stacked_job(model, "grouped", 10, epochs=3, code=code))
                    emit(f"| {model} | {name} | {round_} | {figures['build']:.1f} | {figures['epoch']:.2f} | "
                         f"{figures['peak']:.0f} |")
    tables.save()


if __name__ == "__main__":
    main()
