"""TIM-Net: Temporal-aware bI-direction Multi-scale Network (Ye et al., ICASSP 2023), as Keras 3 layers.

Exactly the network of the authors' code (SPEC §2), not the paper's prose where they differ:
the temporal-aware block gates its input multiplicatively (x * sigmoid(b)) instead of adding a
residual, and the backward direction is summed with the forward one without being flipped back.

    input (B, T, 39) ─┬─ 1x1 conv ─ TAB(d=1) ─ TAB(d=2) ─ … ─ TAB(d=2^(n-1))        forward
                      └─ reverse ─ 1x1 conv ─ TAB(d=1) ─ … ─ TAB(d=2^(n-1))          backward
    at each scale j:  g_j = GlobalAvgPool(fwd_j + bwd_j)            → stacked (B, n, 39)
    WeightLayer:      sum_j w_j g_j                                 → (B, 39)

This file knows nothing about data, files or the command line.
"""

from __future__ import annotations

import keras
from keras import ops

from .core.config import MAX_DILATION_SIZE
from .nn import training_kernels
from .nn.causal_conv import CausalConv1D
from .nn.layer_args import check_activation, check_bool, check_positive_int, check_rate


@keras.saving.register_keras_serializable(package="ser")
class TemporalAwareBlock(keras.layers.Layer):
    """Temporal-Aware Block (TAB), paper §2.2, as the authors' code builds it.

    a = SpatialDropout1D(act(BN(CausalConv(x))));  b = the same on a;  output = x * sigmoid(b).

    The sub-layers hold the weights and compute inference, or, with ReLU where the fused ops are switched on
    (``fused_ops.enabled``), one fused op computes it (``infer_fused``). Training with ReLU runs, by default, the same
    function as one unit with a hand-written backward pass (``training_kernels.temporal_aware_block``),
    which makes far fewer passes over memory than automatic differentiation of the sub-layers (docs/speed.md
    measures it); ``fused=False`` trains and infers through the sub-layers (the plain reference form).

    Args:
        filters: channels of both convolutions; must equal the input channels (the gate multiplies x).
        kernel_size: taps of the causal convolutions (2 in the paper).
        dilation_rate: dilation of both convolutions, 2^(j-1) for block j.
        dropout_rate: SpatialDropout1D rate after each activation (0.1 in the paper).
        activation: activation after each BatchNorm ("relu" in the paper).
        fused: train with the hand-written backward pass, and infer in the fused op where it is switched on (ReLU
            only; any other activation trains and infers the plain way).
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilation_rate: int = 1, dropout_rate: float = 0.1,
                 activation: str = "relu", fused: bool = True, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("dilation_rate", dilation_rate)):
            check_positive_int("TemporalAwareBlock", arg, value)
        check_rate("TemporalAwareBlock", "dropout_rate", dropout_rate)
        check_activation("TemporalAwareBlock", "activation", activation)
        check_bool("TemporalAwareBlock", "fused", fused)
        self.filters, self.kernel_size, self.dilation_rate = filters, kernel_size, dilation_rate
        self.dropout_rate, self.activation, self.fused = float(dropout_rate), activation, fused
        self.act = keras.activations.get(activation)
        self.conv1 = CausalConv1D(filters, kernel_size, dilation_rate, name="conv1")
        self.conv2 = CausalConv1D(filters, kernel_size, dilation_rate, name="conv2")
        # Keras-2 defaults the original relied on: momentum 0.99, epsilon 1e-3.
        self.bn1 = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name="bn1")
        self.bn2 = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name="bn2")
        self.drop1 = keras.layers.SpatialDropout1D(self.dropout_rate, name="drop1")
        self.drop2 = keras.layers.SpatialDropout1D(self.dropout_rate, name="drop2")

    def build(self, input_shape):
        if int(input_shape[-1]) != self.filters:
            raise ValueError(f"TemporalAwareBlock: input channels must equal filters={self.filters}, "
                             f"received input_shape={tuple(input_shape)!r}")
        shape = tuple(input_shape)
        for layer in (self.conv1, self.bn1, self.conv2, self.bn2):
            layer.build(shape)

    def call(self, x, training=None):  # (B, T, F) -> (B, T, F)
        if self.trains_fused(training):
            return self.train_fused(x)
        if not training and self._fusable:
            out = self.infer_fused(x)  # None where the fused ops do not serve
            if out is not None:
                return out
        a = self.drop1(self.act(self.bn1(self.conv1(x), training=training)), training=training)
        b = self.drop2(self.act(self.bn2(self.conv2(a), training=training)), training=training)
        return x * ops.sigmoid(b)

    def trains_fused(self, training) -> bool:
        """Whether ``call(x, training)`` runs the hand-written training function (``train_fused``)."""
        return bool(training and self._fusable and self.trainable)

    @property
    def _fusable(self) -> bool:
        return self.fused and self.activation == "relu" and not self._mixed_precision

    def infer_fused(self, x):
        """(B, T, F) -> (B, T, F) in inference mode in one fused op where the fused ops are switched on
        (``fused_ops.enabled``, around an inference function's tracing or eager calls), else None."""
        statistics = [(bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance) for bn in (self.bn1, self.bn2)]
        return training_kernels.temporal_aware_inference(x, self.conv1.kernel, self.conv1.bias, self.conv2.kernel,
                                                         self.conv2.bias, statistics, self.bn1.epsilon,
                                                         self.dilation_rate)

    @property
    def _mixed_precision(self) -> bool:
        """Computing in a narrower type than the variables: Keras' BatchNormalization then keeps its statistics in
        float32, which the fused path (one type throughout) does not; such runs train through the sub-layers."""
        return self.dtype_policy.compute_dtype != self.dtype_policy.variable_dtype

    def _dropout_mask(self, x, dropout: keras.layers.SpatialDropout1D):
        """SpatialDropout1D's mask (B, 1, F): 0 with probability ``rate``, else 1 / (1 - rate)."""
        if self.dropout_rate == 0.0:
            return None
        noise = keras.random.uniform((ops.shape(x)[0], 1, self.filters), seed=dropout.seed_generator)
        return ops.cast(noise >= self.dropout_rate, x.dtype) / (1.0 - self.dropout_rate)

    def train_fused(self, x, time_mean: bool = False):
        """(B, T, F) -> (B, T, F) in training mode, and with ``time_mean`` also its mean over time (B, F), whose
        gradient joins the output's inside the backward pass (``training_kernels.temporal_aware_block``); updates
        the BatchNorm moving statistics as Keras does."""
        out, *rest = training_kernels.temporal_aware_block(
            x, self.conv1.kernel, self.conv1.bias, self.bn1.gamma, self.bn1.beta,
            self.conv2.kernel, self.conv2.bias, self.bn2.gamma, self.bn2.beta,
            self._dropout_mask(x, self.drop1), self._dropout_mask(x, self.drop2), self.dilation_rate,
            keep_scale=1.0 / (1.0 - self.dropout_rate), epsilon=self.bn1.epsilon, time_mean=time_mean)
        stats = rest[-1]
        for bn, mean, variance in ((self.bn1, *stats[:2]), (self.bn2, *stats[2:])):
            bn.moving_mean.assign(bn.moving_mean * bn.momentum + mean * (1.0 - bn.momentum))
            bn.moving_variance.assign(bn.moving_variance * bn.momentum + variance * (1.0 - bn.momentum))
        return (out, rest[0]) if time_mean else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate, "dropout_rate": self.dropout_rate,
                "activation": self.activation, "fused": self.fused}


