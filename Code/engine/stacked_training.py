"""Train many members (the folds of a run, of one or several seeds) together, in one compiled step.

Sequential training (Common_Model.Trainer) runs one small model per step: TIM-Net has 0.1 M parameters and a
batch of 64, so every step pays TensorFlow's per-step and per-operation overhead for one fold. Here M members
train together: every variable gets a leading member axis (M, ...) (``Stack``), Adam updates all members in one
set of operations, and one traced step trains all of them. Each member keeps everything that makes it the fold
``Common_Model.train_fold`` would train:

- its initial weights and dropout seeds: the normal Keras model built after ``random.seed(s)`` and
  ``np.random.seed(s)`` for its fold seed s (what ``Trainer.reset`` does), copied into member slot m;
- its batch order: ``np.random.default_rng(s).permutation`` of its fit rows every epoch (``plan_member``);
- its dropout masks: the numbers Keras' SpatialDropout1D draws, from each dropout layer's own seed state,
  advanced once per step of that member;
- its BatchNorm batch statistics and moving averages, its Adam state (Keras 3's Adam maths, its own step
  count) and its training rows.

Two layouts of the step (``LAYOUTS``):

- ``grouped``: member after member, the normal Keras model (``stateless_call``) and its gradient on the
  member's own rows, exactly as Trainer._train_step (the same operations: the same numbers, bit for bit);
  only the optimiser, the moving averages and the seeds are stacked. Tensors stay one fold's size.
- ``batched``: every operation computes all members, convolutions as batched products (M, B*T, K) @ (M, K, N)
  through the hand-written backward passes of nn/training_kernels.py, addressed per member (``MemberBatches``).
  A member's short last batch is padded to B rows of row weight 0, which never reach a statistic: the loss is the
  mean over the member's own rows, BatchNorm's mean and variance are sums over them divided by their count
  (``training_kernels._BatchNormReLU`` with row weights). Few, large operations: the layout for a GPU.

Folds differ in size: a member whose epoch has fewer batches than another's sits the extra steps out (no
weight, moment, step-count, moving-average or seed update). Members under ``inner_val``/``paper`` are evaluated
on their own monitor rows after every epoch (inference mode, stacked) and keep their own best epoch's weights.

TIM-Net and GM-TCNet only (DCNN-BLSTMwA trains sequentially); float32 or float64 (not mixed precision, not
XLA); the rows of every member index one shared x (no ``--augment``, which makes new utterances per fold).

The stacked inference also serves a run's exported graph (deploy/export.py): ``stacked_inference`` computes the
folds' networks in one pass from their fixed values (``FixedStack``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from ..core.config import RunConfig, check_stack_members
from ..core.errors import UserError
from ..Model import ModelSpec, build_model, stacked_refusal
from ..nn import fused_ops
from ..nn.causal_conv import causal_conv, tap_lags
from ..nn.flat_adam import adam_update
from ..nn.training_kernels import batch_norm_affine, gated_unit, temporal_aware_block
from .protocol import plan_fold, train_epochs


@dataclass
class MemberPlan:
    """What one member trains on, as ``Common_Model.train_fold`` prepares it for its fold.

    Args:
        fit_rows: rows of x the epochs draw their batches from (repeats allowed: ``--balance``).
        monitor_rows: rows that pick the kept epoch (``inner_val``/``paper``), or None (``last_epoch``).
        fold_seed: the fold's seed (initial weights, dropout seeds, batch order).
        labels: (N, C) the fold's labels: the fit rows train on them, the monitor rows score the epochs.
        label: name in the progress lines, e.g. ``[TIMNET EMODB fold 3/10]``.
        rng: the batch-order generator, in the state ``train_fold`` has before its first epoch.
    """

    fit_rows: np.ndarray
    monitor_rows: Optional[np.ndarray]
    fold_seed: int
    labels: np.ndarray
    label: str
    rng: np.random.Generator


@dataclass
class MemberResult:
    """One trained member.

    Args:
        weights: the kept epoch's values, in the order of the normal Keras model's ``model.variables``.
        history: per-epoch ``loss``, ``accuracy`` (and ``val_loss``, ``val_accuracy`` with monitor rows).
        kept_epoch: the epoch whose weights these are (the last one without monitor rows).
    """

    weights: list
    history: dict
    kept_epoch: int


def plan_member(config: RunConfig, x: np.ndarray, y: np.ndarray, folds: list, fold: int, label: str) -> MemberPlan:
    """The member that ``Common_Model.train_fold`` would train for fold ``fold`` of ``folds``: its ``FoldPlan``
    (the same seed, rows, labels and batch-order generator)."""
    if reason := stacked_refusal(config.model, augment=config.augment):  # before its augmented copies are drawn
        raise UserError(reason)
    plan = plan_fold(config, x, y, folds, fold)
    return MemberPlan(plan.fit_rows, plan.monitor_rows, plan.seed, plan.labels, label, plan.rng)


# ---------------------------------------------------------------------------------------------------------------
# Stacked maths: activations (M, B, T, C), member m's batch in slot m; per-member vectors (M, C).


def _per_member(v):
    """(M, C) -> (M, 1, 1, C): a per-member vector broadcast over its batch and time."""
    return tf.reshape(v, [v.shape[0], 1, 1, v.shape[-1]])


def _member_sum(x):
    """Sum over each member's batch and time: (M, B, T, C) -> (M, C)."""
    return tf.reduce_sum(tf.reshape(x, [x.shape[0], -1, x.shape[-1]]), axis=1)


