"""End to end: a 10-fold run of N epochs on the shared EMODB features, start-up included, ours through the
command line against the authors' training loop, side by side in one run.

    .venv/bin/python bench/end_to_end.py [--model TIMNET] [--epochs 20] [--runs 1] [--markdown PATH]

Each job is a fresh interpreter timed by the wall clock from its start to its exit (imports, reading the
features, building, training, evaluating and saving every fold):

- the authors' loop: their fold loop (KFold(10, shuffle, seed 46); per fold a new model, ``model.compile``,
  ``model.fit`` with the test fold as validation data and ``ModelCheckpoint(save_best_only)`` saving the best
  epoch's weights, then reloading them, ``model.evaluate`` and ``model.predict`` on the test fold) on the
  original graph (bench/reference_graph.py) in Keras 3. The authors ran it on TensorFlow 2.4 with Keras 2;
  those versions no longer install, so this is the same work on today's TensorFlow;
- ours: ``python Code/main.py --mode train --protocol paper`` (the same work: the test fold is evaluated after
  every epoch and the best epoch kept), with ``--training sequential`` and ``--training stacked``.

Every job writes into a temporary folder that is removed afterwards. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from fresh_process import Tables

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN = os.path.join(os.path.dirname(HERE), "Code", "main.py")
SHARED = os.environ.get("SER_SHARED", os.path.join(os.path.dirname(HERE), "..", "shared"))

AUTHORS_LOOP = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {here!r})
import numpy as np
import keras
from sklearn.model_selection import KFold
from reference_graph import reference_gmtcn, reference_timnet
data = np.load({features!r}, allow_pickle=True).item()
x, y = data["x"].astype("float32"), data["y"].astype("float32")
build = {{"TIMNET": reference_timnet, "GMTCN": reference_gmtcn}}["{model}"]
for fold, (train, test) in enumerate(KFold(10, shuffle=True, random_state=46).split(x)):
    model, _ = build(x.shape[1], y.shape[1])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001, beta_1=0.93, beta_2=0.98, epsilon=1e-8),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    labels = y[train] * (1 - {smoothing}) + {smoothing} / y.shape[1]
    best = os.path.join({folder!r}, f"10-fold_weights_best_{{fold + 1}}.weights.h5")
    model.fit(x[train], labels, validation_data=(x[test], y[test]), batch_size=64, epochs={epochs}, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(best, monitor="val_accuracy", save_best_only=True,
                                                         save_weights_only=True)])
    model.load_weights(best)
    model.evaluate(x[test], y[test], verbose=0)
    model.predict(x[test], verbose=0)
    print(f"fold {{fold + 1}}/10 done", flush=True)
"""


def timed_job(argv: list[str], what: str) -> float:
    """Wall seconds of the process ``argv``, start-up to exit; a failing job ends the script with its stderr."""
    start = time.time()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.time() - start
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="TIMNET", choices=("TIMNET", "GMTCN"))
    parser.add_argument("--epochs", type=int, default=20, help="epochs per fold (default 20)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each job; the fastest counts (default 1)")
    parser.add_argument("--markdown", help="also write the table to this Markdown file")
    args = parser.parse_args()
    features = os.path.join(SHARED, "reference", "EMODB_2s.npy")
    if not os.path.isfile(features):
        raise SystemExit(f"error: {features}: not found (set SER_SHARED to the shared/ folder)")
    smoothing = 0.1 if args.model == "TIMNET" else 0.0  # the recipes (SPEC §4)

    def fastest(make_argv, what: str) -> float:
        seconds = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                seconds.append(timed_job(make_argv(folder), what))
            print(f"  {what}: {seconds[-1]:.0f} s", flush=True)
        return min(seconds)

    def ours(training: str):
        return lambda folder: [sys.executable, MAIN, "--mode", "train", "--data", "EMODB", "--model", args.model,
                               "--feature_path", features, "--split_fold", "10", "--random_seed", "46",
                               "--epoch", str(args.epochs), "--protocol", "paper", "--training", training,
                               "--model_path", os.path.join(folder, "Models"),
                               "--result_path", os.path.join(folder, "Results")]

    authors = fastest(lambda folder: [sys.executable, "-c", AUTHORS_LOOP.format(
        here=HERE, features=features, model=args.model, smoothing=smoothing, folder=folder, epochs=args.epochs)],
        "the authors' loop")
    rows = [("the authors' loop (original graph, Keras fit), Keras 3", authors)]
    rows += [(f"ours, --training {training}", fastest(ours(training), f"ours, {training}"))
             for training in ("sequential", "stacked")]
    tables = Tables(f"{args.model} on EMODB_2s.npy (535 utterances), 10 folds x {args.epochs} epochs, the test fold "
                    f"evaluated after every epoch; wall time from start to exit, fastest of {args.runs} run(s)",
                    args.markdown)
    tables.emit("", "| job | wall time, s | fold-epochs/s | speed-up |", "|---|---|---|---|",
                *(f"| {name} | {seconds:.0f} | {10 * args.epochs / seconds:.2f} | {authors / seconds:.2f}x |"
                  for name, seconds in rows))
    tables.save()

if __name__ == "__main__":
    main()
