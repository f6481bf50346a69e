"""End to end: a 10-fold run of N epochs on the shared EMODB features, start-up included, ours through the
command line against the authors' training loop, side by side in one run.

    PYTHONPATH=tf_keras_aside .venv/bin/python bench/end_to_end.py [--model TIMNET] [--epochs 20] [--runs 1]
        [--skip tf_keras|keras3|sequential|stacked ...] [--markdown PATH]

Each job is a fresh interpreter timed by the wall clock from its start to its exit (imports, reading the
features, building, training, evaluating and saving every fold):

- the authors' loop: their fold loop (KFold(10, shuffle, seed 46); per fold a new model, ``model.compile``,
  ``model.fit`` with the test fold as validation data and ``ModelCheckpoint(save_best_only)`` saving the best
  epoch's weights, then reloading them, ``model.evaluate`` and ``model.predict`` on the test fold) on the
  original graph (bench/reference_graph.py), twice:
  - under tf_keras, the Keras 2 that the authors' code (written for TensorFlow 2.4 and its ``tf.keras``) runs
    on today's TensorFlow with ``TF_USE_LEGACY_KERAS=1``, weights saved as ``.hdf5`` like theirs. tf_keras is
    not a requirement of the project: install it aside
    (``.venv/bin/python -m pip install --target tf_keras_aside "tf_keras~=2.21.0" --no-deps``) and put that
    folder on PYTHONPATH; without it this row is skipped with one line. The speed-ups are against this row;
  - in Keras 3 (the stand-in measured before tf_keras was; ``.weights.h5`` files, which Keras 3 requires);
- ours: ``python Code/main.py --mode train --protocol paper`` (the same work: the test fold is evaluated after
  every epoch and the best epoch kept), with ``--training sequential`` and ``--training stacked``.

Every job writes into a temporary folder that is removed afterwards. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

from fresh_process import Tables, shared_file

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN = os.path.join(os.path.dirname(HERE), "Code", "main.py")

AUTHORS_LOOP = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {here!r})
import numpy as np
{import_keras}
from sklearn.model_selection import KFold
from reference_graph import reference_gmtcn, reference_timnet
data = np.load({features!r}, allow_pickle=True).item()
x, y = data["x"].astype("float32"), data["y"].astype("float32")
build = {{"TIMNET": reference_timnet, "GMTCN": reference_gmtcn}}["{model}"]
for fold, (train, test) in enumerate(KFold(10, shuffle=True, random_state=46).split(x)):
    model, _ = build(x.shape[1], y.shape[1], keras=keras)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001, beta_1=0.93, beta_2=0.98, epsilon=1e-8),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    labels = y[train] * (1 - {smoothing}) + {smoothing} / y.shape[1]
    best = os.path.join({folder!r}, f"10-fold_weights_best_{{fold + 1}}{suffix}")
    model.fit(x[train], labels, validation_data=(x[test], y[test]), batch_size=64, epochs={epochs}, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(best, monitor="val_accuracy", save_best_only=True,
                                                         save_weights_only=True)])
    model.load_weights(best)
    model.evaluate(x[test], y[test], verbose=0)
    model.predict(x[test], verbose=0)
    print(f"fold {{fold + 1}}/10 done", flush=True)
"""

# How each reference row gets its Keras: (the row's name, the import line, the weights' suffix, environment).
# Under TF_USE_LEGACY_KERAS=1 ``tf.keras`` is tf_keras, as in the authors' ``from tensorflow.keras import ...``;
# the assert keeps a missing tf_keras from timing Keras 3 under the tf_keras row's name.
REFERENCES = {
    "tf_keras": ("the authors' loop (original graph, Keras 2 fit), tf_keras",
                 'import tensorflow as tf\nkeras = tf.keras\nassert keras.__name__.startswith("tf_keras")',
                 ".hdf5", {"TF_USE_LEGACY_KERAS": "1"}),
    "keras3": ("the authors' loop (original graph, Keras fit), Keras 3", "import keras", ".weights.h5", {}),
}
TRAININGS = ("sequential", "stacked")
TF_KERAS_MISSING = ("the authors' loop under tf_keras: skipped, tf_keras is not importable (install it aside: "
                    '.venv/bin/python -m pip install --target tf_keras_aside "tf_keras~=2.21.0" --no-deps, then '
                    "run with PYTHONPATH=tf_keras_aside)")


def timed_job(argv: list[str], what: str, env: dict) -> float:
    """Wall seconds of the process ``argv`` (extra environment variables ``env``), start-up to exit; a failing
    job ends the script with its stderr."""
    start = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    seconds = time.time() - start
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="TIMNET", choices=("TIMNET", "GMTCN"))
    parser.add_argument("--epochs", type=int, default=20, help="epochs per fold (default 20)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each job; the fastest counts (default 1)")
    parser.add_argument("--skip", action="append", default=[], choices=(*REFERENCES, *TRAININGS),
                        help="leave this row out (repeatable)")
    parser.add_argument("--markdown", help="also write the table to this Markdown file")
    args = parser.parse_args()
    if "tf_keras" not in args.skip and importlib.util.find_spec("tf_keras") is None:
        print(TF_KERAS_MISSING, flush=True)
        args.skip.append("tf_keras")
    features = shared_file("reference", "EMODB_2s.npy")
    smoothing = 0.1 if args.model == "TIMNET" else 0.0  # the recipes (SPEC §4)

    def fastest(make_argv, what: str, env: dict) -> float:
        seconds = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as folder:
                seconds.append(timed_job(make_argv(folder), what, env))
            print(f"  {what}: {seconds[-1]:.0f} s", flush=True)
        return min(seconds)

    def authors(import_keras: str, suffix: str):
        return lambda folder: [sys.executable, "-c", AUTHORS_LOOP.format(
            here=HERE, features=features, model=args.model, smoothing=smoothing, folder=folder, epochs=args.epochs,
            import_keras=import_keras, suffix=suffix)]

    def ours(training: str):
        return lambda folder: [sys.executable, MAIN, "--mode", "train", "--data", "EMODB", "--model", args.model,
                               "--feature_path", features, "--split_fold", "10", "--random_seed", "46",
                               "--epoch", str(args.epochs), "--protocol", "paper", "--training", training,
                               "--model_path", os.path.join(folder, "Models"),
                               "--result_path", os.path.join(folder, "Results")]

    references = [(name, fastest(authors(import_keras, suffix), name, env))
                  for key, (name, import_keras, suffix, env) in REFERENCES.items() if key not in args.skip]
    rows = references + [(f"ours, --training {training}", fastest(ours(training), f"ours, {training}", {}))
                         for training in TRAININGS if training not in args.skip]
    # The speed-ups are against the first reference row measured: tf_keras, the way the authors' code runs today.
    baseline = references[0][1] if references else None
    tables = Tables(f"{args.model} on EMODB_2s.npy (535 utterances), 10 folds x {args.epochs} epochs, the test fold "
                    f"evaluated after every epoch; wall time from start to exit, fastest of {args.runs} run(s)",
                    args.markdown)
    tables.emit("", "| job | wall time, s | fold-epochs/s | speed-up |", "|---|---|---|---|",
                *(f"| {name} | {seconds:.0f} | {10 * args.epochs / seconds:.2f} | "
                  f"{f'{baseline / seconds:.2f}x' if baseline else '-'} |" for name, seconds in rows))
    tables.save()


if __name__ == "__main__":
    main()
