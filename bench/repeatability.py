"""Does the same seed give the same run, bit for bit? Many same-seed runs under different loads and settings.

    .venv/bin/python bench/repeatability.py [--runs 10] [--epochs 3] [--conditions busy2/default+det/fresh,...]
    .venv/bin/python bench/repeatability.py --speed 5      # a fold-epoch with and without op determinism

Each condition (LOAD/SETTINGS[/fresh], see CONDITIONS) is one fresh interpreter (TensorFlow's thread settings are
fixed at its start) that trains the toy fold of tests/test_engine.py (TIM-Net, 3 TABs per direction, 24 rows of
24 x 39 frames, batch 8) ``--runs`` times and compares every run with the first, variable by variable. Without
``fresh`` one traced step serves every run (fold seed 7001); with it, each run builds a new trainer (a newly
traced step) and trains the folds 7000-7002 one after the other, as each run of the test does. While it runs,
the condition's load runs beside it: nothing (idle), two busy loops (busy2: ``python -c 'while 1: pass'``, one per
core of a 2-core machine), or a second training process looping (train). Settings: the threads and graph
optimiser (``default``: TensorFlow's own, Grappler on; ``threads``: main.py's threads, Grappler on;
``nograppler``: Grappler off; ``nodepopt``: Grappler without its dependency optimiser; ``project``:
Common_Model.configure_tensorflow, as main.py trains; ``1``: one thread everywhere), op determinism (``+det``:
``tf.config.experimental.enable_op_determinism``, which main.py turns on) and oneDNN (``-onednn``:
TF_ENABLE_ONEDNN_OPTS=0).

Printed per condition: the load average before it, how many runs were bit-equal to the first, the largest
absolute difference from the first run per kind of variable (trainable weights, BatchNorm moving statistics,
other state, optimiser state, softmax outputs, loss history), the largest difference of its first run from the
first run of an earlier process with the same settings, and which variables differed. Every load it starts is
stopped, whatever happens. docs/training.md#repeatability quotes its output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# condition name -> (threads, op determinism, oneDNN, load, a new trainer per run)
CONDITIONS = {
    "idle/default": ("default", False, "1", "none", False),
    "busy2/default": ("default", False, "1", "busy2", False),
    "train/default": ("default", False, "1", "train", False),
    "idle/project+det": ("project", True, "1", "none", False),
    "busy2/project+det": ("project", True, "1", "busy2", False),
    "train/project+det": ("project", True, "1", "train", False),
    "busy2/1thread": ("1", False, "1", "busy2", False),
    "busy2/default+det": ("default", True, "1", "busy2", False),
    "busy2/default-onednn": ("default", False, "0", "busy2", False),
    "idle/default/fresh": ("default", False, "1", "none", True),
    "busy2/default/fresh": ("default", False, "1", "busy2", True),
    "train/default/fresh": ("default", False, "1", "train", True),
    "train/project+det/fresh": ("project", True, "1", "train", True),
    "idle/nograppler/fresh": ("nograppler", False, "1", "none", True),
    "idle/project+det/fresh": ("project", True, "1", "none", True),
    "idle/default+det/fresh": ("default", True, "1", "none", True),
    "idle/default-onednn/fresh": ("default", False, "0", "none", True),
    "busy2/default+det/fresh": ("default", True, "1", "busy2", True),
    "train/default+det/fresh": ("default", True, "1", "train", True),
    "busy2/project+det/fresh": ("project", True, "1", "busy2", True),
    "busy2/1thread/fresh": ("1", False, "1", "busy2", True),
    "busy2/threads/fresh": ("threads", False, "1", "busy2", True),
    "busy2/nograppler/fresh": ("nograppler", False, "1", "busy2", True),
    "busy2/nodepopt/fresh": ("nodepopt", False, "1", "busy2", True),
}
DEFAULT = "busy2/default+det/fresh,busy2/threads/fresh,busy2/nograppler/fresh,busy2/nodepopt/fresh,busy2/project+det/fresh"
KINDS = ("trainable", "bn_moving", "other_state", "optimizer", "predictions", "loss")

WORKER = """
import json, os, random, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
sys.path.insert(0, os.path.join({root!r}, "bench"))
from fresh_process import checkout_package  # this checkout's Code/ as timnet_ser
checkout_package()
import numpy as np
import tensorflow as tf
from timnet_ser.Common_Model import Trainer, configure_tensorflow
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.Model import MODELS, build_model
threads, determinism, runs, epochs, loop, fresh = {threads!r}, {determinism!r}, {runs}, {epochs}, {loop!r}, {fresh!r}
if threads == "project":
    configure_tensorflow(MODELS["TIMNET"])
