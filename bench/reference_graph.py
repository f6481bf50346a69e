"""TIM-Net and GM-TCNet built layer for layer the way the authors' code builds them, for comparison only.

Plain Keras ``Conv1D(padding="causal", dilation_rate=d)``, ``BatchNormalization``, ``Activation``,
``SpatialDropout1D``, separate layers per direction, trained with ``model.compile`` + ``model.fit``:
the straightforward graph that the benchmark measures our training path against, and that the
equivalence tests compare one optimiser step with. Each builder also returns the model's weights
in the legacy file order, so both graphs can be given the same weights.
"""

from __future__ import annotations

import keras
from keras import layers

from timnet_ser.TIMNET import WeightLayer


def _conv(filters, kernel, dilation=1):
    return layers.Conv1D(filters, kernel, dilation_rate=dilation, padding="causal")


def reference_timnet(frames: int, classes: int, blocks: int = 8, dropout: float = 0.1, filters: int = 39):
    """Returns (model, legacy weight groups) of the original TIM-Net graph (SPEC §2)."""
    inputs = keras.Input((frames, 39))
    first = [_conv(filters, 1), _conv(filters, 1)]
    streams = [first[0](inputs), first[1](keras.ops.flip(inputs, axis=1))]
    groups = [("fwd_conv", first[0].weights), ("bwd_conv", first[1].weights)]
    scales = []
    for j in range(blocks):
        convs1 = [_conv(filters, 2, 2 ** j) for _ in range(2)]
        bns1 = [layers.BatchNormalization() for _ in range(2)]
        convs2 = [_conv(filters, 2, 2 ** j) for _ in range(2)]
        bns2 = [layers.BatchNormalization() for _ in range(2)]
        outputs = []
        for d in range(2):
            a = layers.SpatialDropout1D(dropout)(layers.Activation("relu")(bns1[d](convs1[d](streams[d]))))
            b = layers.SpatialDropout1D(dropout)(layers.Activation("relu")(bns2[d](convs2[d](a))))
            outputs.append(layers.Multiply()([streams[d], layers.Activation("sigmoid")(b)]))
        streams = outputs
        scales.append(layers.Reshape((1, filters))(layers.GlobalAveragePooling1D()(layers.Add()(streams))))
        for group in (convs1, bns1, convs2, bns2):
            groups.extend((f"l{len(groups)}", layer.weights) for layer in group)
    fusion_layer = WeightLayer()
    dense = layers.Dense(classes, activation="softmax")
    outputs = dense(fusion_layer(layers.Concatenate(axis=1)(scales)))
    groups += [("weight_layer", fusion_layer.weights), ("dense", dense.weights)]
    return keras.Model(inputs, outputs), groups


def reference_gmtcn(frames: int, classes: int, filters: int = 39, dilations=(1, 2, 4, 8, 16, 32, 64)):
    """Returns (model, legacy weight groups) of the original GM-TCNet graph (SPEC §3)."""
    inputs = keras.Input((frames, 39))
    conv = _conv(filters, 1)
    x = conv(inputs)
    groups = [("conv1d", conv.weights)]
    skips = []
    for i in dilations:
        level_input = x
        for _level, rate in ((1, i), (2, 2 * i)):
            gates = [_conv(filters, 2, rate) for _ in range(3)]
            values = [_conv(filters, 2, rate) for _ in range(3)]
            branches = [layers.Multiply()([layers.Activation("relu")(v(level_input)),
                                           layers.Activation("sigmoid")(layers.Activation("relu")(g(level_input)))])
                        for v, g in zip(values, gates)]
            level_input = layers.Rescaling(1 / 3)(layers.Add()(branches))
            groups.extend((f"l{len(groups)}", layer.weights) for layer in gates + values)
        skips.append(level_input)
        x = layers.Add()([x, level_input])
    pooled = layers.GlobalAveragePooling1D()(layers.LeakyReLU(negative_slope=0.05)(layers.Add()(skips)))
    dense = layers.Dense(classes, activation="softmax")
    outputs = dense(pooled)  # (B, C); the Dense has weights only once called
    groups.append(("dense", dense.weights))
    return keras.Model(inputs, outputs), groups