def _products(x, w, transpose_b: bool = False):
    """(M, B, T, K) @ (M, K, N) -> (M, B, T, N): one batched product over each member's B*T rows."""
    members, steps = x.shape[0], x.shape[2]
    out = tf.matmul(tf.reshape(x, [members, -1, x.shape[-1]]), w, transpose_b=transpose_b)  # (M, B*T, N)
    return tf.reshape(out, [members, -1, steps, out.shape[-1]])


def _weight_products(a, b):
    """a^T b per member: (M, B, T, K), (M, B, T, N) -> (M, K, N), a kernel's gradient."""
    members = a.shape[0]
    return tf.matmul(tf.reshape(a, [members, -1, a.shape[-1]]), tf.reshape(b, [members, -1, b.shape[-1]]),
                     transpose_a=True)


def _shift(x, lag: int, shift):
    """``causal_conv.shift_right``/``shift_left`` on the time axis of (M, B, T, C)."""
    members, steps, channels = x.shape[0], x.shape[2], x.shape[3]
    return tf.reshape(shift(tf.reshape(x, [-1, steps, channels]), lag), [members, -1, steps, channels])


class MemberBatches:
    """How the kernels of training_kernels.py address M members' batches: activations (M, B, T, C), kernels
    (M, k, C, F), channel vectors (M, C); the counterpart of ``causal_conv.SingleBatch``."""

    @staticmethod
    def products(x, w, bias=None, relu: bool = False, transpose_b: bool = False):
        """relu?(x @ w + bias) per member: (M, B, T, K) @ (M, K, N) -> (M, B, T, N)."""
        out = _products(x, w, transpose_b)
        if bias is not None:
            out = out + _per_member(bias)
        return tf.nn.relu(out) if relu else out

    weight_products = staticmethod(_weight_products)  # (M, B, T, K), (M, B, T, N) -> (M, K, N)
    shift = staticmethod(_shift)
    total = staticmethod(_member_sum)  # (M, B, T, C) -> (M, C)
    channels = staticmethod(_per_member)  # (M, C) -> (M, 1, 1, C)


def _member_conv(conv, x, kernel, bias):
    """The CausalConv1D layer ``conv`` per member, with stacked kernel (M, k, C, F) and bias (M, F):
    (M, B, T, C) -> (M, B, T, F)."""
    return causal_conv(x, kernel, bias, tap_lags(conv.kernel_size, conv.dilation_rate), MemberBatches)


# ---------------------------------------------------------------------------------------------------------------
# The networks, stacked: the template (member 0's Keras model) gives the structure, ``Stack`` the variables.