elif threads == "nograppler":  # the graph optimiser off (as main.py trains), TensorFlow's own threads
    tf.config.optimizer.set_experimental_options({{"disable_meta_optimizer": True}})
elif threads == "nodepopt":  # the graph optimiser on, but not its dependency optimiser (control edges)
    tf.config.optimizer.set_experimental_options({{"dependency_optimization": False}})
elif threads == "threads":  # configure_tensorflow's threads, the graph optimiser left on
    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.config.threading.set_intra_op_parallelism_threads(1)
elif threads == "1":
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
if determinism:
    tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
labels = np.arange(36) % 3
x = rng.normal(size=(36, 24, 39)).astype("float32") + labels[:, None, None].astype("float32")
y = np.eye(3, dtype="float32")[labels]
cfg = RunConfig(model="TIMNET", data="TOY", classes=["a", "b", "c"], feature_path="toy.npy", split_fold=3,
                random_seed=7, epochs=epochs, batch_size=8, label_smoothing=0.1, hyper=Hyper(dilation_size=3))
def new_trainer():
    return Trainer(lambda: build_model(MODELS["TIMNET"], (24, 39), 3, cfg.hyper), cfg)
trainer = new_trainer()
def kind(v):
    if any(v is t for t in trainer.model.trainable_variables):
        return "trainable"
    return "bn_moving" if "moving_" in v.path else "other_state"
kinds = [kind(v) for v in trainer.model.variables]
paths = [v.path for v in trainer.model.variables]
where = {{}}  # kind -> the name of each value, for the report of which ones differ
def one_run():
    global trainer
    if fresh:  # as the test's runs: a new trainer (a newly traced step) per run, its three folds one after the other
        trainer = new_trainer()
    values = {{k: [] for k in {kinds_all!r}}}
    values.update(optimizer=[], predictions=[], loss=[])
    for seed in (7000, 7001, 7002) if fresh else (7001,):
        trainer.reset(seed)
        order = np.random.default_rng(seed)
        losses = [trainer.train_epoch(x[:24], y[:24], order.permutation(24), 8)[0] for _ in range(epochs)]
        for k, v, path in zip(kinds, trainer.get_weights(), paths):
            values[k].append(v)
            where.setdefault(k, []).append(f"{{seed}}:{{path}}")
        values["optimizer"] += [v.numpy() for v in trainer.optimizer.variables]
        values["predictions"].append(trainer.predict(x[24:]))
        values["loss"].append(np.array(losses))
    return values
if loop:
    while True:
        one_run()
first = one_run()
np.savez({dump!r}, **{{f"{{k}}_{{i}}": a for k in first for i, a in enumerate(first[k])}})
equal, worst, differing = 0, {{k: 0.0 for k in first}}, set()
for _ in range(runs - 1):
    other = one_run()
    same = True
    for k in first:
        for i, (a, b) in enumerate(zip(first[k], other[k])):
            if not np.array_equal(a, b):
                same = False
                differing.add(where[k][i] if k in where else f"{{k}}[{{i}}]")
                worst[k] = max(worst[k], float(np.max(np.abs(a.astype("float64") - b.astype("float64")))))
    equal += same
print(json.dumps({{"equal": equal, "compared": runs - 1, "worst": worst, "differing": sorted(differing),
                   "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
                   "inter": tf.config.threading.get_inter_op_parallelism_threads(),
                   "intra": tf.config.threading.get_intra_op_parallelism_threads()}}))
"""


SPEED = """
import json, os, statistics, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
sys.path.insert(0, os.path.join({root!r}, "bench"))
from fresh_process import checkout_package  # this checkout's Code/ as timnet_ser
checkout_package()
import numpy as np
import tensorflow as tf
from timnet_ser.Common_Model import Trainer, configure_tensorflow
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.Model import MODELS, build_model
configure_tensorflow(MODELS["TIMNET"])  # as main.py does
if {determinism!r}:
    tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
x = rng.standard_normal((481, 188, 39), dtype=np.float32)
y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 481)]
cfg = RunConfig(model="TIMNET", data="BENCH", classes=list("abcdefg"), feature_path="-")
trainer = Trainer(lambda: build_model(MODELS["TIMNET"], (188, 39), 7, Hyper()), cfg)
trainer.reset(0)
trainer.train_epoch(x, y, rng.permutation(481), 64)  # warm-up: traces the step for both batch sizes
times = []
for _ in range({epochs}):
    start = time.perf_counter()
    trainer.train_epoch(x, y, rng.permutation(481), 64)
    times.append(time.perf_counter() - start)
