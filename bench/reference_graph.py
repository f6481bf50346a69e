"""TIM-Net and GM-TCNet built layer for layer the way the authors' code builds them, for comparison only.

Plain Keras ``Conv1D(padding="causal", dilation_rate=d)``, ``BatchNormalization``, ``Activation``,
``SpatialDropout1D``, separate layers per direction, trained with ``model.compile`` + ``model.fit``:
the straightforward graph that the benchmark measures our training path against, and that the
equivalence tests compare one optimiser step with. Each builder also returns the model's weights
in the legacy file order, so both graphs can be given the same weights.

Every builder takes the Keras module to build with (``keras``: Keras 3, the default, or ``tf_keras``: the
Keras 2 that the authors' code runs on today with ``TF_USE_LEGACY_KERAS=1``; bench/end_to_end.py times both).
"""

from __future__ import annotations

import importlib


def _keras(module):
    """The Keras module to build with: ``module``, or Keras 3 when it is None (imported only then, so that
    a tf_keras process does not load Keras 3 as well)."""
    return module if module is not None else importlib.import_module("keras")


def _is_keras3(keras) -> bool:
    return hasattr(keras, "ops")  # Keras 2 (tf_keras) has no keras.ops


def _conv(keras, filters, kernel, dilation=1):
    return keras.layers.Conv1D(filters, kernel, dilation_rate=dilation, padding="causal")


def _flip(keras, x):
    """Time reversed; the authors' ``K.reverse(inputs, axes=1)``."""
    return keras.ops.flip(x, axis=1) if _is_keras3(keras) else keras.backend.reverse(x, axes=1)


def _fusion(keras, filters: int):
    """The weighted sum over the blocks' scales ((B, blocks, C) -> (B, C)): our WeightLayer on Keras 3; on
    Keras 2 the same product (a (blocks, 1) kernel, the legacy 'uniform' initialiser) from stock layers.

    Returns (a callable on the scales, the layer holding the kernel)."""
    if _is_keras3(keras):
        from timnet_ser.TIMNET import WeightLayer
        layer = WeightLayer()
        return layer, layer
    layer = keras.layers.Dense(1, use_bias=False, kernel_initializer="uniform")
    return (lambda scales: keras.layers.Reshape((filters,))(layer(keras.layers.Permute((2, 1))(scales)))), layer


def reference_timnet(frames: int, classes: int, blocks: int = 8, dropout: float = 0.1, filters: int = 39,
                     keras=None):
    """Returns (model, legacy weight groups) of the original TIM-Net graph (SPEC §2), built with ``keras``
    (Keras 3 when None)."""
    keras = _keras(keras)
    layers = keras.layers
    inputs = keras.Input((frames, 39))
    first = [_conv(keras, filters, 1), _conv(keras, filters, 1)]
    streams = [first[0](inputs), first[1](_flip(keras, inputs))]
    groups = [("fwd_conv", first[0].weights), ("bwd_conv", first[1].weights)]
    scales = []
    for j in range(blocks):
        convs1 = [_conv(keras, filters, 2, 2 ** j) for _ in range(2)]
        bns1 = [layers.BatchNormalization() for _ in range(2)]
        convs2 = [_conv(keras, filters, 2, 2 ** j) for _ in range(2)]
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
    fusion, fusion_layer = _fusion(keras, filters)
    dense = layers.Dense(classes, activation="softmax")
    outputs = dense(fusion(layers.Concatenate(axis=1)(scales)))
    groups += [("weight_layer", fusion_layer.weights), ("dense", dense.weights)]
    return keras.Model(inputs, outputs), groups


def reference_gmtcn(frames: int, classes: int, filters: int = 39, dilations=(1, 2, 4, 8, 16, 32, 64),
                    keras=None):
    """Returns (model, legacy weight groups) of the original GM-TCNet graph (SPEC §3), built with ``keras``
    (Keras 3 when None)."""
    keras = _keras(keras)
    layers = keras.layers
    inputs = keras.Input((frames, 39))
    conv = _conv(keras, filters, 1)
    x = conv(inputs)
    groups = [("conv1d", conv.weights)]
    skips = []
    for i in dilations:
        level_input = x
        for _level, rate in ((1, i), (2, 2 * i)):
            gates = [_conv(keras, filters, 2, rate) for _ in range(3)]
            values = [_conv(keras, filters, 2, rate) for _ in range(3)]
            branches = [layers.Multiply()([layers.Activation("relu")(v(level_input)),
                                           layers.Activation("sigmoid")(layers.Activation("relu")(g(level_input)))])
                        for v, g in zip(values, gates)]
            level_input = layers.Rescaling(1 / 3)(layers.Add()(branches))
            groups.extend((f"l{len(groups)}", layer.weights) for layer in gates + values)
        skips.append(level_input)
        x = layers.Add()([x, level_input])
    slope = {"negative_slope" if _is_keras3(keras) else "alpha": 0.05}  # Keras 2 names it alpha
    pooled = layers.GlobalAveragePooling1D()(layers.LeakyReLU(**slope)(layers.Add()(skips)))
    dense = layers.Dense(classes, activation="softmax")
    outputs = dense(pooled)  # (B, C); the Dense has weights only once called
    groups.append(("dense", dense.weights))
    return keras.Model(inputs, outputs), groups
