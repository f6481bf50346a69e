"""Training and inference speed: our training paths against the original graph, side by side in one run.

    .venv/bin/python bench/benchmark.py [--quick] [--jax] [--inference] [--markdown PATH]

On EMODB-shaped folds (KFold(10) of 535 utterances: 481-482 training rows, T = 188, 39 MFCCs, 7 classes,
batch 64, random values with a fixed seed) it measures, each job in a fresh process (so peak memory does not
mix): the reference graph (bench/reference_graph.py: plain Keras Conv1D/BatchNorm/SpatialDropout1D layers,
``model.compile`` + ``model.fit``, as the authors' code trains); our sequential path (Common_Model.Trainer: one
traced step reused across folds, the hand-written backward passes of training_kernels.py), also with --xla and
--mixed_precision (float16 and bf16); and our stacked path (``--training stacked``: the 10 folds as one stack, in both layouts of
stacked_training.LAYOUTS). For each: seconds per fold-epoch (one fold trained for one epoch: the median epoch
after a warm-up epoch; a stacked epoch trains ten), fold-epochs and utterances per second, the time to build
the model(s) and run the first step, peak resident memory; for TIM-Net and GM-TCNet. Then inference at batch 1
and 64 (with the fused ops, as runs infer where setup.sh built them, and through the Keras layers; --inference:
only this table), MFCC extraction with one process and with all cores, and the projected wall time of a full 10-fold run
with the recipe's epochs (TIM-Net 500, GM-TCNet 300) at the EMODB, RAVDESS and IEMOCAP shapes. Our jobs split
the cores as main.py does (Common_Model.configure_tensorflow); the reference graph runs with TensorFlow's
defaults, as the authors' code did. With --jax, the reference graph is also timed on Keras 3's JAX backend
(the same layers and model.fit, compiled by XLA). It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from fresh_process import SHARED, Tables, run_json

HERE = os.path.dirname(os.path.abspath(__file__))
CODE = os.path.join(os.path.dirname(HERE), "Code")

# Each job runs in its own interpreter and prints one JSON line.
PRELUDE = f"""
import json, os, resource, statistics, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {HERE!r})
import numpy as np
def peak_mb():
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
def data(n, frames, classes):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n, frames, 39), dtype=np.float32),
            np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)])
"""

TRAIN_REFERENCE = PRELUDE + """
import keras
from reference_graph import reference_gmtcn, reference_timnet
x, y = data(481, 188, 7)
start = time.time()
model, _ = {{"TIMNET": reference_timnet, "GMTCN": reference_gmtcn}}["{model}"](188, 7)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001, beta_1=0.93, beta_2=0.98, epsilon=1e-8),
              loss="categorical_crossentropy", metrics=["accuracy"])
model.train_on_batch(x[:64], y[:64])
build = time.time() - start
model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # warm-up: traces the last, smaller batch too
times = []
for _ in range({epochs}):
    start = time.time()
    model.fit(x, y, batch_size=64, epochs=1, shuffle=True, verbose=0)
    times.append(time.time() - start)
print(json.dumps({{"build": build, "epoch": statistics.median(times), "peak": peak_mb()}}))
"""

TRAIN_OURS = PRELUDE + """
from timnet_ser.Common_Model import Trainer, configure_tensorflow
from timnet_ser.core import precision
from timnet_ser.core.config import RunConfig
from timnet_ser.Model import MODELS, build_model
from timnet_ser.core.config import Hyper
import keras
configure_tensorflow(MODELS["{model}"])  # as main.py does
keras.config.set_dtype_policy(precision.policy({mixed!r}))
x, y = data(481, 188, 7)
from timnet_ser.nn import fused_ops
# the command line's default: the fused kernels where setup.sh built them (engine/run_config.py)
config = RunConfig(model="{model}", data="BENCH", classes=list("abcdefg"), feature_path="-", xla={xla},
                   mixed_precision={mixed!r}, fused_kernels=fused_ops.available() and not {xla} and not {mixed!r})
start = time.time()
trainer = Trainer(lambda: build_model(MODELS["{model}"], (188, 39), 7, Hyper()), config)
trainer.reset(0)
trainer.train_epoch(x, y, np.arange(64), 64)
build = time.time() - start
rng = np.random.default_rng(0)
trainer.train_epoch(x, y, rng.permutation(481), 64)  # warm-up: traces nothing new, fills caches
times = []
for _ in range({epochs}):
    start = time.time()
    trainer.train_epoch(x, y, rng.permutation(481), 64)
    times.append(time.time() - start)
start = time.time()
trainer.reset(1)  # the next fold: fresh weights, no new tracing
trainer.train_epoch(x, y, np.arange(64), 64)
next_fold = time.time() - start
print(json.dumps({{"build": build, "epoch": statistics.median(times), "peak": peak_mb(), "next_fold": next_fold}}))
"""

INFERENCE = PRELUDE + """
from timnet_ser.Common_Model import configure_tensorflow
from timnet_ser.Model import MODELS, build_model
from timnet_ser.core.config import Hyper
import tensorflow as tf
configure_tensorflow(MODELS["{model}"])
from timnet_ser.nn import fused_ops
model = build_model(MODELS["{model}"], (188, 39), 7, Hyper())
def infer(batch):  # traced with the fused ops on (where setup.sh built them, as a run infers) or off
    with fused_ops.enabled({fused}):
        return model(batch, training=False)