class Stack:
    """One tf.Variable (M, *shape) per variable of the Keras model, member m's values in slot m.

    Args:
        models: the members' Keras models (same architecture); ``models[0]`` is the template whose layers
            name the variables.
    """

    def __init__(self, models: list):
        self.template = models[0]
        self.members = len(models)
        self.variables = [tf.Variable(np.stack([m.variables[i].numpy() for m in models]), trainable=v.trainable,
                                      name=v.path.replace("/", "_"))
                          for i, v in enumerate(self.template.variables)]
        self._by_id = {id(v): s for v, s in zip(self.template.variables, self.variables)}
        self.trainable = [s for v, s in zip(self.template.variables, self.variables) if v.trainable]

    def __getitem__(self, variable) -> tf.Variable:
        """The stacked variable of one of the template's variables."""
        return self._by_id[id(variable)]

    def assign(self, models: list) -> None:
        """New members, as many as before: their values into the stack."""
        for i, stacked in enumerate(self.variables):
            stacked.assign(np.stack([m.variables[i].numpy() for m in models]))


class FixedStack:
    """``Stack``'s interface over fixed values: one array (M, *shape) per variable of the template, which a traced
    function takes in as constants (the fold-mean graph of deploy/export.py).

    Args:
        template: a member's Keras model, whose layers give the structure (its own values are not read).
        values: per member, its values in the order of ``template.variables``.
    """

    def __init__(self, template, values: list):
        if not values or any(len(member) != len(template.variables) for member in values):
            raise ValueError(f"FixedStack: each member needs {len(template.variables)} values, received "
                             f"{[len(member) for member in values]}")
        self.template = template
        self.members = len(values)
        self._by_id = {id(v): np.stack([member[i] for member in values]) for i, v in enumerate(template.variables)}

    def __getitem__(self, variable) -> np.ndarray:
        return self._by_id[id(variable)]


