"""Two runs side by side, fold by fold: the WAR and UAR of every fold both have finished, their means, and the
WAR and UAR of those folds' test predictions pooled (the authors' UAR: macro recall over all test utterances).

    .venv/bin/python bench/compare_folds.py Models/<run A> Models/<run B>

Made for docs/training.md's comparison of the same seed and folds with and without
``--label_smoothing_history cumulative``; it reads the runs' fold records, so it works on unfinished runs too
(and says how many folds it compares). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from fresh_process import one_line_errors

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the run folder's module imports Keras
from timnet_ser.runs.results import fold_metrics
from timnet_ser.runs.run_folder import require_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs=2, help="two run folders")
    a, b = (require_run(folder, "run") for folder in parser.parse_args().runs)
    if a.test_rows != b.test_rows:
        raise SystemExit("error: the two runs have different folds; a fold-by-fold comparison needs the same split")
    done_a, done_b = a.finished_folds(), b.finished_folds()
    folds = sorted(set(done_a) & set(done_b))
    names = [f"{os.path.basename(run.path)} ({run.config.label_smoothing_history} smoothing)" for run in (a, b)]
    print(f"A: {names[0]}\nB: {names[1]}\nfolds finished in both: {len(folds)} of {a.k}\n")
    print("| fold | WAR % A | WAR % B | B - A | UAR % A | UAR % B | B - A |\n|---|---|---|---|---|---|---|")
    for fold in folds:
        ra, rb = done_a[fold], done_b[fold]
        print(f"| {fold + 1} | {100 * ra['war']:.2f} | {100 * rb['war']:.2f} | {100 * (rb['war'] - ra['war']):+.2f} | "
              f"{100 * ra['uar']:.2f} | {100 * rb['uar']:.2f} | {100 * (rb['uar'] - ra['uar']):+.2f} |")
    if folds:
        mean = {key: [np.mean([done[f][key] for f in folds]) for done in (done_a, done_b)] for key in ("war", "uar")}
        print(f"| mean | {100 * mean['war'][0]:.2f} | {100 * mean['war'][1]:.2f} | "
              f"{100 * (mean['war'][1] - mean['war'][0]):+.2f} | {100 * mean['uar'][0]:.2f} | "
              f"{100 * mean['uar'][1]:.2f} | {100 * (mean['uar'][1] - mean['uar'][0]):+.2f} |")
        pooled = [fold_metrics(np.concatenate([done[f]["y_true"] for f in folds]),
                               np.concatenate([done[f]["y_pred"] for f in folds]), a.config.classes)
                  for done in (done_a, done_b)]
        print(f"| pooled | {100 * pooled[0]['war']:.2f} | {100 * pooled[1]['war']:.2f} | "
              f"{100 * (pooled[1]['war'] - pooled[0]['war']):+.2f} | {100 * pooled[0]['uar']:.2f} | "
              f"{100 * pooled[1]['uar']:.2f} | {100 * (pooled[1]['uar'] - pooled[0]['uar']):+.2f} |")


if __name__ == "__main__":
    one_line_errors(main)
