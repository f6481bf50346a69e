"""GM-TCNet's Gated Multi-scale Temporal Convolution Module (Ye et al., Speech Communication 145, 2022), Keras 3.

As the authors' code builds it (SPEC §3):

    input (B, T, 39) ─ 1x1 causal conv ─ block(i=1) ─ block(i=2) ─ … ─ block(i=64)
    block(i) on x:  level 1 = GatedUnit(dilation i)(x);  level 2 = GatedUnit(dilation 2i)(level 1)
                    skip = level 2;  residual (the next block's input) = x + level 2
    output:         GlobalAvgPool(LeakyReLU_0.05(sum of the 7 skips))      → (B, 39)

No BatchNorm, no dropout. Conv layers are named as in the original graph, so its weight
files map one to one. This file knows nothing about data, files or the command line.
"""

from __future__ import annotations

import keras
from keras import ops

from causal_conv import CausalConv1D


def _check_positive_int(owner: str, name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, received {name}={value!r}")


@keras.saving.register_keras_serializable(package="ser")
class GatedUnit(keras.layers.Layer):
    """Three parallel gated convolutions, averaged: paper §3.2, Eq. (1)-(2).

    branch_b(x) = ReLU(conv_b(x)) * sigmoid(ReLU(gate_b(x)));  output = (branch_1 + branch_2 + branch_3) / 3.

    Args:
        filters: output channels of every convolution.
        kernel_size: taps of the causal convolutions (2 in the paper).
        dilation_rate: dilation of all six convolutions.
        level: 1 or 2, the unit's place in its block (only used in the original's layer names).
        block_dilation: the block's dilation i, which the original's names carry even at level 2.
    """

    branches = 3

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilation_rate: int = 1, level: int = 1,
                 block_dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("dilation_rate", dilation_rate),
                           ("level", level), ("block_dilation", block_dilation)):
            _check_positive_int("GatedUnit", arg, value)
        self.filters, self.kernel_size, self.dilation_rate = filters, kernel_size, dilation_rate
        self.level, self.block_dilation = level, block_dilation

        def conv(kind: str, branch: int) -> CausalConv1D:
            name = f"GTCM_dilated_{kind}{level}.{branch}_dilation{block_dilation}_stack0"
            return CausalConv1D(filters, kernel_size, dilation_rate, name=name)

        self.gates = [conv("convs", b + 1) for b in range(self.branches)]
        self.values = [conv("conv", b + 1) for b in range(self.branches)]

    def build(self, input_shape):
        for layer in self.gates + self.values:
            layer.build(tuple(input_shape))

    def call(self, x):  # (B, T, C) -> (B, T, filters)
        total = None
        for value, gate in zip(self.values, self.gates):
            branch = ops.relu(value(x)) * ops.sigmoid(ops.relu(gate(x)))
            total = branch if total is None else total + branch
        return total * (1.0 / self.branches)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def legacy_weight_groups(self):
        """Gate convs then value convs, as the original graph creates them."""
        return [(layer.name, [layer.kernel, layer.bias]) for layer in self.gates + self.values]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate, "level": self.level, "block_dilation": self.block_dilation}


@keras.saving.register_keras_serializable(package="ser")
class GatedBlock(keras.layers.Layer):
    """One multi-scale gated block, paper §3.2: two GatedUnits with dilations i and 2i; residual and skip outputs.

    Args:
        filters: channels of every convolution; must equal the input channels (residual sum).
        kernel_size: taps of the causal convolutions.
        dilation: the block's dilation i.
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilation: int = 1, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("dilation", dilation)):
            _check_positive_int("GatedBlock", arg, value)
        self.filters, self.kernel_size, self.dilation = filters, kernel_size, dilation
        self.level1 = GatedUnit(filters, kernel_size, dilation, 1, dilation, name="level1")
        self.level2 = GatedUnit(filters, kernel_size, 2 * dilation, 2, dilation, name="level2")

    def build(self, input_shape):
        if int(input_shape[-1]) != self.filters:
            raise ValueError(f"GatedBlock: input channels must equal filters={self.filters}, "
                             f"received input_shape={tuple(input_shape)!r}")
        self.level1.build(tuple(input_shape))
        self.level2.build(tuple(input_shape))

    def call(self, x):  # (B, T, F) -> residual (B, T, F), skip (B, T, F)
        skip = self.level2(self.level1(x))
        return x + skip, skip

    @property
    def receptive_field(self) -> int:
        return (self.kernel_size - 1) * 3 * self.dilation  # frames added: i at level 1, 2i at level 2

    def legacy_weight_groups(self):
        return self.level1.legacy_weight_groups() + self.level2.legacy_weight_groups()

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation": self.dilation}


@keras.saving.register_keras_serializable(package="ser")
class GTCM(keras.layers.Layer):
    """The gated multi-scale temporal convolution module with its pooling, paper §3 (without the softmax head).

    Args:
        filters: channels everywhere (39 = the MFCC count).
        kernel_size: taps of the dilated causal convolutions.
        dilations: block dilations i (1, 2, 4, ..., 64 in the paper).
        leaky_alpha: negative slope of the LeakyReLU after the skip sum (0.05 in the original).
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilations=(1, 2, 4, 8, 16, 32, 64),
                 leaky_alpha: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("GTCM", "filters", filters)
        _check_positive_int("GTCM", "kernel_size", kernel_size)
        dilations = tuple(dilations)
        if not dilations or not all(isinstance(d, int) and d >= 1 for d in dilations):
            raise ValueError(f"GTCM: dilations must be positive integers, received dilations={dilations!r}")
        if not 0.0 <= leaky_alpha < 1.0:
            raise ValueError(f"GTCM: leaky_alpha must be in [0, 1), received leaky_alpha={leaky_alpha!r}")
        self.filters, self.kernel_size, self.dilations, self.leaky_alpha = filters, kernel_size, dilations, leaky_alpha
        self.input_conv = CausalConv1D(filters, 1, name="conv1d")
        self.blocks = [GatedBlock(filters, kernel_size, d, name=f"block_dilation{d}") for d in dilations]

    @property
    def receptive_field(self) -> int:
        """Frames the last output frame sees: 1 + sum over blocks of (k - 1)(i + 2i); 382 in the paper."""
        return 1 + sum(block.receptive_field for block in self.blocks)

    def build(self, input_shape):
        self.input_conv.build(tuple(input_shape))
        for block in self.blocks:
            block.build((*tuple(input_shape)[:-1], self.filters))

    def sequence(self, x):  # (B, T, 39) -> (B, T, F): the activations before pooling
        x = self.input_conv(x)
        skips = None
        for block in self.blocks:
            x, skip = block(x)
            skips = skip if skips is None else skips + skip
        return ops.leaky_relu(skips, negative_slope=self.leaky_alpha)

    def call(self, x):  # (B, T, 39) -> (B, F)
        return ops.mean(self.sequence(x), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.filters)

    def legacy_weight_groups(self):
        """(name, variables) in the order of the original graph's weight file."""
        groups = [(self.input_conv.name, [self.input_conv.kernel, self.input_conv.bias])]
        for block in self.blocks:
            groups.extend(block.legacy_weight_groups())
        return groups

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilations": list(self.dilations), "leaky_alpha": self.leaky_alpha}