print(json.dumps({{"epoch": statistics.median(times), "times": times}}))
"""


def speed(epochs: int) -> None:
    """Seconds per fold-epoch (EMODB's shape: 481 rows of 188 x 39, batch 64, TIM-Net as main.py trains it), with
    and without op determinism, each in a fresh process, alternating, the median epoch of each."""
    print(f"TIM-Net fold-epoch, 481 x 188 x 39, batch 64, median of {epochs} epochs after a warm-up, main.py's threads")
    for determinism in (False, True, False, True):
        with open("/proc/loadavg") as f:
            loadavg = f.read().split()[0]
        done = subprocess.run([sys.executable, "-c", SPEED.format(root=ROOT, determinism=determinism, epochs=epochs)],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"speed job failed:\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  op determinism {'on ' if determinism else 'off'}: {result['epoch']:.3f} s per fold-epoch "
              f"(load {loadavg}; epochs {', '.join(f'{t:.3f}' for t in result['times'])})", flush=True)


def worker_code(threads: str, determinism: bool, runs: int, epochs: int, loop: bool = False,
                fresh: bool = False, dump: str = os.devnull) -> str:
    return WORKER.format(root=ROOT, threads=threads, determinism=determinism, runs=runs, epochs=epochs, loop=loop,
                         fresh=fresh, dump=dump,
                         kinds_all=["trainable", "bn_moving", "other_state"])


def start_load(load: str, epochs: int) -> list:
    """The processes that load the machine for ``load``; the caller stops them."""
    if load == "busy2":
        return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    if load == "train":
        return [subprocess.Popen([sys.executable, "-c", worker_code("default", False, 0, epochs, loop=True)],
                                 env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}, stderr=subprocess.DEVNULL)]
    return []


def stop(processes: list) -> None:
    for process in processes:
        process.kill()
        process.wait()


def measure(name: str, runs: int, epochs: int, dump: str) -> dict:
    threads, determinism, onednn, load, fresh = CONDITIONS[name]
    loads = start_load(load, epochs)
    try:
        time.sleep(3 if loads else 0)  # the load is running (a training load has imported TensorFlow) first
        with open("/proc/loadavg") as f:
            loadavg = f.read().split()[0]
        done = subprocess.run([sys.executable, "-c", worker_code(threads, determinism, runs, epochs, fresh=fresh, dump=dump)],
                              capture_output=True, text=True, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn})
    finally:
        stop(loads)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": loadavg}


def largest_difference(a: str, b: str) -> float:
    """The largest |difference| between two processes' first runs (saved by the worker): 0.0 when bit-equal."""
    with np.load(a) as first, np.load(b) as second:
        return max(float(np.max(np.abs(first[k].astype("float64") - second[k].astype("float64")), initial=0.0))
                   for k in first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="same-seed runs per condition (each compared with the first)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--conditions", default=DEFAULT, help="comma-separated, from: " +
                        ", ".join(CONDITIONS))
    parser.add_argument("--speed", type=int, metavar="EPOCHS", default=0,
                        help="instead: time a fold-epoch with and without op determinism (EPOCHS epochs each)")
    args = parser.parse_args()
    if args.speed:
        return speed(args.speed)
    print(f"{args.runs} same-seed runs per condition ({args.epochs} epochs of the toy fold), each against the first; "
          f"max |difference| per kind, '-' where bit-equal", flush=True)
    print("'other process': max |difference| of this process's first run from the first process's with the same "
          "settings (threads, determinism, oneDNN, trainer per run), any kind; '=' where bit-equal")
    print(f"{'condition':24} {'load':>5} {'threads':>9} {'equal':>7}  " + " ".join(f"{k:>11}" for k in KINDS) +
          f" {'other process':>13}")
    first_of = {}
    with tempfile.TemporaryDirectory() as folder:
        for number, name in enumerate(args.conditions.split(",")):
            dump = os.path.join(folder, f"{number}.npz")
            result = measure(name, args.runs, args.epochs, dump)
            settings = CONDITIONS[name][:3] + CONDITIONS[name][4:]
            reference = first_of.setdefault(settings, dump)
            across = "" if reference == dump else largest_difference(reference, dump) or "="
            cells = " ".join(f"{result['worst'][k]:11.2g}" if result["worst"][k] else f"{'-':>11}" for k in KINDS)
            print(f"{name:24} {result['load']:>5} {result['inter']:>4}/{result['intra']:<4} "
                  f"{result['equal']:>3}/{result['compared']:<3}  {cells} {across:>13}", flush=True)
            if result["differing"]:
                print(f"    differing: {', '.join(result['differing'])}", flush=True)


if __name__ == "__main__":
    main()
