"""The evaluation protocol every model shares: the folds, the protocols (which epoch is kept, which rows validate),
the training labels of a fold (label smoothing, its history), the fold's training set (balance, augmentation) and
its seed, the epoch loop every trainer runs (``train_epochs``: which epoch is kept) and the per-epoch progress line.

The test fold is touched in one place only: ``validation_rows`` hands it to the epoch loop when, and only when, the
protocol is ``paper`` (that is what the name warns about). ``last_epoch`` and ``inner_val`` (which picks the epoch
on a split of the training fold) never see it during training. Knows no network and no TensorFlow.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, train_test_split

from ..core.config import RunConfig, check_corpus_split, check_val_fraction
from ..core.errors import UserError
from ..nn.legacy_weights import all_finite
from . import augment

PROTOCOLS = {
    "last_epoch": "last_epoch: train the fixed number of epochs and evaluate the last one; the test fold is used "
                  "once, after training",
    "paper": "paper: SELECTS ON THE TEST FOLD - the test fold is the validation data and the epoch with the best "
             "test-fold accuracy is kept, as the original code made its published tables and weights; "
             "optimistic, not an honest estimate",
    "inner_val": "inner_val: a stratified validation split of each training fold picks the epoch with the best "
                 "validation accuracy; the test fold is used once, after training",
}
CUMULATIVE_NOTE = ("CUMULATIVE label smoothing: the labels are smoothed in place fold after fold, as the code behind "
                   "the ICASSP table and the published weights did (fold k trains on labels smoothed up to k times)")


def protocol_description(config: RunConfig) -> str:
    """The protocol's description (for TIM-Net's last_epoch, whose code it is), with the label-smoothing history when
    it is the original's cumulative one."""
    text = PROTOCOLS[config.protocol]
    if config.protocol == "last_epoch" and config.model == "TIMNET":  # the note is about TIM-Net's code only
        text += " (TIM-Net's code since Aug 2023)"
    return f"{text}; {CUMULATIVE_NOTE}" if config.label_smoothing_history == "cumulative" else text


def make_folds(n: int, k: int, seed: int, speakers=None, corpora=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train rows, test rows) of each fold.

    Without ``speakers``: KFold(k, shuffle=True, random_state=seed) over the file's sample order, as the
    original (SPEC §4). With ``speakers`` (one id per row): whole speakers are held out, one per fold
    when k equals their number (leave-one-speaker-out), else k groups of speakers (GroupKFold, its groups shuffled
    by ``seed``: another seed, another grouping; leave-one-speaker-out keeps its order).

    Several corpora (``corpora``: the corpus index of each row, data/corpus_set.corpus_rows): each corpus' rows are
    split into k folds as above (KFold, or GroupKFold over its speakers) and fold i is the union of the corpora's
    fold i, so that every fold holds each corpus' share (--cv corpus's folds: ``split_folds``).
    """
    if corpora is not None:
        corpora = np.asarray(corpora)
        ids = np.unique(corpora)
        tests = [[] for _ in range(k)]
        for c in ids:
            rows = np.flatnonzero(corpora == c)
            own = None if speakers is None else [speakers[r] for r in rows]
            try:
                folds = make_folds(len(rows), k, seed, own)
            except UserError as exc:  # the count is one corpus', not the run's: say whose
                raise UserError(f"{exc}: in corpus {c + 1} of the {len(ids)} of --data, which is split into the "
                                "folds on its own") from None
            for i, (_, test) in enumerate(folds):
                tests[i].append(rows[test])
        every = np.arange(n)
        return [(np.setdiff1d(every, test), test) for test in (np.sort(np.concatenate(t)) for t in tests)]
    if speakers is None:
        if not 2 <= k <= n:
            raise UserError(f"--split_fold {k}: must be between 2 and the number of samples ({n})")
        return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.arange(n)))
    count = len(set(speakers))
    if not 2 <= k <= count:
        raise UserError(f"--split_fold {k}: --cv speaker needs between 2 and the number of speakers ({count})")
    # fewer folds than speakers: groups shuffled by the seed (unshuffled, every seed gave the same groups, and the
    # report's interval took the seeds for resampled splits); leave-one-speaker-out is one grouping whatever the
    # seed, and keeps its folds' order
    shuffled = {"shuffle": True, "random_state": seed} if k < count else {}
    return list(GroupKFold(n_splits=k, **shuffled).split(np.arange(n), groups=np.asarray(speakers)))


def split_folds(n: int, split_fold: int, seed: int, cv: str, data: str, speakers=None,
                corpora=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``make_folds`` under a split's three flags (--split_fold, --random_seed, --cv) over ``n`` rows of ``data``
    with their speakers and, for several corpora, their corpus index. --cv corpus: leave-one-corpus-out, one fold
    per corpus (``split_fold`` is their number), refused as the command line refuses it where ``data`` is one."""
    check_corpus_split(cv, data, 1 if corpora is None else len(np.unique(corpora)))
    if cv == "corpus":
        corpora = np.asarray(corpora)
        return [(np.flatnonzero(corpora != c), np.flatnonzero(corpora == c)) for c in np.unique(corpora)]
    return make_folds(n, split_fold, seed, speakers if cv == "speaker" else None, corpora)


