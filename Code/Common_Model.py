"""The trainer every model shares and one fold of it: the compiled training step (``Trainer``), one fold trained
under its protocol (``train_fold``, through the epoch loop every trainer shares: engine/protocol.train_epochs), and
one fold evaluated once on its test fold and saved.

``train_and_save_fold`` evaluates the kept weights on the test fold once per fold. Which network is trained is the
``ModelSpec``'s business (Model.py); the folds, protocols and labels, engine/protocol.py's; where a run's files go,
the run folder's (runs/run_folder.py); what its results files hold, runs/results.py's. This file never names a
network or a file.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from .core import precision
from .core.config import RunConfig
from .core.errors import Diverged
from .core.paths import shown
from .engine import fine_tune
from .engine.normalization import set_fold_statistics
from .engine.protocol import plan_fold, recorded_validation_rows, train_epochs
from .Model import ModelSpec, batch_spec, build_model, inference_function, legacy_weight_groups
from .nn import fused_ops
from .nn.flat_adam import FlatAdam
from .nn.legacy_weights import all_finite
from .runs import results
from .runs.run_folder import RunFolder


def configure_tensorflow(spec: ModelSpec, cores: int | None = None) -> None:
    """Settings for training ``spec``: the threads must precede TensorFlow's first operation (else: kept as
    they are); Grappler is switched off in any case.

    Threads: ``spec.threads`` (Model.ModelSpec) for ``cores`` (None: this process' cores; a grid's worker: its
    share of them): TIM-Net's two directions side by side, each
    operation on one core of two; GM-TCNet's values and gates side by side, each operation free to use both cores
    (its fused gated unit, between them, shards its rows); a CNN such as DCNN-BLSTMwA's backbone, one chain of large
    operations, on all cores. docs/speed.md has the measurements behind these choices.

    Grappler, TensorFlow's graph optimiser, is switched off: it spent over a second on TIM-Net's training step
    before the first fold and made no step faster (TIM-Net, GM-TCNet and DCNN-BLSTMwA; docs/speed.md); and with it
    on, two runs of one seed differed in their BatchNorm moving means (last bits, whatever the threads and op
    determinism: bench/repeatability.py, docs/training.md#repeatability).
    """
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})  # allowed at any time
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    inter, intra = spec.threads(cores)
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    except RuntimeError:  # TensorFlow is already running (several runs in one process): keep its threads
        pass


def configure_run(spec: ModelSpec, mixed_precision: bool | str, cores: int | None = None) -> None:
    """Threads (for ``cores``: ``configure_tensorflow``), graph optimiser and precision (the --mixed_precision
    setting, core/precision.py) for ``spec``, before TensorFlow runs anything."""
    configure_tensorflow(spec, cores)
    keras.config.set_dtype_policy(precision.policy(mixed_precision))


class Trainer:
    """One compiled training step reused by every fold.

    Building and tracing a Keras model costs seconds; the original paid it ten times per run.
    Here the model, the optimiser and the traced step are made once, and ``reset`` gives every
    fold fresh weights (a newly built model's initial values, from the fold's seed) and a
    fresh optimiser state, which is what a new model per fold computes.
    """

    def __init__(self, build: Callable[[], keras.Model], config: RunConfig):
        started = time.time()
        self.build = build
        self.model = build()
        adam = dict(learning_rate=config.lr, beta_1=config.beta1, beta_2=config.beta2, epsilon=config.epsilon)
        if precision.loss_scaled(config.mixed_precision):  # float16 gradients underflow unless the loss is scaled
            self.optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(**adam))
            self.optimizer.build(self.model.trainable_variables)
        else:  # Keras' Adam, bit for bit, in one update over all the variables (nn/flat_adam.py)
            self.optimizer = FlatAdam(self.model.trainable_variables, **adam)
        y_spec = tf.TensorSpec((None, self.model.output_shape[-1]), tf.float32)  # (B, C) one-hot or smoothed
        self._step = tf.function(self._train_step, input_signature=[batch_spec(self.model), y_spec],
                                 jit_compile=config.xla)
        self._fused = config.fused_kernels and not config.xla  # XLA cannot compile the custom ops
        if self._fused and not fused_ops.available():  # a resumed run recorded with them, on a machine without
            print("run.json: this run trained with the fused kernels, which cannot run here (setup.sh built none, "
                  "or TensorFlow computes on a GPU); it continues on the pure-TensorFlow path (float32 rounding "
                  "differs)", file=sys.stderr)
        self._inference = inference_function(self.model, self._fused)  # the fused ops where they train
        self.built_seconds = time.time() - started  # the model and optimiser (the step is traced at its first call)

    def _train_step(self, x, y):  # runs when the step is traced: the fused ops enter the graph or not
        with tf.GradientTape() as tape, fused_ops.enabled(self._fused):
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
        if isinstance(self.optimizer, FlatAdam):
            self.optimizer.reset()
            return
        for variable in self.optimizer.variables:  # Keras' loss-scale optimiser
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
        return self._inference(x, batch_size)

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.model.variables]

    def set_weights(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self.model.variables, values):
            variable.assign(value)


def train_fold(trainer: Trainer, x: np.ndarray, y: np.ndarray, folds: list, fold: int, config: RunConfig,
               label: str, start_sha256: str | None = None) -> dict:
    """Train fold ``fold`` of ``folds`` under ``config.protocol``; returns the per-epoch history and the kept epoch.
    ``start_sha256``: a fine-tuned fold's start weights as its run recorded them (checked before they are used)."""
    plan = plan_fold(config, x, y, folds, fold)
    trainer.reset(plan.seed)
    started = (fine_tune.start_fold(trainer.model, config, fold, start_sha256) if config.init_from
               else None)  # after the fresh draw
    # --normalize corpus: this training fold's statistics, also where a fine-tuned fold copied the source's
    set_fold_statistics(trainer.model, config.hyper.normalize, x[folds[fold][0]])
    (kept,) = train_epochs(config, label, [plan],
                           lambda orders: [trainer.train_epoch(plan.x_fit, plan.y_fit, orders[0], config.batch_size)],
                           lambda rows: [trainer.predict(x[rows[0]])], lambda: [trainer.get_weights()])
    if kept.weights is not None:
        trainer.set_weights(kept.weights)
    return {"history": kept.history, "kept_epoch": kept.epoch,
            "validation_rows": recorded_validation_rows(config, plan.monitor_rows),
            **({"started_from": started} if started else {})}


def build_trainer(spec: ModelSpec, config: RunConfig, input_shape: tuple, num_classes: int) -> Trainer:
    """The model and its compiled step for ``config``; a pretrained backbone that cannot be loaded fails here,
    before any file is written."""
    if config.freeze_backbone:  # fine-tuning the head only: the optimiser and the step see the head's variables
        return Trainer(lambda: fine_tune.freeze_backbone(build_model(spec, input_shape, num_classes, config.hyper)),
                       config)
    return Trainer(lambda: build_model(spec, input_shape, num_classes, config.hyper), config)


def fold_label(spec: ModelSpec, run: RunFolder, fold: int) -> str:
    return f"[{spec.name} {run.config.data} fold {fold + 1}/{run.k}]"


def save_trained_fold(run: RunFolder, trainer: Trainer, x: np.ndarray, y: np.ndarray, fold: int, kept: dict) -> dict:
    """Evaluate the trainer's weights (fold ``fold``'s kept epoch) once on its test fold; save weights and record.
    Weights that are not finite are never saved or scored (they predict one class for every utterance): Diverged."""
    if not all_finite(trainer.get_weights()):
        losses = kept["history"]["loss"]
        epoch = next((e for e, loss in enumerate(losses, 1) if not math.isfinite(loss)), None)
        when = f"training loss {losses[epoch - 1]:g} at epoch {epoch}" if epoch else f"after epoch {len(losses)}"
        run.note_diverged(fold, when)
        raise Diverged(f"{shown(run.path)}: fold {fold + 1}/{run.k} diverged: its weights are not finite ({when}), "
                       "so it was not saved")
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
    recorded = (run.init_from or {}).get("folds") or []
    start = next((entry["weights_sha256"] for entry in recorded if entry["fold"] == fold + 1), None)
    kept = train_fold(trainer, x, y, run.folds(len(x)), fold, run.config, fold_label(spec, run, fold), start)
    return save_trained_fold(run, trainer, x, y, fold, {**kept, "training": "sequential"})