call = tf.function(infer)
result = {{}}
for batch in (1, 64):
    x, _ = data(batch, 188, 7)
    call(x)
    start = time.time()
    for _ in range(20):
        call(x)
    result[str(batch)] = (time.time() - start) / 20 / batch * 1000
print(json.dumps(result))
"""

STEP_AT_SHAPE = PRELUDE + """
from timnet_ser.Common_Model import Trainer, configure_tensorflow
from timnet_ser.nn import fused_ops
from timnet_ser.core import precision
from timnet_ser.core.config import RunConfig
from timnet_ser.Model import MODELS, build_model
from timnet_ser.core.config import Hyper
import keras
configure_tensorflow(MODELS["{model}"])
keras.config.set_dtype_policy(precision.policy({mixed!r}))
x, y = data(128, {frames}, {classes})
config = RunConfig(model="{model}", data="BENCH", classes=[str(c) for c in range({classes})], feature_path="-",
                   hyper=Hyper(dilation_size={blocks}), mixed_precision={mixed!r},
                   fused_kernels=fused_ops.available() and not {mixed!r})  # the command line's default
trainer = Trainer(lambda: build_model(MODELS["{model}"], ({frames}, 39), {classes}, config.hyper), config)
trainer.reset(0)
trainer.train_epoch(x, y, np.arange(64), 64)
start = time.time()
trainer.train_epoch(x, y, np.arange(128), 64)
print(json.dumps({{"step": (time.time() - start) / 2}}))
"""

STACKED = PRELUDE + """
{package}
from timnet_ser.Common_Model import configure_tensorflow
from timnet_ser.core.config import RunConfig
from timnet_ser.engine.protocol import make_folds
from timnet_ser.Model import MODELS
from timnet_ser.core.config import Hyper
from timnet_ser.engine import stacked_training
from timnet_ser.nn import fused_ops
configure_tensorflow(MODELS["{model}"])  # as main.py does
x, y = data({n}, {frames}, {classes})
# the command line's default: the fused kernels where setup.sh built them (the grouped layout trains through them)
config = RunConfig(model="{model}", data="BENCH", classes=[str(c) for c in range({classes})], feature_path="-",
                   hyper=Hyper(dilation_size={blocks}), fused_kernels=fused_ops.available())
folds = make_folds(len(x), 10, 46)
plans = [stacked_training.plan_member(config, x, y, folds, f % 10, "") for f in range({members})]  # >10: seeds x folds
labels = [p.labels for p in plans]
start = time.time()
trainer = stacked_training.StackedTrainer(MODELS["{model}"], config, x.shape[1:], {classes},
                                          [p.fold_seed for p in plans], "{layout}")
if {steps}:  # a few steps only (memory)
    trainer.train_epoch(x, labels, [p.fit_rows[:64] for p in plans])  # the trace
    start = time.time()
    trainer.train_epoch(x, labels, [p.rng.permutation(p.fit_rows)[:64 * {steps}] for p in plans])
    print(json.dumps({{"step": (time.time() - start) / {steps}, "peak": peak_mb()}}))
    raise SystemExit
trainer.train_epoch(x, labels, [p.fit_rows[:64] for p in plans])  # one step: the trace
build = time.time() - start
trainer.train_epoch(x, labels, [p.rng.permutation(p.fit_rows) for p in plans])  # warm-up, as the other paths
times = []
for _ in range({epochs}):
    start = time.time()
    trainer.train_epoch(x, labels, [p.rng.permutation(p.fit_rows) for p in plans])
    times.append(time.time() - start)
print(json.dumps({{"build": build, "epoch": statistics.median(times), "peak": peak_mb()}}))
"""


def stacked_job(model: str, layout: str, members: int, epochs: int = 0, steps: int = 0, n: int = 535,
                frames: int = 188, classes: int = 7, blocks: int = 8, code: str | None = None) -> str:
    """The stacked job's code; ``code``: another checkout's Code/ to time instead of this one's."""
    package = "" if code is None else f"from fresh_process import checkout_package\ncheckout_package({code!r})"
    return STACKED.format(model=model, layout=layout, members=members, epochs=epochs, steps=steps, n=n,
                          frames=frames, classes=classes, blocks=blocks, package=package)


EXTRACT = PRELUDE + """
from timnet_ser.data import corpora, extraction
start = time.time()
data = extraction.extract_corpus({folder!r}, corpora.get_corpus("EMODB"), workers={workers}, progress=False)
print(json.dumps({{"files_per_s": len(data["x"]) / (time.time() - start), "files": len(data["x"])}}))
"""


def run(code: str, backend: str = "tensorflow") -> dict:
    return run_json(code, "benchmark job", {"KERAS_BACKEND": backend})