def run_folds(config: RunConfig, n: int, speakers=None, corpora=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``split_folds`` under ``config``'s split."""
    return split_folds(n, config.split_fold, config.random_seed, config.cv, config.data, speakers, corpora)


def smooth_labels(y: np.ndarray, amount: float) -> np.ndarray:
    """y (1 - amount) + amount / C on a new array (the original's smooth_labels, which worked in place)."""
    return y * (1.0 - amount) + amount / y.shape[1]


def fold_labels(y: np.ndarray, folds: list, fold: int, fit_idx: np.ndarray, amount: float,
                history: str = "per_fold") -> np.ndarray:
    """The labels (N, C) that fold ``fold`` trains on (its rows ``fit_idx``) and computes validation losses with.

    ``per_fold`` (the default): a copy of ``y`` whose fit rows are smoothed once, y (1 - a) + a / C.

    ``cumulative``: what the TIM-Net code behind the ICASSP table and the published weights computed (until
    TIM-Net_SER PR #14, Aug 2023). Its fold loop ran ``y[train] = smooth_labels(y[train], 0.1)`` on the one label
    array, so at fold k a row has been smoothed once for every fold j <= k whose training rows held it:
    y 0.9^m + (1 - 0.9^m) / C. Replayed here step by step in the original's order and float32 arithmetic, so the
    arrays are the original's bit for bit. The whole training fold is smoothed, as in the original, also where
    ``inner_val`` then fits on part of it. Test rows were smoothed by the earlier folds that trained on them: the
    argmax, hence every accuracy and the paper protocol's epoch choice (best validation accuracy), is unchanged;
    the validation loss under ``paper`` is computed with those smoothed labels, as the original's was.
    """
    if history == "per_fold":
        labels = y.copy()
        labels[fit_idx] = smooth_labels(y[fit_idx], amount)
        return labels
    labels = y.copy()
    for train_idx, _ in folds[:fold + 1]:
        labels[train_idx] = smooth_labels(labels[train_idx], amount)
    return labels


def loss_and_accuracy(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)  # Keras' categorical cross-entropy clipping
    loss = float(np.mean(-np.sum(y * np.log(clipped), axis=1)))
    return loss, float(np.mean(probs.argmax(1) == y.argmax(1)))


class EpochProgress:
    """Per-epoch progress: rewritten in place on a terminal, every tenth of the epochs otherwise (logs, CI)."""

    def __init__(self, label: str, epochs: int, stream=None):
        self.label, self.epochs, self.stream = label, epochs, stream or sys.stderr
        self.in_place = self.stream.isatty()
        self.every = 1 if self.in_place else max(1, epochs // 10)
        self.start = time.time()

    def update(self, epoch: int, logs: dict) -> None:
        if epoch % self.every and epoch != self.epochs:
            return
        figures = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
        rate = (time.time() - self.start) / epoch
        line = f"{self.label} epoch {epoch}/{self.epochs}  {figures}  ({rate:.2f} s/epoch)"
        end = "\r" if self.in_place and epoch != self.epochs else "\n"
        self.stream.write(line + end)
        self.stream.flush()


@dataclass
class KeptEpoch:
    """One fold's training, as ``train_epochs`` records it.

    Args:
        history: per-epoch ``loss``, ``accuracy`` (and ``val_loss``, ``val_accuracy`` where rows are monitored).
        epoch: the epoch kept: the first best on the monitored rows, else the last (``config.epochs``).
        weights: that epoch's values where they were taken during training (monitored rows); None: the last's.
        best_accuracy: the kept epoch's accuracy on the monitored rows (-1 before any).
    """

    history: dict
    epoch: int
    weights: Optional[list] = None
    best_accuracy: float = -1.0


def train_epochs(config: RunConfig, label: str, plans: list, train_epoch: Callable[[list], list],
                 predict: Callable[[list], list], weights: Callable[[], list]) -> list[KeptEpoch]:
    """The epoch loop of every trainer: one fold (Common_Model.train_fold) or many trained together
    (engine/stacked_training.py), so both keep the same epoch, record the same history and print the same line.

    Every epoch trains each plan on its fit rows in its generator's next order; where the protocol monitors rows
    (``inner_val``, ``paper``), each plan's are scored and a strictly better accuracy keeps that epoch's weights (as
    Keras' ModelCheckpoint(save_best_only) did for the original). Under ``last_epoch`` the loop stops once every
    plan's loss and weights are not finite: NaN weights stay NaN, and the save refuses them anyway.

    Args:
        config: the run's settings (epochs, protocol).
        label: the progress line's name, e.g. ``[TIMNET EMODB fold 3/10]``.
        plans: per fold, what it trains on (``FoldPlan`` or anything with its ``fit_rows``, ``monitor_rows``,
            ``labels``, ``rng``).
        train_epoch: (per plan, its rows in this epoch's order) -> per plan (loss, accuracy).
        predict: (per plan, its monitor rows, or None) -> per plan its softmax outputs on them (None where none).
        weights: () -> per plan its current values.
    """
    kept = [KeptEpoch({"loss": [], "accuracy": [], **({"val_loss": [], "val_accuracy": []}
                                                      if plan.monitor_rows is not None else {})}, config.epochs)
            for plan in plans]
    monitored = [i for i, plan in enumerate(plans) if plan.monitor_rows is not None]
    name = "test" if config.protocol == "paper" else "val"  # the paper protocol's monitored rows are the test fold
    progress = EpochProgress(label, config.epochs)
    for epoch in range(1, config.epochs + 1):
        figures = train_epoch([plan.rng.permutation(plan.fit_rows) for plan in plans])
        for fold, (loss, accuracy) in zip(kept, figures):
            fold.history["loss"].append(loss)
            fold.history["accuracy"].append(accuracy)
        logs = {"loss": np.mean([f[0] for f in figures]), "acc": np.mean([f[1] for f in figures])}
        if monitored:
            probs = predict([plan.monitor_rows for plan in plans])
            improved = []
            for i in monitored:
                val_loss, val_accuracy = loss_and_accuracy(probs[i], plans[i].labels[plans[i].monitor_rows])
                kept[i].history["val_loss"].append(val_loss)
                kept[i].history["val_accuracy"].append(val_accuracy)
                if val_accuracy > kept[i].best_accuracy:
                    kept[i].best_accuracy, kept[i].epoch = val_accuracy, epoch
                    improved.append(i)
            if improved:
                values = weights()
                for i in improved:
                    kept[i].weights = values[i]
            logs.update({f"{name}_{figure}": np.mean([kept[i].history[f"val_{key}"][-1] for i in monitored])
                         for figure, key in (("loss", "loss"), ("acc", "accuracy"))})
        progress.update(epoch, logs)
        if (config.protocol == "last_epoch" and not any(math.isfinite(f[0]) for f in figures)
                and not any(all_finite(values) for values in weights())):
            break
    return kept


def check_validation_split(config: RunConfig, folds: list) -> None:
    """inner_val: every training fold of ``folds`` keeps rows to fit and rows to choose the epoch on (the sizes
    sklearn's train_test_split makes: ceil(val_fraction x rows) held out); one line naming --val_fraction if not.
    A share smaller than the number of classes is warned of: some classes are not in it (it cannot be stratified),
    and the kept epoch is chosen on the accuracy of a handful of utterances."""
    check_val_fraction(config.protocol, config.val_fraction)
    if config.protocol != "inner_val":
        return
    smallest = None
    for train_idx, _ in folds:
        rows = len(train_idx)
        held = math.ceil(config.val_fraction * rows)
        if not 1 <= held < rows:
            raise UserError(f"--val_fraction {config.val_fraction:g}: --protocol inner_val would hold out {held} of a "
                            f"training fold's {rows} rows to choose its epoch; it needs at least one row to hold out "
                            "and one to fit")
        smallest = held if smallest is None else min(smallest, held)
    if smallest is not None and smallest < len(config.classes):
        print(f"warning: --val_fraction {config.val_fraction:g} holds out {smallest} row(s) of a training fold, fewer "
              f"than its {len(config.classes)} classes: some classes are missing from it, and each fold's epoch is "
              "chosen on the accuracy of a handful of utterances", file=sys.stderr)


def validation_rows(config: RunConfig, train_idx: np.ndarray, test_idx: np.ndarray, y: np.ndarray,
                    fold_seed: int) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(rows to fit, rows that pick the kept epoch or None) under ``config.protocol``.

    This is the one place where the protocol decides whether the test fold is looked at during training.
    """
    if config.protocol == "paper":
        return train_idx, test_idx  # the original's choice: selects on the test fold
    if config.protocol == "inner_val":
        labels = y[train_idx].argmax(1)
        try:
            fit, val = train_test_split(train_idx, test_size=config.val_fraction, random_state=fold_seed,
                                        stratify=labels)
        except ValueError:  # a class too small to stratify: an unstratified split still never sees the test fold
            fit, val = train_test_split(train_idx, test_size=config.val_fraction, random_state=fold_seed)
        return np.sort(fit), np.sort(val)
    return train_idx, None


def training_set(config: RunConfig, x: np.ndarray, y_train: np.ndarray, fit_idx: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, rows) that the epochs draw their batches from; only rows of ``fit_idx`` and copies of them.

    With neither ``--augment`` nor ``--balance`` that is ``x`` itself and ``fit_idx`` (no copy, no random
    draw). ``--augment k`` makes a new array of the fit rows and k masked copies of each; ``--balance``
    then repeats rows of the smaller classes.
    """
    if config.augment:
        fit_x = x[fit_idx]
        x, y_train = (np.concatenate([fit_x, augment.masked_copies(fit_x, config.augment, rng)]),
                      np.concatenate([y_train[fit_idx]] * (config.augment + 1)))
        fit_idx = np.arange(len(x))
    if config.balance:
        fit_idx = augment.oversample(fit_idx, y_train.argmax(1), rng)
    return x, y_train, fit_idx


def fold_seed(config: RunConfig, fold: int) -> int:
    """The seed of fold ``fold`` (from 0): its initial weights, dropout masks and batch order."""
    return config.random_seed * 1000 + fold


@dataclass
class FoldPlan:
    """What fold ``fold`` trains on, all drawn from its seed; ``train_fold`` and the stacked path start from it.

    Args:
        seed: the fold's seed (initial weights, dropout masks, batch order).
        x_fit, y_fit: the features and labels the batches come from (x and the fold's labels, unless --augment).
        fit_rows: the rows of ``x_fit`` the epochs draw their batches from (repeats: --balance).
        monitor_rows: the rows of x whose accuracy picks the kept epoch (inner_val, paper), or None.
        labels: (N, C) the fold's labels of x (``fold_labels``), for the validation losses.
        rng: the batch-order generator, in its state before the first epoch.
    """

    seed: int
    x_fit: np.ndarray
    y_fit: np.ndarray
    fit_rows: np.ndarray
    monitor_rows: Optional[np.ndarray]
    labels: np.ndarray
    rng: np.random.Generator


def recorded_validation_rows(config: RunConfig, monitor_rows: Optional[np.ndarray]) -> Optional[list]:
    """The validation rows a fold record lists: inner_val's (the paper protocol's are the test rows)."""
    return monitor_rows.tolist() if config.protocol == "inner_val" else None


def plan_fold(config: RunConfig, x: np.ndarray, y: np.ndarray, folds: list, fold: int) -> FoldPlan:
    """The ``FoldPlan`` of fold ``fold`` of ``folds``."""
    seed = fold_seed(config, fold)
    train_idx, test_idx = folds[fold]
    fit_idx, monitor_idx = validation_rows(config, train_idx, test_idx, y, seed)
    labels = fold_labels(y, folds, fold, fit_idx, config.label_smoothing, config.label_smoothing_history)
    rng = np.random.default_rng(seed)
    x_fit, y_fit, fit_rows = training_set(config, x, labels, fit_idx, rng)
    return FoldPlan(seed, x_fit, y_fit, fit_rows, monitor_idx, labels, rng)
