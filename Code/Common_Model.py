"""The engine every model shares: folds, protocols, the training loop, evaluation and weight files.

The test fold is touched in two places only: ``validation_rows`` hands it to the epoch loop when,
and only when, the protocol is ``paper`` (that is what the name warns about), and ``cross_validate``
evaluates the kept weights on it once per fold. ``last_epoch`` and ``inner_val`` (which picks the
epoch on a split of the training fold) never see it during training. Which network is trained is
the ``ModelSpec``'s business (Model.py); this file never names one.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf
from sklearn.model_selection import GroupKFold, KFold, train_test_split

import augment
import legacy_weights
import results
from errors import UserError
from Model import Hyper, ModelSpec, build_model, legacy_weight_groups, predict_in_batches, without_pretrained

PROTOCOLS = {
    "last_epoch": "last_epoch: train the fixed number of epochs and evaluate the last one; the test fold is used "
                  "once, after training (TIM-Net's code since Aug 2023)",
    "paper": "paper: SELECTS ON THE TEST FOLD - the test fold is the validation data and the epoch with the best "
             "test-fold accuracy is kept, as the original code made its published tables and weights; "
             "optimistic, not an honest estimate",
    "inner_val": "inner_val: a stratified validation split of each training fold picks the epoch with the best "
                 "validation accuracy; the test fold is used once, after training",
}
RUN_FILE = "run.json"  # in each weights folder: the configuration and every finished fold, for --resume


@dataclass
class RunConfig:
    """Everything that defines a run; written into every results JSON."""

    model: str
    data: str
    classes: list
    feature_path: str
    split_fold: int = 10
    random_seed: int = 46
    epochs: int = 500
    batch_size: int = 64
    lr: float = 0.001
    beta1: float = 0.93
    beta2: float = 0.98
    epsilon: float = 1e-8
    label_smoothing: float = 0.1
    protocol: str = "last_epoch"
    val_fraction: float = 0.1  # inner_val: share of each training fold held out for epoch selection
    cv: str = "kfold"  # kfold (the original's split) or speaker (whole speakers held out)
    hyper: Hyper = field(default_factory=Hyper)
    synthetic: bool = False
    xla: bool = False  # compile the training step with XLA (measured slower than the default on our CPU)
    mixed_precision: bool = False  # compute in float16, keep float32 variables; for GPUs (slower on our CPU)
    balance: bool = False  # oversample the training rows of every class to the largest class' count
    augment: int = 0  # masked copies of every training utterance (log-Mel segments only)


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
    """y (1 - amount) + amount / C on a new array: the original once did this in place, across folds."""
    return y * (1.0 - amount) + amount / y.shape[1]


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


def _loss_and_accuracy(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
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


def train_fold(trainer: Trainer, x: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
               config: RunConfig, fold_seed: int, label: str) -> dict:
    """Train one fold under ``config.protocol``; returns the per-epoch history and the kept epoch."""
    trainer.reset(fold_seed)
    fit_idx, monitor_idx = validation_rows(config, train_idx, test_idx, y, fold_seed)
    y_train = y.copy()
    y_train[fit_idx] = smooth_labels(y[fit_idx], config.label_smoothing)  # training labels only, on a copy
    rng = np.random.default_rng(fold_seed)
    x_fit, y_fit, fit_rows = training_set(config, x, y_train, fit_idx, rng)
    history = {"loss": [], "accuracy": []}
    if monitor_idx is not None:
        history.update(val_loss=[], val_accuracy=[])
    monitor_name = "test" if config.protocol == "paper" else "val"
    best_accuracy, best_epoch, best_weights = -1.0, config.epochs, None
    progress = EpochProgress(label, config.epochs)
    for epoch in range(1, config.epochs + 1):
        loss, accuracy = trainer.train_epoch(x_fit, y_fit, rng.permutation(fit_rows), config.batch_size)
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        logs = {"loss": loss, "acc": accuracy}
        if monitor_idx is not None:
            val_loss, val_accuracy = _loss_and_accuracy(trainer.predict(x[monitor_idx]), y[monitor_idx])
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_accuracy)
            logs.update({f"{monitor_name}_loss": val_loss, f"{monitor_name}_acc": val_accuracy})
            if val_accuracy > best_accuracy:  # strictly better, as Keras' ModelCheckpoint(save_best_only)
                best_accuracy, best_epoch, best_weights = val_accuracy, epoch, trainer.get_weights()
        progress.update(epoch, logs)
    if best_weights is not None:
        trainer.set_weights(best_weights)
    return {"history": history, "kept_epoch": best_epoch,
            "validation_rows": None if monitor_idx is None or monitor_idx is test_idx else monitor_idx.tolist()}


def new_run_folder(parent: str, name: str) -> str:
    """Create ``parent/name`` (or ``name_2``, ``name_3`` ...): a run never writes into another run's folder."""
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{parent}: cannot create the folder ({exc.strerror})") from None
    for suffix in [""] + [f"_{i}" for i in range(2, 1000)]:
        path = os.path.join(parent, name + suffix)
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"{path}: cannot create the folder ({exc.strerror})") from None
    raise UserError(f"{parent}: too many runs named {name}")