def inference_table(tables: Tables) -> None:
    """Inference ms per utterance at batch 1 and 64, with the fused ops (where setup.sh built them: how runs,
    re-tests and the API infer) and through the Keras layers (``--fused_kernels off``; an exported model)."""
    tables.emit("", "| model | inference path | ms per utterance, batch 1 | batch 64 |", "|---|---|---|---|")
    for model in ("TIMNET", "GMTCN"):
        for name, fused in (("fused ops (default)", True), ("Keras layers (--fused_kernels off)", False)):
            inference = run(INFERENCE.format(model=model, fused=fused))
            tables.emit(f"| {model} | {name} | {inference['1']:.2f} | {inference['64']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs per measurement and one run of each training path (about 4 minutes)")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    parser.add_argument("--jax", action="store_true",
                        help="also time the reference graph on Keras 3's JAX backend (needs: pip install 'jax[cpu]')")
    parser.add_argument("--inference", action="store_true", help="only the inference table (about a minute)")
    args = parser.parse_args()
    if args.jax and importlib.util.find_spec("jax") is None:
        raise SystemExit("error: --jax: jax is not installed; pip install 'jax[cpu]' into this environment first")
    epochs, runs = (2, 1) if args.quick else (5, 3)

    def fastest(code: str, backend: str = "tensorflow") -> dict:
        # On this shared machine one process of the same graph can run 1.8x slower than the next (the reference
        # GM-TCNet measured 2.58 and 1.46 s per epoch in consecutive runs): each path is timed in `runs` fresh
        # processes and its fastest run counts, the reference's too, so no speed-up comes from its slow runs.
        return min((run(code, backend) for _ in range(runs)), key=lambda figures: figures["epoch"])
    setting = ("EMODB-shaped utterances, T=188; inference only" if args.inference else
               f"EMODB-shaped folds: 481-482 training utterances, T=188, batch 64; training paths: fastest of {runs} "
               f"run(s), median of {epochs} epochs each")
    tables = Tables(setting, args.markdown)
    if args.inference:
        inference_table(tables)
        tables.save()
        return
    tables.emit("", "| model | training path | s per fold-epoch | fold-epochs/s | utterances/s | build + first step, s | "
             "next fold, s | peak memory, MB | speed-up |", "|---|---|---|---|---|---|---|---|---|")
    for model in ("TIMNET", "GMTCN"):
        reference = fastest(TRAIN_REFERENCE.format(model=model, epochs=epochs))
        rows = [("reference graph (Keras fit)", reference, 1)]
        if args.jax:  # the same graph and model.fit, compiled by JAX/XLA instead of run by TensorFlow
            rows.append(("reference graph, Keras JAX backend",
                         fastest(TRAIN_REFERENCE.format(model=model, epochs=epochs), backend="jax"), 1))
        rows += [(name, fastest(TRAIN_OURS.format(model=model, epochs=epochs, xla=xla, mixed=mixed)), 1)
                 for name, xla, mixed in (("ours (default)", False, False), ("ours, --xla", True, False),
                                          ("ours, --mixed_precision", False, True),
                                          ("ours, --mixed_precision bf16", False, "bf16"))]
        # the 10 folds of a run in one step (--training stacked): a stacked epoch trains 10 fold-epochs
        rows += [(f"ours, --training stacked, 10 folds, {layout}",
                  fastest(stacked_job(model, layout, 10, epochs=epochs)), 10) for layout in ("grouped", "batched")]
        for name, figures, folds in rows:
            per_fold = figures["epoch"] / folds
            next_fold = f"{figures['next_fold']:.2f}" if "next_fold" in figures else "-"
            tables.emit(f"| {model} | {name} | {per_fold:.3f} | {1 / per_fold:.2f} | {481 / per_fold:.0f} | "
                         f"{figures['build']:.1f} | {next_fold} | {figures['peak']:.0f} | "
                         f"{reference['epoch'] / per_fold:.2f}x |")
    inference_table(tables)
    folder = os.path.join(SHARED, "data", "emodb_2s")
    if os.path.isdir(folder):
        tables.emit("", "| MFCC extraction of emodb_2s (535 files) | files/s |", "|---|---|")
        for workers in (1, os.cpu_count()):
            extraction = run(EXTRACT.format(folder=folder, workers=workers))
            tables.emit(f"| {workers} process{'es' if workers > 1 else ''} | {extraction['files_per_s']:.1f} |")
    tables.emit("", "| 10 folds x the recipe's epochs, ours | corpus | utterances | T | s/epoch | projected wall time |",
                "|---|---|---|---|---|---|")
    for model, epochs in (("TIMNET", 500), ("GMTCN", 300)):
        for name, n, frames, blocks, classes in (("EMODB", 535, 188, 8, 7), ("RAVDESS", 1440, 215, 8, 8),
                                                 ("IEMOCAP", 5531, 606, 10, 4)):
            step = run(STEP_AT_SHAPE.format(model=model, frames=frames, blocks=blocks, classes=classes,
                                             mixed=False))["step"]
            epoch = step * -(-int(n * 0.9) // 64)
            tables.emit(f"| {model} x {epochs} | {name} | {n} | {frames} | {epoch:.1f} | "
                         f"{10 * epochs * epoch / 3600:.1f} h |")
    tables.save()

if __name__ == "__main__":
    main()