@keras.saving.register_keras_serializable(package="ser")
class TIMNET(keras.layers.Layer):
    """The bi-directional multi-scale temporal module, paper §2.1-2.3 (without the fusion).

    Returns the per-scale representations g_1..g_n stacked to (B, n * stacks, filters).

    Args:
        filters: channels everywhere (39 = the MFCC count in the paper).
        kernel_size: taps of the TAB convolutions.
        dilations: number n of TABs per direction; block j uses dilation 2^(j-1).
        stacks: how many times the n blocks are repeated (1 in the paper).
        dropout_rate: SpatialDropout1D rate inside each TAB.
        activation: activation inside each TAB.
        fused: each TAB trains with its hand-written backward pass (same function; see TemporalAwareBlock).
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilations: int = 8, stacks: int = 1,
                 dropout_rate: float = 0.1, activation: str = "relu", fused: bool = True, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("dilations", dilations),
                           ("stacks", stacks)):
            check_positive_int("TIMNET", arg, value)
        if dilations > MAX_DILATION_SIZE:
            raise ValueError(f"TIMNET: dilations must be at most {MAX_DILATION_SIZE} (the last block dilates by "
                             f"2 ** (dilations - 1), beyond TensorFlow's int32 shapes after that), "
                             f"received dilations={dilations!r}")
        check_rate("TIMNET", "dropout_rate", dropout_rate)
        check_activation("TIMNET", "activation", activation)
        self.filters, self.kernel_size, self.dilations, self.stacks = filters, kernel_size, dilations, stacks
        self.dropout_rate, self.activation, self.fused = float(dropout_rate), activation, fused
        self.forward_conv = CausalConv1D(filters, 1, name="forward_conv1x1")
        self.backward_conv = CausalConv1D(filters, 1, name="backward_conv1x1")
        rates = [2 ** j for j in range(dilations)] * stacks

        def tab(direction, j, rate):
            return TemporalAwareBlock(filters, kernel_size, rate, dropout_rate, activation, fused,
                                      name=f"tab{j + 1}_{direction}")

        self.forward_blocks = [tab("forward", j, rate) for j, rate in enumerate(rates)]
        self.backward_blocks = [tab("backward", j, rate) for j, rate in enumerate(rates)]

    @property
    def receptive_field(self) -> int:
        """Frames one output frame of one direction sees: 1 + sum over TABs of 2 (k - 1) d."""
        return 1 + sum(2 * (self.kernel_size - 1) * b.dilation_rate for b in self.forward_blocks)

    def build(self, input_shape):
        steps = tuple(input_shape[:-1])
        self.forward_conv.build(tuple(input_shape))
        self.backward_conv.build(tuple(input_shape))
        for block in self.forward_blocks + self.backward_blocks:
            block.build((*steps, self.filters))

    def call(self, x, training=None):  # (B, T, 39) -> (B, n, filters)
        forward = self.forward_conv(x)  # (B, T, F)
        backward = self.backward_conv(ops.flip(x, axis=1))  # (B, T, F), time reversed
        scales = []
        for forward_block, backward_block in zip(self.forward_blocks, self.backward_blocks):
            if forward_block.trains_fused(training):  # each block's time mean from its own pass: no (B, T, F) sum
                forward, forward_mean = forward_block.train_fused(forward, time_mean=True)
                backward, backward_mean = backward_block.train_fused(backward, time_mean=True)
                scales.append(forward_mean + backward_mean)  # (B, F), = the mean of the sum below
                continue
            forward = forward_block(forward, training=training)
            backward = backward_block(backward, training=training)
            scales.append(ops.mean(forward + backward, axis=1))  # (B, F): the backward one is not flipped back
        return ops.stack(scales, axis=1)  # (B, n, F)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.forward_blocks), self.filters)

    def legacy_weight_groups(self):
        """(name, variables) in the order of the authors' .hdf5 files (SPEC §4)."""
        groups = [(self.forward_conv.name, [self.forward_conv.kernel, self.forward_conv.bias]),
                  (self.backward_conv.name, [self.backward_conv.kernel, self.backward_conv.bias])]
        for fwd, bwd in zip(self.forward_blocks, self.backward_blocks):
            for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
                for block in (fwd, bwd):
                    layer = getattr(block, conv)
                    groups.append((f"{block.name}_{conv}", [layer.kernel, layer.bias]))
                for block in (fwd, bwd):
                    layer = getattr(block, bn)
                    groups.append((f"{block.name}_{bn}", [layer.gamma, layer.beta, layer.moving_mean,
                                                          layer.moving_variance]))
        return groups

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilations": self.dilations, "stacks": self.stacks, "dropout_rate": self.dropout_rate,
                "activation": self.activation, "fused": self.fused}


@keras.saving.register_keras_serializable(package="ser")
class WeightLayer(keras.layers.Layer):
    """Dynamic fusion of the scales, paper §2.3: sum_j w_j g_j with one trainable weight per scale.

    As in the authors' code: a (n, 1) kernel, RandomUniform(-0.05, 0.05) ("uniform" in Keras 2),
    no bias, no softmax or other normalisation of the weights.
    """

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[1]), 1),
                                      initializer=keras.initializers.RandomUniform(-0.05, 0.05))

    def call(self, x):  # (B, n, F) -> (B, F)
        return ops.squeeze(ops.matmul(ops.transpose(x, (0, 2, 1)), self.kernel), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