def weights_file(folder: str, k: int, fold: int) -> str:
    """The original's name: ``<k>-fold_weights_best_<i>.hdf5``, folds numbered from 1."""
    return os.path.join(folder, f"{k}-fold_weights_best_{fold}.hdf5")


def library_versions() -> dict:
    import librosa
    import sklearn
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "librosa": librosa.__version__, "scikit-learn": sklearn.__version__}


def _title(config: RunConfig, mode: str) -> str:
    synthetic = "SYNTHETIC DATA - " if config.synthetic else ""
    folds = f"{config.split_fold}-fold" + (" speaker-independent" if config.cv == "speaker" else "")
    return f"{synthetic}{config.model} on {config.data}, {folds}, seed {config.random_seed}, {mode}"


def _record(config: RunConfig, spec: ModelSpec, mode: str, folds: list, weights_folder: str) -> dict:
    return {"title": _title(config, mode), "mode": mode, "model": spec.name, "paper": spec.paper,
            "protocol": config.protocol if mode == "train" else "test",
            "protocol_description": PROTOCOLS.get(config.protocol) if mode == "train" else
            f"re-test of the weights in {weights_folder} on the same "
            f"{'speaker' if config.cv == 'speaker' else 'KFold'} split",
            "synthetic": config.synthetic, "weights_folder": weights_folder,
            "variant": spec.variant(config.hyper, mode == "train"), "config": asdict(config),
            "versions": library_versions(),
            "folds": folds, "summary": results.summarize(folds)}


def _finish(config: RunConfig, record: dict, result_dir: str, time_str: str) -> dict:
    summary = record["summary"]
    stem = results.results_stem(config.data, config.split_fold, summary["war_mean_of_folds"], config.random_seed,
                                time_str, config.model, record["protocol"])
    paths = results.write_results(result_dir, stem, record, config.classes)
    histories = [f["history"] for f in record["folds"] if f.get("history")]
    if histories:
        curves = os.path.join(result_dir, stem + "_curves.png")
        results.plot_training_curves(histories, curves, record["title"])
        paths["curves"] = curves
    print(results.format_summary(summary, record["protocol_description"]))
    for kind, path in paths.items():
        print(f"wrote {kind}: {path}")
    return {"record": record, "paths": paths}


def run_config_from_dict(values: dict) -> RunConfig:
    """The RunConfig stored in a run's JSON (for --resume)."""
    return RunConfig(**{**values, "hyper": Hyper(**values["hyper"])})


def _save_run_state(folder: str, config: RunConfig, time_str: str, records: list) -> None:
    results.write_json(os.path.join(folder, RUN_FILE), {"config": asdict(config), "time": time_str,
                                                        "folds_done": records})


