"""Peak memory of ``--mode predict`` over a folder of N generated clips, for several N.

    .venv/bin/python bench/predict_memory.py [--counts 500,2000,5000] [--keep DIR]

A tiny TIM-Net run (2 folds, 1 epoch) is trained on 24 generated SYNTH utterances (data/synthetic_corpus.py);
then, in a fresh process each, it predicts a folder of N generated 1.5 s clips (hard links to the same files for
the smaller N) and writes every row to a CSV. Each figure is that process' peak resident memory (ru_maxrss):
files are read, predicted and written ``predict.CHUNK`` at a time, so the peak should not grow with N.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "Code", "main.py")
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
PREDICT = """
import resource, runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_path({main!r}, run_name="__main__")
except SystemExit as stop:
    status = stop.code
print(status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def main_py(*args: str) -> None:
    done = subprocess.run([sys.executable, MAIN, *args], env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"main.py {' '.join(args)} failed:\n{done.stderr}")


def clips(folder: str, count: int) -> None:
    """``count`` generated 1.5 s clips of the four SYNTH classes in ``folder``."""
    sys.path.insert(0, ROOT)
    from Code.data import synthetic_corpus
    synthetic_corpus.generate(folder, per_class=count // 4, seed=1)


def linked(source: str, folder: str, count: int) -> str:
    """A folder of hard links to the first ``count`` files of ``source`` (the clips' disk space is paid once)."""
    names = sorted(os.path.join(label, name) for label in os.listdir(source)
                   for name in os.listdir(os.path.join(source, label)))
    for name in names[:count]:
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        os.link(os.path.join(source, name), os.path.join(folder, name))
    return folder


def peak(run: str, wav: str, output: str) -> tuple[float, float, int]:
    """(peak resident MB, seconds, rows written) of one fresh ``--mode predict`` process."""
    argv = [MAIN, "--mode", "predict", "--test_path", run, "--wav", wav, "--output", output]
    started = time.time()
    done = subprocess.run([sys.executable, "-c", PREDICT.format(argv=argv, main=MAIN)], env=ENV,
                          capture_output=True, text=True)
    status, kilobytes = done.stderr.strip().splitlines()[-1].split()
    if status not in ("0", "None"):
        raise SystemExit(f"predict failed:\n{done.stderr}")
    with open(output) as f:
        rows = sum(1 for _ in f) - 1
    return int(kilobytes) / 1024, time.time() - started, rows


def measure(counts: list[int], folder: str) -> None:
    corpus, models = os.path.join(folder, "corpus"), os.path.join(folder, "M")
    clips(corpus, 24)
    features = os.path.join(folder, "SYNTH.npy")
    main_py("--mode", "extract", "--data", "SYNTH", "--wav_path", corpus, "--feature_path", features,
            "--workers", "1")
    main_py("--mode", "train", "--data", "SYNTH", "--feature_path", features, "--split_fold", "2", "--epoch", "1",
            "--model_path", models, "--result_path", os.path.join(folder, "R"))
    [run] = [os.path.join(models, name) for name in os.listdir(models)]
    largest = os.path.join(folder, f"clips_{max(counts)}")
    started = time.time()
    clips(largest, max(counts))
    print(f"generated {max(counts)} clips of 1.5 s in {time.time() - started:.0f} s", flush=True)
    print(f"{'files':>6}  {'peak RSS MB':>11}  {'seconds':>7}  {'rows written':>12}")
    for count in sorted(counts):
        wav = largest if count == max(counts) else linked(largest, os.path.join(folder, f"clips_{count}"), count)
        mb, seconds, rows = peak(run, wav, os.path.join(folder, f"predictions_{count}.csv"))
        print(f"{count:>6}  {mb:>11.0f}  {seconds:>7.0f}  {rows:>12}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--counts", default="500,2000,5000", help="folder sizes, comma-separated (multiples of 4)")
    p.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    args = p.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        measure(counts, args.keep)
    else:
        with tempfile.TemporaryDirectory() as folder:
            measure(counts, folder)


if __name__ == "__main__":
    main()
