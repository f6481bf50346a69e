"""DCNN-BLSTMwA training speed per backbone on an EMODB-shaped fold, with generated values.

    .venv/bin/python bench/dcnn_benchmark.py [--utterances 481] [--epochs 2] [--backbones mobilenetv2,resnet50v2]

An EMODB fold trains on 481 utterances of 12 log-Mel segments (64 x 64 x 3, EMO-DB's 96 000 samples
at a 10 ms hop), 7 classes, the model's recipe batch (32), through the engine's training path
(Common_Model.Trainer, as ``--mode train`` does). Per backbone, in a fresh process each: the time to
build the model and run its first step, seconds per epoch (median of ``--epochs`` epochs after that
first step's epoch), and inference per utterance. With fewer ``--utterances`` than 481 the epoch is
timed on those and scaled by 481 / utterances (the step count grows linearly with the utterances);
the table says so. Random initial weights: ImageNet weights change no timing. It prints figures;
it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform

from fresh_process import run_json

FOLD = 481  # training utterances of an EMODB fold (535 - 54)
SEGMENTS = 12  # log-Mel segments of an EMO-DB utterance (data/features.py: feature_shape("logmel3", 96000))

JOB = """
import json, os, statistics, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
from timnet_ser.Common_Model import Trainer, configure_tensorflow
from timnet_ser.core.config import RunConfig
from timnet_ser.Model import MODELS, build_model
from timnet_ser.core.config import Hyper
spec = MODELS["DCNN_BLSTMwA"]
configure_tensorflow(spec)  # as main.py does
recipe = spec.recipe
rng = np.random.default_rng(0)
x = rng.standard_normal(({n}, {segments}, 64, 64, 3), dtype=np.float32)  # (N, S, 64, 64, 3)
y = np.eye(7, dtype="float32")[rng.integers(0, 7, {n})]
hyper = Hyper(backbone={backbone!r}, backbone_alpha={alpha}, backbone_weights="none")
config = RunConfig(model=spec.name, data="EMODB", classes=list("abcdefg"), feature_path="-", epochs={epochs},
                   batch_size=recipe.batch_size, lr=recipe.lr, beta1=recipe.beta1, beta2=recipe.beta2,
                   epsilon=recipe.epsilon, label_smoothing=0.0, hyper=hyper)
start = time.time()
trainer = Trainer(lambda: build_model(spec, x.shape[1:], 7, hyper), config)
trainer.reset(0)
order = np.random.default_rng(1).permutation({n})
trainer.train_epoch(x, y, order[:recipe.batch_size], recipe.batch_size)
first = time.time() - start
times = []
for epoch in range({epochs}):
    start = time.time()
    trainer.train_epoch(x, y, np.random.default_rng(epoch).permutation({n}), recipe.batch_size)
    times.append(time.time() - start)
start = time.time()
trainer.predict(x[:64], batch_size=32)
infer = (time.time() - start) / 64
print(json.dumps({{"params": trainer.model.count_params(), "first": first, "epoch": statistics.median(times),
                  "infer_ms": 1000 * infer, "batch": recipe.batch_size, "epochs": recipe.epochs}}))
"""


def run_job(backbone: str, alpha: float, utterances: int, epochs: int) -> dict:
    code = JOB.format(n=utterances, segments=SEGMENTS, backbone=backbone, alpha=alpha, epochs=epochs)
    return run_json(code, f"{backbone}: the timing job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=FOLD, help=f"training utterances timed (default {FOLD})")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the first step (median)")
    parser.add_argument("--backbones", default="mobilenetv2,resnet50v2", help="comma-separated backbones")
    parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2's width multiplier")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.processor() or platform.machine()}, {cores} usable core(s); Python "
          f"{platform.python_version()}; EMODB-shaped fold: {FOLD} training utterances x {SEGMENTS} segments "
          f"of 64x64x3, 7 classes; timed on {args.utterances} utterances, {args.epochs} epoch(s)\n")
    scaled = args.utterances != FOLD
    print(f"| backbone | parameters | batch | build + first step, s | s/epoch{' (scaled to 481)' if scaled else ''} "
          "| utterances/s | inference ms/utterance | 10 folds x the recipe's epochs |")
    print("|---|---|---|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        alpha = args.alpha if backbone == "mobilenetv2" else 1.0
        r = run_job(backbone, alpha, args.utterances, args.epochs)
        epoch = r["epoch"] * FOLD / args.utterances
        name = f"{backbone} alpha {alpha:g}" if backbone == "mobilenetv2" else backbone
        print(f"| {name} | {r['params']:,} | {r['batch']} | {r['first']:.1f} | {epoch:.1f} | "
              f"{args.utterances / r['epoch']:.1f} | {r['infer_ms']:.1f} | "
              f"{10 * r['epochs'] * epoch / 3600:.1f} h ({r['epochs']} epochs) |",
              flush=True)


if __name__ == "__main__":
    main()
