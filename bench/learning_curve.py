"""The fine-tuning learning curve: target-domain UAR against labelled target utterances per class, fine-tuned from a
source run (``--init_from``'s start weights) against trained from scratch on the same rows, averaged over seeds.

    .venv/bin/python bench/learning_curve.py --source Models/EMODB_A_46_<time>_TIMNET --data EMODB_Bch \\
        --feature_path xc/EMODB_Bch.npy --out docs/fine_tuning.png

For every seed the target corpus is split once, per class: a third held out as the test set, the rest the pool
of labelled utterances; from the pool, the first n of each class (in a seeded order, so 5 of them are among the
10) are the training rows for every n of ``--sizes`` ("all": the whole pool). Each (seed, n) trains three ways
on the same rows, with the same fold seed (batch order, dropout, the head's draw), for ``--epochs`` epochs:
fine-tuned (every weight, starting from the source's fold i for seed i, exactly as ``--init_from`` starts a
fold: Common_Model.train_fold), head only (``--freeze_backbone``) and from scratch; n = 0 is the source fold
model as it is. Prints the table (mean and standard deviation over the seeds of the held-out UAR) and draws it.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

from fresh_process import checkout_package, one_line_errors

ARMS = ("fine-tuned", "head only", "from scratch")


def split(labels: np.ndarray, seed: int, sizes: list) -> tuple[np.ndarray, dict]:
    """(held-out test rows, {n: training rows}): a third of every class held out, the first n of the rest."""
    rng = np.random.default_rng(seed)
    test, pools = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        held = len(rows) // 3
        test.append(rows[:held])
        pools.append(rows[held:])
    training = {n: np.sort(np.concatenate([pool if n == "all" else pool[:n] for pool in pools])) for n in sizes}
    return np.sort(np.concatenate(test)), training


def uar(trainer, x, y, rows) -> float:
    from timnet_ser.runs.results import fold_metrics
    classes = [str(c) for c in range(y.shape[1])]
    return 100 * fold_metrics(y[rows].argmax(1), trainer.predict(x[rows]).argmax(1), classes)["uar"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="the source run folder (trained on another corpus)")
    parser.add_argument("--data", required=True, help="the target corpus' name")
    parser.add_argument("--feature_path", required=True, help="the target corpus' feature file")
    parser.add_argument("--seeds", default="46,47,48")
    parser.add_argument("--sizes", default="5,10,20,all", help="labelled utterances per class")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--out", help="the picture (PNG)")
    args = parser.parse_args()
    checkout_package()
    from timnet_ser.Common_Model import build_trainer, configure_run, train_fold
    from timnet_ser.core.tensorflow_setup import start_tensorflow
    from timnet_ser.data.resolve import load_data
    from timnet_ser.engine import fine_tune
    from timnet_ser.Model import MODELS
    from timnet_ser.runs.run_folder import require_run
    start_tensorflow()
    source = require_run(args.source, "--source")
    spec = MODELS[source.config.model]
    configure_run(spec, False)
    target = load_data(args.data, source.feature_kind, args.feature_path, spec.name)
    x, y = target.x, target.y
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [s if s == "all" else int(s) for s in args.sizes.split(",")]
    base = replace(source.config, data=args.data, classes=list(target.corpus.classes),
                   feature_path=os.path.abspath(args.feature_path), epochs=args.epochs, batch_size=args.batch_size,
                   split_fold=len(seeds), init_from=source.path, init_fold=None, freeze_backbone=False)
    splits = [split(y.argmax(1), seed, sizes) for seed in seeds]
    # the checks of --init_from (same network, no leak) for the held-out sets, seed i against source fold i
    fine_tune.plan(base, target.info, x, [test for test, _ in splits])
    trainers = {"full": build_trainer(spec, base, x.shape[1:], y.shape[1]),
                "head": build_trainer(spec, replace(base, freeze_backbone=True), x.shape[1:], y.shape[1])}
    results = {arm: {n: [] for n in sizes} for arm in ARMS}
    zero_shot = []
    started = time.time()
    configs = [replace(base, random_seed=seed) for seed in seeds]
    for i, (config, (test, _)) in enumerate(zip(configs, splits)):  # n = 0: the source fold model as it is
        trainers["full"].reset(0)
        fine_tune.start_fold(trainers["full"].model, config, i)
        zero_shot.append(uar(trainers["full"], x, y, test))
    for n in sizes:  # every seed of one n before the next n: a stopped run has whole rows
        for i, (config, (test, training)) in enumerate(zip(configs, splits)):
            folds = [(training[n], test)] * len(seeds)  # fold i: seed i starts from the source's fold i
            for arm, (key, arm_config) in zip(ARMS, (("full", config), ("head", replace(config, freeze_backbone=True)),
                                                       ("full", replace(config, init_from=None)))):
                label = f"[n {n} seed {config.random_seed} {arm}]"
                train_fold(trainers[key], x, y, folds, i, arm_config, label)
                results[arm][n].append(uar(trainers[key], x, y, test))
                print(f"{label} {len(training[n])} rows: held-out UAR {results[arm][n][-1]:.2f}%  "
                      f"({time.time() - started:.0f} s)", flush=True)
    print(f"\n{args.data}: held-out UAR % (mean ± sd over seeds {args.seeds}), {spec.name} from {source.config.data} "
          f"({os.path.basename(source.path)}), {args.epochs} epochs, batch {args.batch_size}, lr {base.lr:g}; "
          f"{len(splits[0][0])} held-out utterances")
    print(f"{'per class':>9} {'rows':>5} " + " ".join(f"{arm:>15}" for arm in ARMS))
    print(f"{0:>9} {0:>5} {np.mean(zero_shot):>7.2f} ± {np.std(zero_shot):5.2f} {'–':>15} {'–':>15}")
    for n in sizes:
        cells = " ".join(f"{np.mean(results[arm][n]):>7.2f} ± {np.std(results[arm][n]):5.2f}" for arm in ARMS)
        print(f"{n:>9} {len(splits[0][1][n]):>5} {cells}")
    print(f"chance (one class always): {100 / y.shape[1]:.2f}%; {time.time() - started:.0f} s in all")
    if args.out:
        draw(args.out, sizes, splits, results, zero_shot, args, 100 / y.shape[1])


def draw(path: str, sizes: list, splits: list, results: dict, zero_shot: list, args, chance: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [str(n) for n in sizes]
    positions = np.arange(len(sizes))
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for arm in ARMS:
        means = [np.mean(results[arm][n]) for n in sizes]
        spread = [np.std(results[arm][n]) for n in sizes]
        axes.errorbar(positions, means, yerr=spread, marker="o", capsize=3, label=arm)
    axes.axhline(np.mean(zero_shot), color="grey", linestyle="--", label="source model as it is")
    axes.axhline(chance, color="black", linestyle=":", label="chance")
    axes.set_xticks(positions, labels)
    axes.set_xlabel("labelled target utterances per class")
    axes.set_ylabel("held-out target UAR (%)")
    axes.set_title(f"{args.data}: fine-tuned vs from scratch ({args.epochs} epochs, {len(splits)} seeds)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    one_line_errors(main)
