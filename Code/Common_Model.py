"""The engine every model shares: folds, protocols, training labels, the training loop.

The test fold is touched in two places only: ``validation_rows`` hands it to the epoch loop when,
and only when, the protocol is ``paper`` (that is what the name warns about), and ``train_and_save_fold``
evaluates the kept weights on it once per fold. ``last_epoch`` and ``inner_val`` (which picks the
epoch on a split of the training fold) never see it during training. Which network is trained is
the ``ModelSpec``'s business (Model.py); where a run's files go, the run folder's (run_folder.py);
what its results files hold, results.py's. This file never names a network or a file.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf
from sklearn.model_selection import GroupKFold, KFold, train_test_split

from . import augment
from . import results
from . import run_folder
from .errors import TrainingInterrupted, UserError
from .extract_feature import row_signatures
from .Model import ModelSpec, build_model, legacy_weight_groups
from .run_folder import RunConfig, RunFolder, TrainingData

PROTOCOLS = {
    "last_epoch": "last_epoch: train the fixed number of epochs and evaluate the last one; the test fold is used "
                  "once, after training (TIM-Net's code since Aug 2023)",
    "paper": "paper: SELECTS ON THE TEST FOLD - the test fold is the validation data and the epoch with the best "
             "test-fold accuracy is kept, as the original code made its published tables and weights; "
             "optimistic, not an honest estimate",
    "inner_val": "inner_val: a stratified validation split of each training fold picks the epoch with the best "
                 "validation accuracy; the test fold is used once, after training",
}
CUMULATIVE_NOTE = ("CUMULATIVE label smoothing: the labels are smoothed in place fold after fold, as the code behind "
                   "the ICASSP table and the published weights did (fold k trains on labels smoothed up to k times)")


def protocol_description(config: RunConfig) -> str:
    """The protocol's description, with the label-smoothing history when it is the original's cumulative one."""
    text = PROTOCOLS[config.protocol]
    return f"{text}; {CUMULATIVE_NOTE}" if config.label_smoothing_history == "cumulative" else text


def configure_tensorflow(spec: ModelSpec) -> None:
    """Start-up settings for training ``spec``; they must precede TensorFlow's first operation (else: kept as is).

    Threads: the cores are split between ``spec.parallel_chains`` concurrent operations (inter-op threads),
    each on its share (intra-op threads). On 2 cores TIM-Net trains an epoch in 0.46 s with its two
    directions side by side on one core each, against 0.56 s with every operation spread over both cores
    (GM-TCNet, its values and gates side by side: 0.83 s against 0.90 s); a CNN such as DCNN-BLSTMwA's
    backbone, one chain of large operations, is faster on all cores.

    Grappler, TensorFlow's graph optimiser, is switched off: it spent 1.2 s on TIM-Net's training step
    before the first fold and made no step faster (TIM-Net, GM-TCNet and DCNN-BLSTMwA measured).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    chains = min(spec.parallel_chains, cores)
    try:
        tf.config.threading.set_inter_op_parallelism_threads(chains)
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cores // chains))
    except RuntimeError:  # TensorFlow is already running (several runs in one process): keep its settings
        return
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def make_folds(n: int, k: int, seed: int, speakers=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train rows, test rows) of each fold.

    Without ``speakers``: KFold(k, shuffle=True, random_state=seed) over the file's sample order, as the
    original (SPEC §4). With ``speakers`` (one id per row): whole speakers are held out, one per fold
    when k equals their number (leave-one-speaker-out), else k groups of speakers (GroupKFold).
    """
    if speakers is None:
        if not 2 <= k <= n:
            raise UserError(f"--split_fold {k}: must be between 2 and the number of samples ({n})")
        return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.arange(n)))
    count = len(set(speakers))
    if not 2 <= k <= count:
        raise UserError(f"--split_fold {k}: --cv speaker needs between 2 and the number of speakers ({count})")
    return list(GroupKFold(n_splits=k).split(np.arange(n), groups=np.asarray(speakers)))


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


class Trainer:
    """One compiled training step reused by every fold.

    Building and tracing a Keras model costs seconds; the original paid it ten times per run.
    Here the model, the optimiser and the traced step are made once, and ``reset`` gives every
    fold fresh weights (a newly built model's initial values, from the fold's seed) and a
    fresh optimiser state, which is what a new model per fold computes.
    """

    def __init__(self, build: Callable[[], keras.Model], config: RunConfig):
        self.build = build
        self.model = build()
        self.optimizer = keras.optimizers.Adam(learning_rate=config.lr, beta_1=config.beta1, beta_2=config.beta2,
                                               epsilon=config.epsilon)
        if config.mixed_precision:  # float16 gradients underflow unless the loss is scaled up (and back down)
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(self.model.trainable_variables)
        x_spec = tf.TensorSpec((None, *self.model.input_shape[1:]), tf.float32)
        y_spec = tf.TensorSpec((None, self.model.output_shape[-1]), tf.float32)
        self._step = tf.function(self._train_step, input_signature=[x_spec, y_spec], jit_compile=config.xla)
        self._predict = tf.function(lambda x: self.model(x, training=False), input_signature=[x_spec])

    def _train_step(self, x, y):
        with tf.GradientTape() as tape:
            probs = self.model(x, training=True)  # (B, C)
            loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y, probs))
            scaled = self.optimizer.scale_loss(loss)  # the loss itself unless mixed precision scales it
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply(grads, self.model.trainable_variables)  # a loss-scale optimiser unscales first
        correct = tf.reduce_sum(tf.cast(tf.argmax(probs, -1) == tf.argmax(y, -1), tf.float32))
        return loss, correct

    def reset(self, seed: int) -> None:
        """Fresh initial weights (and dropout RNG state) drawn from ``seed``; optimiser moments and step to zero."""
        # A new Keras 3 model takes every initial value and dropout seed from Python's generator (NumPy's is
        # seeded too, for anything else). keras.utils.set_random_seed would also reset TensorFlow's seed, which
        # discards TensorFlow's compiled functions: seconds of re-optimising the traced step in every fold.
        random.seed(seed)
        np.random.seed(seed)
        fresh = self.build()
        for target, source in zip(self.model.variables, fresh.variables):
            target.assign(source)
        for variable in self.optimizer.variables:
            if variable.name == "dynamic_scale":  # mixed precision's loss scale starts over too
                variable.assign(tf.fill(variable.shape, self.optimizer.initial_scale))
            elif variable.name != "learning_rate":  # iterations and the Adam moments
                variable.assign(tf.zeros_like(variable))

    def train_epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int) -> tuple[float, float]:
        """One pass over the rows ``order`` of x (gathered batch by batch, never copied whole); (loss, accuracy)."""
        total_loss = total_correct = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            loss, correct = self._step(x[rows], y[rows])
            total_loss += float(loss) * len(rows)
            total_correct += float(correct)
        return total_loss / len(order), total_correct / len(order)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Softmax outputs (N, C) in inference mode (BatchNorm moving statistics, no dropout)."""
        return np.concatenate([self._predict(x[s:s + batch_size]).numpy() for s in range(0, len(x), batch_size)])

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.model.variables]

    def set_weights(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self.model.variables, values):
            variable.assign(value)


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


