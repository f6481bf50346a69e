"""What Python's cyclic garbage collector costs a training run through the command line, with and without the
freezes that ``cli/modes.py`` makes (TensorFlow's objects frozen once it has started; every object frozen before
the interpreter ends).

    .venv/bin/python bench/collector.py                    # 10 folds x 1 epoch of TIM-Net, 3 rounds, ~3 minutes
    .venv/bin/python bench/collector.py --epochs 2 --rounds 5

Each round runs ``Code/main.py --mode train --protocol paper`` on EMODB_2s.npy twice, in fresh processes, in turn:
as shipped, and with ``gc.freeze`` made a no-op (the collector as before the change). A ``gc.callbacks`` hook
sums the collections' time by generation; the job's wall time is split at the moment ``process_main`` returns,
into the run and the interpreter's exit. It prints medians over the rounds and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from fresh_process import ROOT, Tables, run_json, shared_file

# Runs main.py's process entry as `python main.py` does, timing every collection; the last stdout line is JSON.
JOB = """
import gc, json, runpy, sys, time
took = {0: 0.0, 1: 0.0, 2: 0.0}
count = {0: 0, 1: 0, 2: 0}
began = {}
def timed(phase, info):
    if phase == "start":
        began["at"] = time.perf_counter()
    else:
        took[info["generation"]] += time.perf_counter() - began["at"]
        count[info["generation"]] += 1
gc.callbacks.append(timed)
if not FREEZE:
    gc.freeze = lambda: None
sys.argv = ["main.py", *ARGV]
try:
    runpy.run_path(MAIN, run_name="__main__")
except SystemExit as done:
    code = done.code
gc.callbacks.remove(timed)
print(json.dumps({"code": code, "ended": time.monotonic(), "collections": count, "seconds": took}), flush=True)
"""


def one_job(freeze: bool, argv: list[str]) -> dict:
    """One training process; its collections, the run's seconds and the exit's seconds."""
    main = os.path.join(ROOT, "Code", "main.py")
    code = JOB.replace("MAIN", repr(main)).replace("FREEZE", repr(freeze)).replace("ARGV", repr(argv))
    started = time.monotonic()
    job = run_json(code, "the training job")
    ended = time.monotonic()
    return {"run": job["ended"] - started, "exit": ended - job["ended"], "total": ended - started,
            "full collections": job["collections"]["2"], "full, s": job["seconds"]["2"],
            "all collections, s": sum(job["seconds"].values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["TIMNET", "GMTCN"], default="TIMNET")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    features = shared_file("reference", "EMODB_2s.npy")
    variants = {"as shipped (frozen)": True, "gc.freeze a no-op": False}
    jobs: dict[str, list[dict]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        for name, freeze in (variants.items() if round_ % 2 == 0 else reversed(variants.items())):
            with tempfile.TemporaryDirectory() as folder:
                argv = ["--mode", "train", "--data", "EMODB", "--model", args.model, "--feature_path", features,
                        "--split_fold", "10", "--random_seed", "46", "--epoch", str(args.epochs), "--protocol",
                        "paper", "--model_path", os.path.join(folder, "Models"),
                        "--result_path", os.path.join(folder, "Results")]
                jobs[name].append(one_job(freeze, argv))
            print(f"  round {round_ + 1}, {name}: {jobs[name][-1]['total']:.1f} s", flush=True)
    tables = Tables(f"{args.model} on EMODB_2s.npy, 10 folds x {args.epochs} epoch(s) through the command line; "
                    f"medians of {args.rounds} round(s)")
    columns = {"full collections": "full collections", "full, s": "their seconds",
               "all collections, s": "all collections, s", "run": "the run, s", "exit": "the exit, s",
               "total": "wall, s"}
    tables.emit("", "| variant | " + " | ".join(columns.values()) + " |", "|---|" + "---|" * len(columns),
                *(f"| {name} | " + " | ".join(f"{statistics.median(j[k] for j in runs):.2f}" for k in columns) + " |"
                  for name, runs in jobs.items()))


if __name__ == "__main__":
    main()