class _StackedTIMNET:
    """TIM-Net + WeightLayer + Dense (Model._timnet), stacked; the TABs train through
    ``training_kernels.temporal_aware_block`` on ``MemberBatches`` (the fused path of TemporalAwareBlock)."""

    LAYERS = ("timnet", "weight_layer", "dense")  # the template's layers after its input, each computed here

    @staticmethod
    def refusal(template) -> Optional[str]:
        """Why these networks do not compute ``template`` (blocks of another activation than ReLU), or None."""
        return stacked_refusal("TIMNET", template.get_layer("timnet").activation)

    def __init__(self, stack: Stack | FixedStack):
        self.stack = stack
        template = stack.template
        self.timnet, self.fusion, self.dense = (template.get_layer(n) for n in self.LAYERS)
        self.blocks = self.timnet.forward_blocks + self.timnet.backward_blocks
        # (SpatialDropout1D, channels) of every TAB; none at rate 0, where the layers draw no mask either
        self.dropouts = ([(d, b.filters) for b in self.blocks for d in (b.drop1, b.drop2)]
                         if self.timnet.dropout_rate else [])

    def _conv1x1(self, conv, x):
        return _member_conv(conv, x, self.stack[conv.kernel], self.stack[conv.bias])

    def _head(self, scales):  # B (M, B, F) per scale -> softmax (M, B, classes)
        stacked = tf.stack(scales, axis=2)  # (M, B, n, F)
        kernel = self.stack[self.fusion.kernel]  # (M, n, 1)
        fused = tf.squeeze(tf.matmul(tf.transpose(stacked, [0, 1, 3, 2]), kernel[:, None]), axis=-1)  # (M, B, F)
        logits = tf.matmul(fused, self.stack[self.dense.kernel]) + self.stack[self.dense.bias][:, None]
        return tf.nn.softmax(logits)

    def _directions(self, x, block):
        forward = self._conv1x1(self.timnet.forward_conv, x)  # (M, B, T, F)
        backward = self._conv1x1(self.timnet.backward_conv, tf.reverse(x, axis=[2]))
        scales = []
        for forward_block, backward_block in zip(self.timnet.forward_blocks, self.timnet.backward_blocks):
            forward, backward = block(forward_block, forward), block(backward_block, backward)
            scales.append(tf.reduce_mean(forward + backward, axis=2))  # (M, B, F)
        return self._head(scales)

    def train(self, x, rows, count, masks: dict):
        """Softmax (M, B, classes) in training mode and [(BatchNorm layer, batch mean, batch variance)]."""
        stats = []

        def block(layer, h):
            params = [self.stack[v] for v in (layer.conv1.kernel, layer.conv1.bias, layer.bn1.gamma, layer.bn1.beta,
                                               layer.conv2.kernel, layer.conv2.bias, layer.bn2.gamma, layer.bn2.beta)]
            out, (mean1, var1, mean2, var2) = temporal_aware_block(
                h, *params, masks.get(id(layer.drop1)), masks.get(id(layer.drop2)), layer.dilation_rate,
                1.0 / (1.0 - layer.dropout_rate), layer.bn1.epsilon, MemberBatches, rows, count)
            stats.extend([(layer.bn1, mean1, var1), (layer.bn2, mean2, var2)])
            return out

        return self._directions(x, block), stats

    def infer(self, x):
        """Softmax (M, B, classes) in inference mode: BatchNorm's moving statistics, no dropout. Each BatchNorm's
        affine map is folded into the convolution before it (its kernel's output channels and its bias scaled),
        which saves a pass over the stacked activations, M times one fold's (docs/predict.md measures it in the
        exported graph); the same function to float rounding."""

        def folded(conv, bn):  # BatchNorm's affine map folded into the convolution: one pass less over z
            scale, offset = batch_norm_affine(*(self.stack[v] for v in (bn.gamma, bn.beta, bn.moving_mean,
                                                                        bn.moving_variance)), bn.epsilon)  # (M, F)
            kernel = self.stack[conv.kernel] * scale[:, None, None, :]  # (M, k, C, F)
            return kernel, self.stack[conv.bias] * scale + offset

        def block(layer, h):
            a = h
            for conv, bn in ((layer.conv1, layer.bn1), (layer.conv2, layer.bn2)):
                a = tf.nn.relu(_member_conv(conv, a, *folded(conv, bn)))
            return h * tf.sigmoid(a)

        return self._directions(x, block)


class _StackedGTCM:
    """GTCM + Dense (Model._gmtcn), stacked; the gated units compute through ``training_kernels.gated_unit``
    on ``MemberBatches``."""

    LAYERS = ("gtcm", "dense")

    @staticmethod
    def refusal(template) -> Optional[str]:
        """None: every GM-TCNet the model builds is computed here."""
        return None

    def __init__(self, stack: Stack | FixedStack):
        self.stack = stack
        self.gtcm, self.dense = (stack.template.get_layer(n) for n in self.LAYERS)
        self.dropouts = []  # GM-TCNet has no dropout

    def _unit(self, unit, x):
        members, k = self.stack.members, unit.kernel_size

        def side_by_side(convs):  # n stacked kernels (M, k, C, F) -> (M, k*C, n*F), as GatedUnit._call_fused
            return tf.concat([tf.reshape(self.stack[c.kernel], [members, k * x.shape[-1], unit.filters])
                              for c in convs], axis=-1)

        return gated_unit(
            x, side_by_side(unit.value_convs), tf.concat([self.stack[c.bias] for c in unit.value_convs], axis=-1),
            side_by_side(unit.gate_convs), tf.concat([self.stack[c.bias] for c in unit.gate_convs], axis=-1),
            unit.dilation_rate, unit.branches, MemberBatches)

    def infer(self, x):
        """Softmax (M, B, classes); GM-TCNet computes the same in training and inference."""
        conv = self.gtcm.input_conv
        h = _member_conv(conv, x, self.stack[conv.kernel], self.stack[conv.bias])  # (M, B, T, F)
        skips = None
        for block in self.gtcm.blocks:
            skip = self._unit(block.level2, self._unit(block.level1, h))
            h = h + skip
            skips = skip if skips is None else skips + skip
        pooled = tf.reduce_mean(tf.nn.leaky_relu(skips, alpha=self.gtcm.leaky_alpha), axis=2)  # (M, B, F)
        logits = tf.matmul(pooled, self.stack[self.dense.kernel]) + self.stack[self.dense.bias][:, None]
        return tf.nn.softmax(logits)

    def train(self, x, rows, count, masks: dict):
        return self.infer(x), []