def load_run_state(folder: str) -> tuple[RunConfig, str, list]:
    """(config, start time, finished fold records) of an interrupted run, from its weights folder."""
    path = os.path.join(folder, RUN_FILE)
    if not os.path.isfile(path):
        raise UserError(f"--resume {folder}: no {RUN_FILE} there (not a weights folder written by this program)")
    try:
        with open(path) as f:
            state = json.load(f)
        return run_config_from_dict(state["config"]), state["time"], state["folds_done"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: damaged run file ({type(exc).__name__}: {exc})") from None


def cross_validate(spec: ModelSpec, config: RunConfig, x: np.ndarray, y: np.ndarray, model_path: str,
                   result_path: str, speakers=None, resume: Optional[str] = None) -> dict:
    """Train ``spec`` on every fold under ``config.protocol``, save each fold's weights, write the results.

    After every fold its weights and record are on disk (written atomically), so an interrupted run
    continues with ``resume=<its weights folder>`` and ends with the same results as an uninterrupted one:
    every fold draws its initial weights, dropout and shuffling from its own seed.
    """
    if config.protocol not in PROTOCOLS:
        raise UserError(f"--protocol {config.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    folds = make_folds(len(x), config.split_fold, config.random_seed, speakers if config.cv == "speaker" else None)
    results.prepare_folder(result_path)  # an unwritable results folder fails now, not after hours of training
    started = time.time()
    # before any file is written: a pretrained backbone that cannot be loaded fails here
    trainer = Trainer(lambda: build_model(spec, x.shape[1:], y.shape[1], config.hyper), config)
    if resume:
        _, time_str, records = load_run_state(resume)
        run_folder = resume
    else:
        time_str, records = time.strftime("%Y-%m-%d_%H-%M-%S"), []
        run_folder = new_run_folder(model_path, f"{config.data}_{config.random_seed}_{time_str}_{spec.name}")
        _save_run_state(run_folder, config, time_str, records)
    print(f"{_title(config, 'train')}\nprotocol {PROTOCOLS[config.protocol]}\nweights -> {run_folder}")
    variant = spec.variant(config.hyper)
    print(f"model {spec.name}{f' ({variant})' if variant else ''}: {trainer.model.count_params():,} parameters, "
          f"built in {time.time() - started:.1f} s")
    for i, (train_idx, test_idx) in enumerate(folds):
        if i < len(records):
            print(results.format_fold_line(i, len(folds), records[i]) + "  (finished before the interruption)")
            continue
        label = f"[{spec.name} {config.data} fold {i + 1}/{len(folds)}]"
        fold = train_fold(trainer, x, y, train_idx, test_idx, config, config.random_seed * 1000 + i, label)
        legacy_weights.save_legacy_weights(weights_file(run_folder, len(folds), i + 1),
                                           legacy_weight_groups(trainer.model))
        probs = trainer.predict(x[test_idx])  # the kept epoch's weights, evaluated once on the test fold
        metrics = results.fold_metrics(y[test_idx].argmax(1), probs.argmax(1), config.classes)
        records.append({**metrics, **fold, "y_true": y[test_idx].argmax(1).tolist(),
                        "y_pred": probs.argmax(1).tolist(), "test_rows": test_idx.tolist()})
        _save_run_state(run_folder, config, time_str, records)  # after the weights: a listed fold has its file
        print(results.format_fold_line(i, len(folds), records[-1]) + f"  kept epoch {fold['kept_epoch']}")
    print(f"trained {len(folds)} folds in {time.time() - started:.0f} s")
    return _finish(config, _record(config, spec, "train", records, run_folder), result_path, time_str)


def retest_weights(spec: ModelSpec, config: RunConfig, x: np.ndarray, y: np.ndarray, test_path: str,
                   result_path: str, speakers=None) -> dict:
    """Rebuild the split of ``config`` (KFold of ``config.random_seed``, or speakers), load fold i's weights,
    evaluate on test fold i."""
    folds = make_folds(len(x), config.split_fold, config.random_seed, speakers if config.cv == "speaker" else None)
    files = [weights_file(test_path, len(folds), i + 1) for i in range(len(folds))]
    missing = [os.path.basename(f) for f in files if not os.path.isfile(f)]
    if missing:
        raise UserError(f"{test_path}: missing weight files {', '.join(missing)} "
                        f"(expected {len(folds)} files for --split_fold {len(folds)})")
    model = build_model(spec, x.shape[1:], y.shape[1], without_pretrained(config.hyper))  # weights come from files
    groups = legacy_weight_groups(model)
    for path in files:  # every file checked before anything is written
        legacy_weights.check_legacy_weights(path, groups)
    results.prepare_folder(result_path)
    print(f"{_title(config, 'test')}\nweights <- {test_path}")
    records = []
    for i, ((_, test_idx), path) in enumerate(zip(folds, files)):
        legacy_weights.load_legacy_weights(path, groups)
        probs = predict_in_batches(model, x[test_idx])
        metrics = results.fold_metrics(y[test_idx].argmax(1), probs.argmax(1), config.classes)
        records.append({**metrics, "weights": path, "y_true": y[test_idx].argmax(1).tolist(),
                        "y_pred": probs.argmax(1).tolist(), "test_rows": test_idx.tolist()})
        print(results.format_fold_line(i, len(folds), records[-1]))
    return _finish(config, _record(config, spec, "test", records, test_path), result_path,
                   time.strftime("%Y-%m-%d_%H-%M-%S"))
