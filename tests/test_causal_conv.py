"""CausalConv1D (nn/causal_conv.py) is Keras' causal Conv1D, written as one 2-D product per tap."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from timnet_ser.nn.causal_conv import CausalConv1D

FRAMES, CHANNELS, FILTERS = 12, 5, 3


@pytest.mark.parametrize("kernel_size, dilation", [(1, 1), (2, 1), (2, 4), (3, 2), (2, FRAMES), (2, FRAMES + 3)])
def test_causal_conv_equals_keras_causal_conv1d(kernel_size, dilation):
    """The same outputs as ``Conv1D(padding="causal")`` with the same kernel and bias, in float64: dilations whose
    lag reaches past the sequence included (those taps read zeros)."""
    rng = np.random.default_rng(kernel_size * 100 + dilation)
    x = rng.normal(size=(4, FRAMES, CHANNELS))
    ours = CausalConv1D(FILTERS, kernel_size, dilation, dtype="float64")
    theirs = keras.layers.Conv1D(FILTERS, kernel_size, padding="causal", dilation_rate=dilation, dtype="float64")
    ours.build(x.shape), theirs.build(x.shape)
    weights = [rng.normal(size=(kernel_size, CHANNELS, FILTERS)), rng.normal(size=(FILTERS,))]
    ours.set_weights(weights), theirs.set_weights(weights)
    expected = np.asarray(theirs(x))
    np.testing.assert_allclose(np.asarray(ours(x)), expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_a_one_tap_kernel_takes_sequences_of_any_length():
    """A kernel of one tap shifts nothing, so the sequence length may be unknown when the graph is traced."""
    layer = CausalConv1D(FILTERS, 1, dtype="float64")
    layer.build((None, None, CHANNELS))
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, CHANNELS), tf.float64)])
    for frames in (1, 7):
        x = np.random.default_rng(frames).normal(size=(2, frames, CHANNELS))
        np.testing.assert_allclose(traced(x).numpy(), layer(x).numpy(), rtol=0, atol=1e-12)


def test_each_tap_is_one_product_without_shape_arithmetic():
    """One MatMul per tap and no tensordot (Keras' ``ops.matmul`` on a 3-D input: some two dozen shape nodes per
    product, which every trace and every exporter pays for: a TIM-Net has 64 such products)."""
    layer = CausalConv1D(FILTERS, 2, 4)
    layer.build((None, FRAMES, CHANNELS))
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec((None, FRAMES, CHANNELS))).graph
    ops = [op.type for op in graph.get_operations()]
    assert ops.count("MatMul") == 2, ops
    assert not {"Prod", "GatherV2", "Transpose", "ConcatV2"} & set(ops), ops