NETWORKS = {"TIMNET": _StackedTIMNET, "GMTCN": _StackedGTCM}


def computes_stacked(template) -> bool:
    """Whether the stacked networks compute ``template``'s inference: TIM-Net (ReLU blocks) or GM-TCNet, without a
    layer they do not know (a normalisation layer)."""
    network = NETWORKS.get(template.name)
    if network is None or {layer.name for layer in template.layers} != {"features", *network.LAYERS}:
        return False
    return network.refusal(template) is None


def stacked_inference(template, values: list):
    """M members' softmax outputs in one pass, ``x`` (M, B, *input shape) -> (M, B, classes), in inference mode, for
    a ``template`` that ``computes_stacked``; ``values``: per member, its values in the order of
    ``template.variables``."""
    if not computes_stacked(template):
        raise ValueError(f"stacked_inference: the stacked networks do not compute {template.name} with layers "
                         f"{[layer.name for layer in template.layers]}")
    return NETWORKS[template.name](FixedStack(template, values)).infer


# ---------------------------------------------------------------------------------------------------------------
# Training


def _assign_active(variable: tf.Variable, value, active) -> None:
    """variable[m] = value[m] for the members m that are ``active`` (M,) in this step; the others keep theirs."""
    variable.assign(tf.where(tf.reshape(active, [-1] + [1] * (variable.shape.rank - 1)), value, variable))


LAYOUTS = {
    "grouped": "each member's network runs on its own rows, one member after the other inside the one step (the "
               "normal Keras model, stateless); the optimiser, BatchNorm moving averages and dropout seeds of all "
               "members update as one stack. Tensors stay the size of one fold's batch, which suits a CPU's caches",
    "batched": "every operation computes all members at once: batched matrix products over (M, B*T, K), padding "
               "rows masked out of the BatchNorm statistics; few, large operations, for GPUs",
}


def default_layout() -> str:
    """``batched`` where TensorFlow sees a GPU, else ``grouped`` (measured faster on our 2-core CPU)."""
    return "batched" if tf.config.list_logical_devices("GPU") else "grouped"


