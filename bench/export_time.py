"""Export time of the authors' 10 TIM-Net folds (EMODB_46), or of another EMODB run's folds, in each format, and the
exported graph's time per batch, optionally against another checkout.

    .venv/bin/python bench/export_time.py [--formats onnx,tflite,savedmodel] [--rounds 2] [--against ../base]
                                          [--weights Models/<an EMODB run>]

Each job is a fresh interpreter that loads the run (``load_run``, the checkout's own ``Code/``), then times
``Run.export`` of one format, the import and the load not counted, then the written graph on the first 1, 8 and 64
rows of EMODB_2s.npy, in the runtime a consumer would use (ONNX Runtime, LiteRT, TensorFlow; per batch size the
median of 5 calls after one). With ``--against``, the other checkout's ``Code/`` runs the same job right after
this one's, format by format and round by round, so that the machine's state of the moment falls on both alike.
Each job also counts the TensorFlow operations of the traced fold-mean graph (what the exporters convert). It
prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os

from fresh_process import ROOT, Tables, run_json, shared_file

JOB = """
import json, os, sys, tempfile, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {bench!r})
from fresh_process import checkout_package
checkout_package({code!r})  # this checkout's Code/, or --against's
import tensorflow as tf
from timnet_ser import load_run
from timnet_ser.deploy import export
import numpy as np
run = load_run({weights!r}, data="EMODB")
whole = export.fold_mean_model(run.weights)
signature = [tf.TensorSpec((None, *whole.input_shape[1:]), tf.float32)]
operations = len(export._constant_function(whole, signature).graph.get_operations())
x = np.load({features!r}, allow_pickle=True).item()["x"][:64].astype("float32")
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "emodb46.{fmt}")
    start = time.perf_counter()
    run.export(path, {fmt!r})
    seconds = time.perf_counter() - start
    if {fmt!r} == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        call = lambda rows: session.run(None, {{export.INPUT_NAME: rows}})
    elif {fmt!r} == "tflite":
        from ai_edge_litert.interpreter import Interpreter
        runner = Interpreter(model_path=path).get_signature_runner(export.ENDPOINT)
        call = lambda rows: runner(**{{export.INPUT_NAME: rows}})
    else:
        serve = tf.saved_model.load(path).signatures[export.ENDPOINT]
        call = lambda rows: serve(**{{export.INPUT_NAME: tf.constant(rows)}})
    batch_ms = {{}}
    for size in (1, 8, 64):
        rows = x[:size]
        call(rows)
        calls = []
        for _ in range(5):
            begun = time.perf_counter()
            call(rows)
            calls.append(time.perf_counter() - begun)
        batch_ms[size] = 1000 * float(np.median(calls))
print(json.dumps({{"seconds": seconds, "operations": operations, "batch_ms": batch_ms}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default="onnx,tflite,savedmodel")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--against", help="another checkout (its Code/ is timed the same way, in turn)")
    parser.add_argument("--weights", help="a run folder of EMODB weights (default: the authors' EMODB_46, TIM-Net)")
    args = parser.parse_args()
    weights = (os.path.abspath(args.weights) if args.weights else
               os.path.dirname(shared_file("reference", "Test_Models", "EMODB_46", "10-fold_weights_best_1.hdf5")))
    features = shared_file("reference", "EMODB_2s.npy")
    checkouts = {"this checkout": os.path.join(ROOT, "Code")}
    if args.against:
        checkouts["--against"] = os.path.join(os.path.abspath(args.against), "Code")
    what = f"{os.path.basename(weights)}'s folds" if args.weights else "the authors' EMODB_46 (10 TIM-Net folds)"
    tables = Tables(f"Run.export of {what}, each job a fresh process, {args.rounds} round(s)")
    tables.emit("", "| format | checkout | s per export, each round | ms per call at batch 1 / 8 / 64, each round "
                "| TensorFlow operations of the fold-mean graph |", "|---|---|---|---|---|")
    for fmt in args.formats.split(","):
        results = {name: [] for name in checkouts}
        for _ in range(args.rounds):
            for name, code in checkouts.items():
                job = JOB.format(bench=os.path.join(ROOT, "bench"), code=code, weights=weights, features=features,
                                 fmt=fmt)
                results[name].append(run_json(job, f"{fmt} ({name})"))
        for name, rows in results.items():
            seconds = ", ".join(f"{row['seconds']:.1f}" for row in rows)
            batches = "; ".join(" / ".join(f"{ms:.0f}" for ms in row["batch_ms"].values()) for row in rows)
            tables.emit(f"| {fmt} | {name} | {seconds} | {batches} | {rows[0]['operations']} |")


if __name__ == "__main__":
    main()
