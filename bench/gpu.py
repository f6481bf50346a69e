"""Training speed on the device TensorFlow sees (a GPU where there is one), for the table in docs/speed.md.

    bash bench/gpu.sh [--quick] [--markdown PATH]     # sets up the environment, then runs this script

For TIM-Net and GM-TCNet at the EMODB shape (535 utterances, T = 188, 7 classes) and the IEMOCAP shape (5 531,
T = 606, 4 classes, 10 blocks), each in a fresh process (bench/benchmark.py's jobs): seconds per fold-epoch of
the sequential path in float32, with --mixed_precision and with --mixed_precision bf16, and of the stacked path (--training stacked, float32
only: it computes in one type) with 10 folds grouped and batched and with 50 members batched (5 seeds x 10
folds, as a grid would stack them). A fold-epoch is ceil(0.9 n / 64) steps; the step is the mean of two after
the trace. Then the projected wall time of the whole TIM-Net paper table (6 corpora x 10 folds x 500 epochs) on
the fastest path measured at each corpus's shape. Without a GPU it says so and measures the CPU (--quick: the
EMODB shape and no 50-member stack, so it stays short on a small machine). It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import math

from benchmark import STEP_AT_SHAPE, run, stacked_job
from fresh_process import Tables, run_json

DEVICES = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
print(json.dumps([tf.config.experimental.get_device_details(d).get("device_name", d.name)
                  for d in tf.config.list_physical_devices("GPU")]))
"""

# name, utterances, frames T, TIM-Net blocks, classes (Code/data/corpora.py; sizes as the papers' corpora)
SHAPES = {"CASIA": (1200, 172, 8, 6), "EMODB": (535, 188, 8, 7), "EMOVO": (588, 188, 8, 7),
          "IEMOCAP": (5531, 606, 10, 4), "RAVDE": (1440, 215, 8, 8), "SAVEE": (480, 254, 8, 7)}


def steps_per_fold_epoch(n: int) -> int:
    return math.ceil(int(n * 0.9) / 64)


def sequential(model: str, corpus: str, mixed: bool | str) -> float:
    """Seconds per fold-epoch of the sequential path (Common_Model.Trainer)."""
    n, frames, blocks, classes = SHAPES[corpus]
    step = run(STEP_AT_SHAPE.format(model=model, frames=frames, blocks=blocks, classes=classes, mixed=mixed))
    return step["step"] * steps_per_fold_epoch(n)


def stacked(model: str, corpus: str, layout: str, members: int) -> float:
    """Seconds per fold-epoch of the stacked path: one stacked step trains ``members`` folds."""
    n, frames, blocks, classes = SHAPES[corpus]
    step = run(stacked_job(model, layout, members, steps=2, n=n, frames=frames, classes=classes, blocks=blocks))
    return step["step"] * steps_per_fold_epoch(n) / members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the EMODB shape only, no 50-member stack, no paper-table projection")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    args = parser.parse_args()
    gpus = run_json(DEVICES, "device probe")
    device = ", ".join(gpus) if gpus else "no GPU (TensorFlow sees none): the figures are this CPU's"
    tables = Tables(f"device: {device}", args.markdown)
    tables.emit("", "| model | corpus shape | path | s per fold-epoch | fold-epochs/s |", "|---|---|---|---|---|")
    paths = [("sequential, float32", lambda m, c: sequential(m, c, False)),
             ("sequential, --mixed_precision", lambda m, c: sequential(m, c, True)),
             ("sequential, --mixed_precision bf16", lambda m, c: sequential(m, c, "bf16")),
             ("stacked grouped, 10 folds", lambda m, c: stacked(m, c, "grouped", 10)),
             ("stacked batched, 10 folds", lambda m, c: stacked(m, c, "batched", 10)),
             ("stacked batched, 50 members", lambda m, c: stacked(m, c, "batched", 50))][:5 if args.quick else 6]
    fastest: dict[tuple[str, str], float] = {}
    for model in ("TIMNET", "GMTCN"):
        for corpus in ("EMODB",) if args.quick else ("EMODB", "IEMOCAP"):
            for name, measure in paths:
                seconds = measure(model, corpus)
                fastest[model, corpus] = min(seconds, fastest.get((model, corpus), math.inf))
                tables.emit(f"| {model} | {corpus} | {name} | {seconds:.3f} | {1 / seconds:.1f} |")
    if not args.quick:
        tables.emit("", "| TIM-Net paper table: corpus | utterances | T | s per fold-epoch (fastest path) | "
                    "10 folds x 500 epochs |", "|---|---|---|---|---|")
        total = 0.0
        for corpus, (n, frames, _, _) in SHAPES.items():
            # EMODB and IEMOCAP were measured on all five paths above; the other shapes on two of them
            seconds = fastest.get(("TIMNET", corpus)) or min(sequential("TIMNET", corpus, False),
                                                             stacked("TIMNET", corpus, "batched", 10))
            total += 10 * 500 * seconds
            tables.emit(f"| {corpus} | {n} | {frames} | {seconds:.3f} | {10 * 500 * seconds / 3600:.2f} h |")
        tables.emit(f"| all six | | | | {total / 3600:.2f} h |")
    tables.save()


if __name__ == "__main__":
    main()