class StackedTrainer:
    """M members in one compiled step: the stacked counterpart of ``Common_Model.Trainer``.

    Args:
        spec: TIMNET or GMTCN.
        config: the run's settings (optimiser, batch size).
        input_shape: one utterance's shape (T, C).
        classes: number of classes.
        seeds: one fold seed per member.
        layout: how the step computes the members' networks (``LAYOUTS``); None: ``default_layout()``.
    """

    def __init__(self, spec: ModelSpec, config: RunConfig, input_shape: tuple, classes: int, seeds: list,
                 layout: Optional[str] = None):
        if reason := stacked_refusal(spec.name, config.hyper.activation, config.hyper.normalize,
                                     config.mixed_precision, config.xla, config.augment):
            raise UserError(reason)
        layout = layout or default_layout()
        if layout not in LAYOUTS:
            raise ValueError(f"StackedTrainer: layout must be one of {', '.join(LAYOUTS)}, received layout={layout!r}")
        self.spec, self.config, self.input_shape, self.classes = spec, config, tuple(input_shape), classes
        self.layout = layout
        self.stack = Stack(self._build(seeds))
        self.network = NETWORKS[spec.name](self.stack)  # the batched layout's training, both layouts' monitoring
        self.dtype = next(s.dtype for s in self.stack.trainable)
        self.members = len(seeds)
        # Adam's state per member, flat as FlatAdam keeps one model's: each member's moments in its row (M, P)
        self.sizes = [int(np.prod(s.shape[1:])) for s in self.stack.trainable]
        self.momentum, self.velocity = (tf.Variable(tf.zeros([self.members, sum(self.sizes)], self.dtype))
                                        for _ in range(2))
        self.iterations = tf.Variable(tf.zeros([self.members], tf.int64))  # Adam's step count, per member
        batch = config.batch_size
        specs = [tf.TensorSpec((self.members, batch, *self.input_shape), self.dtype),
                 tf.TensorSpec((self.members, batch, classes), self.dtype),
                 tf.TensorSpec((self.members, batch), self.dtype)]
        self._step = tf.function(self._train_step, input_signature=specs)
        self._predict = tf.function(self.network.infer, input_signature=[
            tf.TensorSpec((self.members, None, *self.input_shape), self.dtype)])

    def _build(self, seeds: list) -> list:
        """Each member's normal Keras model, built as Trainer.reset builds a fold's: after seeding from its seed."""
        models = []
        for seed in seeds:
            random.seed(seed)
            np.random.seed(seed)
            models.append(build_model(self.spec, self.input_shape, self.classes, self.config.hyper))
        return models

    def reset(self, seeds: list) -> None:
        """New members (as many as before): their initial weights and dropout seeds; Adam from zero."""
        self.stack.assign(self._build(seeds))
        for state in (self.momentum, self.velocity, self.iterations):
            state.assign(tf.zeros_like(state))

    def _grouped(self, x, y, counts):
        """Member by member, Trainer._train_step's forward and gradient: the normal Keras model (stateless) on the
        member's own rows. Member m starts once member m-1's gradients exist, so that one member's activations
        are alive at a time.

        Returns (losses (M,), correct predictions (M,), gradients (M, ...) in the order of ``stack.trainable``,
        [(stacked non-trainable variable, its new values (M, ...))]).
        """
        template = self.stack.template
        trainable = [tf.unstack(self.stack[v]) for v in template.trainable_variables]  # M slices each
        fixed = [tf.unstack(self.stack[v]) for v in template.non_trainable_variables]  # moving stats, seeds
        losses, hits, gradients, states, previous = [], [], [], [], []
        for m in range(self.members):
            rows = tf.maximum(tf.cast(counts[m], tf.int32), 1)  # a member without rows runs on one padding row,
            with tf.control_dependencies(previous):  # whose results the step discards
                x_m, y_m = tf.identity(x[m, :rows]), y[m, :rows]
            params = [t[m] for t in trainable]
            with tf.GradientTape() as tape:
                tape.watch(params)
                probs, state = template.stateless_call(params, [f[m] for f in fixed], x_m, training=True)
                loss = tf.reduce_mean(keras.losses.categorical_crossentropy(y_m, probs))  # (n, classes) -> ()
            previous = tape.gradient(loss, params)
            losses.append(loss)
            hits.append(tf.reduce_sum(tf.cast(tf.argmax(probs, -1) == tf.argmax(y_m, -1), self.dtype)))
            gradients.append(previous)
            states.append(state)
        by_id = {id(self.stack[v]): tf.stack(g) for v, g in zip(template.trainable_variables, zip(*gradients))}
        updates = [(self.stack[v], tf.stack(values)) for v, values in zip(template.non_trainable_variables,
                                                                           zip(*states))]
        return tf.stack(losses), tf.stack(hits), [by_id[id(s)] for s in self.stack.trainable], updates

    def _batched(self, x, y, weights, counts):
        """All members in each operation, padding rows (weight 0) masked out; (losses, hits, updates) as
        ``_grouped``, the gradients come from the caller's tape."""
        rows = tf.reshape(weights, [self.members, -1, 1, 1])
        frames = tf.reshape(tf.maximum(counts, 1) * x.shape[2], [self.members, 1])  # a member without rows: no 0/0
        masks, updates = self._masks(x.shape[1])
        probs, stats = self.network.train(x, rows, frames, masks)  # (M, B, classes)
        row_losses = keras.losses.categorical_crossentropy(y, probs)  # (M, B)
        losses = tf.reduce_sum(row_losses * weights, axis=1) / tf.maximum(counts, 1)  # (M,)
        for bn, mean, variance in stats:  # Keras' BatchNormalization moving averages
            for moving, value in ((self.stack[bn.moving_mean], mean), (self.stack[bn.moving_variance], variance)):
                updates.append((moving, moving * bn.momentum + value * (1.0 - bn.momentum)))
        hits = tf.cast(tf.argmax(probs, -1) == tf.argmax(y, -1), self.dtype)
        return losses, tf.reduce_sum(hits * weights, axis=1), updates

    def _masks(self, batch: int) -> tuple[dict, list]:
        """Each dropout layer's mask (M, B, 1, F), member by member from its own seed state, as
        TemporalAwareBlock._dropout_mask draws it, and the seed states after the draw."""
        masks, updates = {}, []
        for dropout, channels in self.network.dropouts:
            state = self.stack[dropout.seed_generator.state]  # (M, 2) int64
            seeds = tf.cast(tf.math.floormod(state, tf.int32.max - 1), tf.int32)  # Keras' _cast_seed
            # keras.random.uniform draws in Keras' float type (float32) whatever the layers compute in
            noise = tf.stack([tf.random.stateless_uniform((batch, 1, channels), seed=seeds[m],
                                                          dtype=keras.config.floatx())
                              for m in range(self.members)])  # (M, B, 1, F)
            masks[id(dropout)] = tf.cast(noise >= dropout.rate, self.dtype) / (1.0 - dropout.rate)
            updates.append((state, state + tf.constant([0, 1], tf.int64)))  # SeedGenerator.next
        return masks, updates

    def _adam(self, gradients, active) -> None:
        """Keras 3's Adam.update_step per member (``flat_adam.adam_update`` on each member's row of the flat
        gradients), for members with rows in this step only."""
        config = self.config
        gradient = tf.concat([tf.reshape(g, [self.members, -1]) for g in gradients], axis=1)  # (M, P)
        lr = tf.constant(config.lr, tf.float32)  # Keras keeps the rate in float32
        momentum, velocity, step = adam_update(gradient, self.momentum, self.velocity, self.iterations, lr,
                                               config.beta1, config.beta2, config.epsilon)
        _assign_active(self.momentum, momentum, active)
        _assign_active(self.velocity, velocity, active)
        for variable, part in zip(self.stack.trainable, tf.split(step, self.sizes, axis=1)):
            _assign_active(variable, variable - tf.reshape(part, variable.shape), active)
        self.iterations.assign_add(tf.cast(active, tf.int64))

    def _train_step(self, x, y, weights):
        """x (M, B, T, C), y (M, B, classes), weights (M, B) of 1 (a member's row) or 0 (padding; a member's rows
        come first) -> (mean loss (M,), correct predictions (M,)) of each member's rows."""
        counts = tf.reduce_sum(weights, axis=1)  # (M,) rows per member
        active = counts > 0
        if self.layout == "grouped":  # each member's blocks as a sequential fold's: the fused ops where they train it
            with fused_ops.enabled(self.config.fused_kernels):
                losses, hits, gradients, updates = self._grouped(x, y, counts)
        else:
            with tf.GradientTape() as tape:
                losses, hits, updates = self._batched(x, y, weights, counts)
                # member m's variables get member m's loss gradient only; a member without rows has no loss
                total = tf.reduce_sum(tf.where(active, losses, tf.zeros_like(losses)))
            gradients = tape.gradient(total, self.stack.trainable)
        self._adam(gradients, active)
        for variable, value in updates:
            _assign_active(variable, value, active)
        return tf.where(active, losses, tf.zeros_like(losses)), tf.where(active, hits, tf.zeros_like(hits))

    def train_epoch(self, x: np.ndarray, ys: list, orders: list) -> list:
        """One epoch: member m passes over the rows ``orders[m]`` of x with labels ``ys[m]`` in batches;
        [(loss, accuracy)] per member, as Trainer.train_epoch computes them."""
        batch = self.config.batch_size
        steps = max(-(-len(order) // batch) for order in orders)
        totals = np.zeros((self.members, 2))
        for step in range(steps):
            rows = np.zeros((self.members, batch), np.int64)  # padding slots read row 0 and weigh 0
            weights = np.zeros((self.members, batch), np.float32)
            for m, order in enumerate(orders):
                part = order[step * batch:(step + 1) * batch]
                rows[m, :len(part)], weights[m, :len(part)] = part, 1.0
            labels = np.stack([y[r] for y, r in zip(ys, rows)])  # (M, B, classes)
            losses, correct = self._step(tf.constant(x[rows], self.dtype), tf.constant(labels, self.dtype),
                                         tf.constant(weights, self.dtype))
            totals[:, 0] += losses.numpy() * weights.sum(1)
            totals[:, 1] += correct.numpy()
        return [(loss / len(order), hits / len(order)) for (loss, hits), order in zip(totals, orders)]

    def predict(self, x: np.ndarray, rows: list) -> list:
        """Softmax outputs (len(rows[m]), classes) of member m on its rows, in inference mode."""
        batch = self.config.batch_size
        longest = max(len(r) for r in rows)
        outputs = [[] for _ in rows]
        for start in range(0, longest, batch):
            parts = [r[start:start + batch] for r in rows]
            size = max(len(p) for p in parts)
            taken = np.zeros((self.members, size), np.int64)
            for m, part in enumerate(parts):
                taken[m, :len(part)] = part
            probs = self._predict(tf.constant(x[taken], self.dtype)).numpy()  # (M, size, classes)
            for m, part in enumerate(parts):
                outputs[m].append(probs[m, :len(part)])
        return [np.concatenate(o) for o in outputs]

    def member_weights(self) -> list:
        """Every member's values, in the order of ``model.variables``."""
        values = [s.numpy() for s in self.stack.variables]
        return [[v[m] for v in values] for m in range(self.members)]


def _train_chunk(trainer: StackedTrainer, config: RunConfig, x: np.ndarray, members: list, label: str) -> list:
    """All epochs of one stack of members (``protocol.train_epochs``); per member its history, its kept epoch and
    that epoch's weights."""
    def predict(rows: list) -> list:  # a member without monitored rows scores one of its fit rows, unread
        return trainer.predict(x, [r if r is not None else m.fit_rows[:1] for r, m in zip(rows, members)])

    kept = train_epochs(config, label, members,
                        lambda orders: trainer.train_epoch(x, [m.labels for m in members], orders),
                        predict, trainer.member_weights)
    last = trainer.member_weights()
    return [MemberResult(k.weights if k.weights is not None else last[i], k.history, k.epoch)
            for i, k in enumerate(kept)]


def train_members(spec: ModelSpec, config: RunConfig, x: np.ndarray, members: list,
                  max_members: Optional[int] = None, layout: Optional[str] = None) -> Iterator[MemberResult]:
    """Train ``members`` (MemberPlans, e.g. from ``plan_member``) stacked, at most ``max_members`` at a time,
    in ``layout`` (``LAYOUTS``; None: ``default_layout()``).

    Yields one MemberResult per member, in order, each stack's as soon as that stack is trained (so a caller saves
    it before the next stack starts); load ``result.weights`` into a normal Keras model
    (``for v, w in zip(model.variables, result.weights): v.assign(w)``) to save or evaluate it.
    """
    check_stack_members(max_members, stacked=True)  # --stack_members, as the command line checks it
    if not members:
        return
    size, trainer = max_members or len(members), None
    for start in range(0, len(members), size):
        chunk = members[start:start + size]
        seeds = [m.fold_seed for m in chunk]
        if trainer is not None and trainer.members == len(chunk):
            trainer.reset(seeds)  # same stack size: the traced step is reused
        else:
            trainer = StackedTrainer(spec, config, x.shape[1:], chunk[0].labels.shape[1], seeds, layout)
        label = f"{chunk[0].label}..{chunk[-1].label} (stacked)"
        yield from _train_chunk(trainer, config, x, chunk, label)
