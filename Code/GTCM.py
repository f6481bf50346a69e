"""GM-TCNet's Gated Multi-scale Temporal Convolution Module (Ye et al., Speech Communication 145, 2022), Keras 3.

As the authors' code builds it (SPEC §3)::

    input (B, T, 39) ─ 1x1 causal conv ─ block(i=1) ─ block(i=2) ─ … ─ block(i=64)
    block(i) on x:  level 1 = GatedUnit(dilation i)(x);  level 2 = GatedUnit(dilation 2i)(level 1)
                    skip = level 2;  residual (the next block's input) = x + level 2
    output:         GlobalAvgPool(LeakyReLU_0.05(sum of the 7 skips))      -> (B, 39)

No BatchNorm, no dropout; the softmax head is added by the model builder. Every convolution is a
``CausalConv1D`` named as in the original graph, so the original's weight files map one to one
(``GTCM.legacy_weight_groups``). This file knows nothing about data, files or the command line.

Speed: a GatedUnit's six convolutions all read the same input with the same dilation, so by default
(``fused=True``) it computes them as two matrix products (values, gates): the input and its copy
shifted by the dilation, side by side (B, T, k*C), times three kernels concatenated along their output
axis (k*C, 3F), with a hand-written backward pass (``training_kernels.gated_unit``); with the fused ops
that setup.sh builds (training, one fold's batch), all six as one causal convolution inside them. The six kernels
and biases remain separate variables with Keras' Conv1D shapes; they are only concatenated inside the
call, so gradients reach each one and weights still map one to one. ``fused=False`` runs the six
convolutions one by one with automatic differentiation (the plain reference form; same function).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from .nn import training_kernels
from .nn.causal_conv import CausalConv1D
from .nn.layer_args import check_bool, check_positive_int

DEFAULT_DILATIONS = (1, 2, 4, 8, 16, 32, 64)


def receptive_field(kernel_size: int = 2, dilations: Sequence[int] = DEFAULT_DILATIONS) -> int:
    """Frames that one output frame of the GTCM sees: 1 + sum over blocks of (k - 1)(i + 2i); 382 for the paper."""
    return 1 + sum((kernel_size - 1) * 3 * d for d in dilations)


@keras.saving.register_keras_serializable(package="ser")
class GatedUnit(keras.layers.Layer):
    """Three parallel gated causal convolutions, averaged (paper §3, gated convolution; SPEC §3, one level).

    branch_b(x) = ReLU(conv_b(x)) * sigmoid(ReLU(convs_b(x))),  b = 1, 2, 3
    output      = (branch_1 + branch_2 + branch_3) / 3

    Sub-layers carry the original's names: value conv ``GTCM_dilated_conv<level>.<b>_dilation<i>_stack0``,
    gate conv ``GTCM_dilated_convs<level>.<b>_dilation<i>_stack0``, where i is the BLOCK's dilation
    (the original names level 2 after its block, although it convolves with dilation 2i).

    Args:
        filters: output channels of every convolution (39 in the paper).
        kernel_size: taps of the causal convolutions (2 in the paper).
        dilation_rate: dilation actually used by all six convolutions.
        level: 1 or 2, the unit's place in its block (used only in the sub-layers' names).
        block_dilation: the dilation i written in the names; defaults to ``dilation_rate``.
        fused: compute the six convolutions as two products with a hand-written backward pass (same function).
        kernel_initializer: initializer of each (kernel_size, C_in, filters) kernel; biases start at zero.
    """

    branches = 3

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilation_rate: int = 1, level: int = 1,
                 block_dilation: int | None = None, fused: bool = True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if block_dilation is None:
            block_dilation = dilation_rate
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("dilation_rate", dilation_rate),
                           ("block_dilation", block_dilation)):
            check_positive_int("GatedUnit", arg, value)
        if level not in (1, 2) or isinstance(level, bool):
            raise ValueError(f"GatedUnit: level must be 1 or 2, received level={level!r}")
        check_bool("GatedUnit", "fused", fused)
        self.filters, self.kernel_size, self.dilation_rate = filters, kernel_size, dilation_rate
        self.level, self.block_dilation, self.fused = level, block_dilation, fused
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        def conv(kind: str, branch: int) -> CausalConv1D:
            # each conv gets its own initializer instance (from the config): an unseeded Keras 3 initializer
            # instance draws the same values every time it is called, which would make all kernels equal
            return CausalConv1D(filters, kernel_size, dilation_rate, use_bias=True,
                                kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                                dtype=self.dtype_policy,
                                name=f"GTCM_dilated_{kind}{level}.{branch}_dilation{block_dilation}_stack0")

        # the original creates the three gate convs first, then the three value convs (its weight-file order)
        self.gate_convs = [conv("convs", b + 1) for b in range(self.branches)]
        self.value_convs = [conv("conv", b + 1) for b in range(self.branches)]

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"GatedUnit: the channel axis must be known, received input_shape={input_shape!r}")
        for layer in self.gate_convs + self.value_convs:
            layer.build(tuple(input_shape))

    def call(self, x, training=None):  # (B, T, C) -> (B, T, F)
        if self.fused:
            return self._call_fused(x, bool(training))
        total = None
        for value, gate in zip(self.value_convs, self.gate_convs):
            branch = ops.relu(value(x)) * ops.sigmoid(ops.relu(gate(x)))  # (B, T, F)
            total = branch if total is None else total + branch
        return total * (1.0 / self.branches)  # (B, T, F)

    def _call_fused(self, x, training: bool):  # (B, T, C) -> (B, T, F); the same function in both modes
        k, f, channels = self.kernel_size, self.filters, x.shape[-1]

        def side_by_side(convs):  # n kernels (k, C, F) -> (k*C, n*F): row j*C + c multiplies channel c of tap j
            return ops.concatenate([ops.reshape(c.kernel, (k * channels, f)) for c in convs], axis=-1)

        return training_kernels.gated_unit(
            x, side_by_side(self.value_convs), ops.concatenate([c.bias for c in self.value_convs], axis=0),
            side_by_side(self.gate_convs), ops.concatenate([c.bias for c in self.gate_convs], axis=0),
            self.dilation_rate, self.branches, training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def legacy_weight_groups(self) -> list:
        """(name, [kernel, bias]) of the gate convs, then the value convs, as in the original's weight file."""
        return [(layer.name, [layer.kernel, layer.bias]) for layer in self.gate_convs + self.value_convs]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate, "level": self.level, "block_dilation": self.block_dilation,
                "fused": self.fused, "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package="ser")