def train_fold(trainer: Trainer, x: np.ndarray, y: np.ndarray, folds: list, fold: int, config: RunConfig,
               label: str) -> dict:
    """Train fold ``fold`` of ``folds`` under ``config.protocol``; returns the per-epoch history and the kept epoch."""
    plan = plan_fold(config, x, y, folds, fold)
    trainer.reset(plan.seed)
    monitor = plan.monitor_rows
    history = {"loss": [], "accuracy": []}
    if monitor is not None:
        history.update(val_loss=[], val_accuracy=[])
    monitor_name = "test" if config.protocol == "paper" else "val"
    best_accuracy, best_epoch, best_weights = -1.0, config.epochs, None
    progress = EpochProgress(label, config.epochs)
    for epoch in range(1, config.epochs + 1):
        loss, accuracy = trainer.train_epoch(plan.x_fit, plan.y_fit, plan.rng.permutation(plan.fit_rows),
                                             config.batch_size)
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        logs = {"loss": loss, "acc": accuracy}
        if monitor is not None:
            val_loss, val_accuracy = loss_and_accuracy(trainer.predict(x[monitor]), plan.labels[monitor])
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_accuracy)
            logs.update({f"{monitor_name}_loss": val_loss, f"{monitor_name}_acc": val_accuracy})
            if val_accuracy > best_accuracy:  # strictly better, as Keras' ModelCheckpoint(save_best_only)
                best_accuracy, best_epoch, best_weights = val_accuracy, epoch, trainer.get_weights()
        progress.update(epoch, logs)
    if best_weights is not None:
        trainer.set_weights(best_weights)
    return {"history": history, "kept_epoch": best_epoch, "validation_rows": recorded_validation_rows(config, monitor)}