class GatedBlock(keras.layers.Layer):
    """One multi-scale gated convolution block (paper §3, gated convolution block; SPEC §3).

    level 1 = GatedUnit(dilation i)(x);  level 2 = GatedUnit(dilation 2i)(level 1)
    returns (residual = x + level 2, skip = level 2)

    Args:
        filters: channels of every convolution; must equal the input channels (residual sum).
        kernel_size: taps of the causal convolutions (2 in the paper).
        dilation: the block's dilation i (level 2 convolves with 2i).
        fused: passed to both GatedUnits.
        kernel_initializer: passed to both GatedUnits.
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilation: int = 1, fused: bool = True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("dilation", dilation)):
            check_positive_int("GatedBlock", arg, value)
        check_bool("GatedBlock", "fused", fused)
        self.filters, self.kernel_size, self.dilation, self.fused = filters, kernel_size, dilation, fused
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        common = dict(filters=filters, kernel_size=kernel_size, block_dilation=dilation, fused=fused,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      dtype=self.dtype_policy)
        self.level1 = GatedUnit(dilation_rate=dilation, level=1, name="level1", **common)
        self.level2 = GatedUnit(dilation_rate=2 * dilation, level=2, name="level2", **common)

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            raise ValueError(f"GatedBlock: input channels must equal filters={self.filters} (residual sum), "
                             f"received input_shape={tuple(input_shape)!r}")
        self.level1.build(tuple(input_shape))
        self.level2.build(tuple(input_shape))

    def call(self, x):  # (B, T, F) -> residual (B, T, F), skip (B, T, F)
        skip = self.level2(self.level1(x))  # (B, T, F)
        return x + skip, skip

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape)

    @property
    def receptive_field(self) -> int:
        """Frames the block adds to the receptive field: (k - 1) i at level 1 plus (k - 1) 2i at level 2."""
        return (self.kernel_size - 1) * 3 * self.dilation

    def legacy_weight_groups(self) -> list:
        return self.level1.legacy_weight_groups() + self.level2.legacy_weight_groups()

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation": self.dilation, "fused": self.fused,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package="ser")
class GTCM(keras.layers.Layer):
    """The gated multi-scale temporal convolution module with its pooling (paper §3; SPEC §3), no softmax head.

    (B, T, C_in) -> 1x1 causal conv 'conv1d' -> GatedBlocks -> sum of skips -> LeakyReLU -> mean over T -> (B, F)

    Args:
        filters: channels everywhere after the 1x1 conv (39 = the MFCC count in the paper).
        kernel_size: taps of the dilated causal convolutions (2 in the paper).
        dilations: the blocks' dilations i (1, 2, 4, ..., 64 in the paper: 7 blocks).
        leaky_alpha: negative slope of the LeakyReLU after the skip sum (0.05 in the original).
        fused: each GatedUnit computes its six convolutions as one matrix product (same function).
        kernel_initializer: of every convolution kernel (Keras' Conv1D default, glorot_uniform).
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilations: Sequence[int] = DEFAULT_DILATIONS,
                 leaky_alpha: float = 0.05, fused: bool = True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        check_positive_int("GTCM", "filters", filters)
        check_positive_int("GTCM", "kernel_size", kernel_size)
        try:
            dilations = tuple(dilations)
        except TypeError:
            raise ValueError(f"GTCM: dilations must be a sequence of positive integers, "
                             f"received dilations={dilations!r}") from None
        if not dilations or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dilations):
            raise ValueError(f"GTCM: dilations must be a non-empty sequence of positive integers, "
                             f"received dilations={dilations!r}")
        if isinstance(leaky_alpha, bool) or not isinstance(leaky_alpha, (int, float)) or not 0 <= leaky_alpha < 1:
            raise ValueError(f"GTCM: leaky_alpha must be a number in [0, 1), received leaky_alpha={leaky_alpha!r}")
        check_bool("GTCM", "fused", fused)
        self.filters, self.kernel_size, self.dilations = filters, kernel_size, dilations
        self.leaky_alpha, self.fused = float(leaky_alpha), fused
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        initializer = keras.initializers.serialize(self.kernel_initializer)  # a config: a fresh instance per conv
        self.input_conv = CausalConv1D(filters, 1, 1, use_bias=True, kernel_initializer=initializer,
                                       dtype=self.dtype_policy, name="conv1d")  # the original's name
        self.blocks = [GatedBlock(filters, kernel_size, d, fused=fused, kernel_initializer=initializer,
                                  dtype=self.dtype_policy, name=f"block{j}_dilation{d}")
                       for j, d in enumerate(dilations)]

    @property
    def receptive_field(self) -> int:
        """Frames that one output frame sees: 1 + sum over blocks of (k - 1)(i + 2i); 382 for the paper."""
        return receptive_field(self.kernel_size, self.dilations)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"GTCM: expects (batch, frames, channels) with known channels, "
                             f"received input_shape={tuple(input_shape)!r}")
        self.input_conv.build(tuple(input_shape))
        for block in self.blocks:
            block.build((*tuple(input_shape)[:-1], self.filters))

    def sequence(self, x):  # (B, T, C_in) -> (B, T, F): the frame-level activations before pooling
        x = self.input_conv(x)  # (B, T, F)
        skips = None
        for block in self.blocks:
            x, skip = block(x)  # (B, T, F) each
            skips = skip if skips is None else skips + skip
        return ops.leaky_relu(skips, negative_slope=self.leaky_alpha)  # (B, T, F)

    def call(self, x):  # (B, T, C_in) -> (B, F)
        return ops.mean(self.sequence(x), axis=1)  # GlobalAveragePooling1D

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filters)

    def legacy_weight_groups(self) -> list:
        """(name, [kernel, bias]) in the order of the original's weight file: the 1x1 conv, then per block
        level-1 gate convs, level-1 value convs, level-2 gate convs, level-2 value convs."""
        groups = [(self.input_conv.name, [self.input_conv.kernel, self.input_conv.bias])]
        for block in self.blocks:
            groups.extend(block.legacy_weight_groups())
        return groups

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilations": list(self.dilations), "leaky_alpha": self.leaky_alpha, "fused": self.fused,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