def build_trainer(spec: ModelSpec, config: RunConfig, input_shape: tuple, num_classes: int) -> Trainer:
    """The model and its compiled step for ``config``; a pretrained backbone that cannot be loaded fails here,
    before any file is written."""
    return Trainer(lambda: build_model(spec, input_shape, num_classes, config.hyper), config)


def start_run(config: RunConfig, data: TrainingData, x: np.ndarray, y: np.ndarray, speakers, model_path: str,
              result_path: str) -> RunFolder:
    """A new run folder for ``config``: its folds drawn, its results folder proven writable, nothing trained."""
    if config.protocol not in PROTOCOLS:
        raise UserError(f"--protocol {config.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    folds = make_folds(len(x), config.split_fold, config.random_seed, speakers if config.cv == "speaker" else None)
    results.prepare_folder(result_path)  # an unwritable results folder fails now, not after hours of training
    return run_folder.create(model_path, config, data, [test for _, test in folds], row_signatures(x), result_path)


def _fold_label(spec: ModelSpec, run: RunFolder, fold: int) -> str:
    return f"[{spec.name} {run.config.data} fold {fold + 1}/{run.k}]"


def save_trained_fold(run: RunFolder, trainer: Trainer, x: np.ndarray, y: np.ndarray, fold: int, kept: dict) -> dict:
    """Evaluate the trainer's weights (fold ``fold``'s kept epoch) once on its test fold; save weights and record."""
    config = run.config
    test_idx = run.folds(len(x))[fold][1]
    probs = trainer.predict(x[test_idx])  # the kept epoch's weights, evaluated once on the test fold
    metrics = results.fold_metrics(y[test_idx].argmax(1), probs.argmax(1), config.classes)
    record = {**metrics, **kept, "y_true": y[test_idx].argmax(1).tolist(), "y_pred": probs.argmax(1).tolist(),
              "test_rows": test_idx.tolist()}
    run.save_fold(fold, legacy_weight_groups(trainer.model), record)
    return record


def train_and_save_fold(spec: ModelSpec, run: RunFolder, trainer: Trainer, x: np.ndarray, y: np.ndarray,
                        fold: int) -> dict:
    """Train fold ``fold`` of ``run``, evaluate its kept weights once on its test fold, save weights and record."""
    kept = train_fold(trainer, x, y, run.folds(len(x)), fold, run.config, _fold_label(spec, run, fold))
    return save_trained_fold(run, trainer, x, y, fold, {**kept, "training": "sequential"})


def train_and_save_stacked(spec: ModelSpec, pending: list, trainer: Trainer, x: np.ndarray, y: np.ndarray,
                           max_members: Optional[int] = None) -> list[dict]:
    """Train the ``pending`` (run, fold) pairs together (stacked_training.py), at most ``max_members`` in one
    stack, then evaluate and save each as ``train_and_save_fold`` does; one record per pair, in order.

    The runs may differ in their seed only (the seeds of one command): every member draws its own initial
    weights, order and labels from its run's settings, and the stack shares the optimiser's settings, epochs and
    protocol. Nothing is saved before a stack has trained.
    """
    from .stacked_training import plan_member, train_members
    config = pending[0][0].config
    for run, _ in pending:
        if replace(run.config, random_seed=config.random_seed) != config:
            raise ValueError(f"train_and_save_stacked: {run.path} differs from {pending[0][0].path} in more than "
                             f"its seed; stack the folds of one command's runs only")
    members = [plan_member(run.config, x, y, run.folds(len(x)), fold, _fold_label(spec, run, fold))
               for run, fold in pending]
    records = []
    for (run, fold), member, result in zip(pending, members, train_members(spec, config, x, members, max_members)):
        trainer.set_weights(result.weights)
        kept = {"history": result.history, "kept_epoch": result.kept_epoch,
                "validation_rows": recorded_validation_rows(run.config, member.monitor_rows), "training": "stacked"}
        records.append(save_trained_fold(run, trainer, x, y, fold, kept))
    return records


def cross_validate(spec: ModelSpec, runs: list, x: np.ndarray, y: np.ndarray, trainer: Optional[Trainer] = None,
                   stacked: bool = False, max_members: Optional[int] = None) -> list[dict]:
    """Train every fold of ``runs`` (run folders of one command: the same settings, one per seed) that is not on
    disk yet, then write each run's results; returns their summaries.

    Sequentially (the reference path) the runs train one after the other, and every fold's weights and record
    are on disk (written atomically) as soon as it is trained, so an interrupted run continues from its folder
    and ends with the same results as an uninterrupted one: every fold draws its initial weights, dropout and
    shuffling from its own seed. With ``stacked`` the unfinished folds of all the runs train together, at most
    ``max_members`` in one compiled step (stacked_training.py), and are saved when their stack is done.
    """
    started = time.time()
    trainer = trainer or build_trainer(spec, runs[0].config, x.shape[1:], y.shape[1])
    built = time.time() - started
    seed_label = len(runs) > 1  # the fold lines of several seeds name their seed

    def announce(run: RunFolder) -> list:  # a run's header and finished folds; its unfinished folds
        config = run.config
        print(f"{results.run_title(config, 'train')}\nprotocol {protocol_description(config)}\nweights -> {run.path}")
        variant = spec.variant(config.hyper)
        print(f"model {spec.name}{f' ({variant})' if variant else ''}: {trainer.model.count_params():,} parameters, "
              f"built in {built:.1f} s")
        done = run.finished_folds()
        for fold in sorted(done):
            print(results.format_fold_line(fold, run.k, done[fold]) + "  (finished before the interruption)")
        return [(run, fold) for fold in range(run.k) if fold not in done]

    def report(trained) -> None:  # prints every (run, fold), record as it comes; Ctrl-C names the run to resume
        try:
            for (run, fold), record in trained:
                seed = f"seed {run.config.random_seed} " if seed_label else ""
                print(seed + results.format_fold_line(fold, run.k, record) + f"  kept epoch {record['kept_epoch']}")
        except KeyboardInterrupt:
            run = next((r for r in runs if len(r.finished_folds()) < r.k), runs[-1])
            raise TrainingInterrupted(run.path, sorted(run.finished_folds()), run.k, run.resume_command) from None

    if stacked:
        pending = [pair for run in runs for pair in announce(run)]
        if pending:
            chunk = (f"stacks of {max_members}" if max_members and max_members < len(pending) else "one step")
            print(f"training {len(pending)} folds stacked in {chunk}")
            report(zip(pending, train_and_save_stacked(spec, pending, trainer, x, y, max_members)))
        print(f"trained {len(pending)} folds in {time.time() - started:.0f} s")
        return [finish_run(spec, run) for run in runs]
    summaries = []
    for run in runs:  # one after the other, each fold saved (and printed) as soon as it is trained
        started = time.time()
        report((pair, train_and_save_fold(spec, pair[0], trainer, x, y, pair[1])) for pair in announce(run))
        print(f"trained {run.k} folds in {time.time() - started:.0f} s")
        summaries.append(finish_run(spec, run))
    return summaries


def finish_run(spec: ModelSpec, run: RunFolder) -> dict:
    """The run's results files (xlsx, JSON, pictures) from its fold records, once its last fold is finished."""
    config = run.config
    record = results.run_record(config, spec.describe(config.hyper, trained=True), "train", run.fold_records(),
                                run.path, config.protocol, protocol_description(config))
    return results.write_run_results(record, run.result_path, run.created, config.variant_suffix)
