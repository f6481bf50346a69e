"""The hand-written backward passes compute the same mathematics as automatic differentiation.

Compared in float64, where rounding cannot hide a wrong term: outputs, every gradient and the BatchNorm
moving statistics of the fused units against the plain Keras layers (autodiff), at several dilations,
including dilations beyond the sequence and a kernel of three taps. In float32 the two orders of
operations round differently; test_fast_path.py shows the fast path is as accurate as the original graph.
"""

import numpy as np
import pytest
import tensorflow as tf

from timnet_ser.GTCM import GatedUnit
from timnet_ser.nn import fused_ops, training_kernels
from timnet_ser.nn.causal_conv import shift_left, shift_right
from timnet_ser.TIMNET import TIMNET, TemporalAwareBlock

FRAMES = 40



def random_like(variable, rng):
    values = rng.normal(scale=0.3, size=variable.shape)
    if variable.path.endswith(("gamma", "moving_variance")):
        values = np.abs(values) + 0.5
    return values


def outputs_and_gradients(layer, x, **call):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, **call)
        loss = tf.reduce_sum(y * tf.sin(3.0 * y))  # a loss whose gradient differs from element to element
    gradients = tape.gradient(loss, [x] + layer.trainable_weights)
    return [y.numpy()] + [g.numpy() for g in gradients] + [v.numpy() for v in layer.non_trainable_weights]


def assert_same(fused, plain, names):
    assert len(fused) == len(plain)
    for a, b, name in zip(fused, plain, names):
        if name.endswith(("conv1/bias", "conv2/bias")):  # 0 in exact arithmetic (BatchNorm removes constants): noise
            assert np.abs(a).max() < 1e-12 and np.abs(b).max() < 1e-12, name
            continue
        scale = max(np.abs(b).max(), 1e-300)
        assert np.abs(a - b).max() <= 1e-10 * scale + 1e-14, f"{name}: {np.abs(a - b).max() / scale:.2e}"


PATHS = ["tensorflow", "fused"]  # the units' element-wise work as TensorFlow operations, or nn/fused_tail.cc's


def kernel_path(path: str):
    """The fused ops switched on for path "fused" (skipped where setup.sh built none), off for "tensorflow"."""
    if path == "fused" and fused_ops.library() is None:
        pytest.skip("setup.sh built no fused kernels here (no C++ compiler?)")
    return fused_ops.enabled(path == "fused")


def assert_fused_equals_plain(fused, plain, x, rng, path: str, **call):
    """Layers ``fused`` (hand-written backward passes, on ``path``) and ``plain`` (autodiff), given the same random
    weights: the same output, gradients (of x and every trainable weight) and non-trainable weights after a call."""
    fused.build(x.shape)
    plain.build(x.shape)
    for a, b in zip(fused.weights, plain.weights):
        a.assign(random_like(a, rng))
        b.assign(a)
    names = ["output", "d x"] + [f"d {w.path}" for w in fused.trainable_weights] + [
        w.path for w in fused.non_trainable_weights]
    with kernel_path(path):
        computed = outputs_and_gradients(fused, x, **call)
    assert_same(computed, outputs_and_gradients(plain, x, **call), names)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kernel_size, dilation", [(2, 1), (2, 8), (3, 4), (2, 32), (2, 64)])
def test_temporal_aware_block_backward_equals_autodiff(float64, kernel_size, dilation, path):
    rng = np.random.default_rng(dilation)
    assert_fused_equals_plain(TemporalAwareBlock(39, kernel_size, dilation, dropout_rate=0.0, fused=True),
                              TemporalAwareBlock(39, kernel_size, dilation, dropout_rate=0.0, fused=False),
                              tf.constant(rng.normal(size=(5, FRAMES, 39))), rng, path, training=True)


@pytest.mark.parametrize("path", PATHS)
def test_timnet_scales_from_the_blocks_equal_autodiff(float64, path):
    """The whole bidirectional module: trained with the hand-written blocks, each level's scale is the sum of the
    two blocks' time means, computed inside them with its gradient joining theirs (the last blocks' outputs reach
    the loss only through it); equal to autodiff of the plain layers' mean of the sum."""
    rng = np.random.default_rng(3)
    assert_fused_equals_plain(TIMNET(39, 2, dilations=3, dropout_rate=0.0, fused=True),
                              TIMNET(39, 2, dilations=3, dropout_rate=0.0, fused=False),
                              tf.constant(rng.normal(size=(4, FRAMES, 39))), rng, path, training=True)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kernel_size, dilation", [(2, 1), (2, 16), (3, 4), (2, 64)])
def test_gated_unit_backward_equals_autodiff(float64, kernel_size, dilation, path):
    rng = np.random.default_rng(dilation)
    assert_fused_equals_plain(GatedUnit(39, kernel_size, dilation, fused=True),
                              GatedUnit(39, kernel_size, dilation, fused=False),
                              tf.constant(rng.normal(size=(5, FRAMES, 39))), rng, path)


@pytest.mark.parametrize("path", PATHS)
def test_dropout_masks_enter_forward_and_backward(float64, path):
    """With the same SpatialDropout masks, the kernel equals autodiff of the block written out with plain ops."""
    rng = np.random.default_rng(0)
    rate, lags = 0.25, [3, 0]
    x = tf.constant(rng.normal(size=(4, FRAMES, 39)))
    masks = [tf.constant((rng.random((4, 1, 39)) >= rate) / (1 - rate)) for _ in range(2)]
    params = [tf.constant(rng.normal(scale=0.3, size=shape)) for shape in
              [(2, 39, 39), (39,), (39,), (39,)] * 2]

    def plain(x, kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2):
        def conv_bn_relu_drop(h, kernel, bias, gamma, beta, mask):
            z = sum(tf.einsum("btc,cf->btf", shift_right(h, lag), kernel[j]) for j, lag in enumerate(lags)) + bias
            mean, variance = tf.nn.moments(z, axes=[0, 1])
            return tf.nn.relu((z - mean) / tf.sqrt(variance + 1e-3) * gamma + beta) * mask
        a = conv_bn_relu_drop(x, kernel1, bias1, gamma1, beta1, masks[0])
        return x * tf.sigmoid(conv_bn_relu_drop(a, kernel2, bias2, gamma2, beta2, masks[1]))

    def fused(x, *params):
        return training_kernels.temporal_aware_block(x, *params, masks[0], masks[1], dilation=3,
                                                     keep_scale=1 / (1 - rate), epsilon=1e-3)[0]

    results = []
    for function in (fused, plain):
        with kernel_path(path if function is fused else "tensorflow"), tf.GradientTape() as tape:
            tape.watch([x, *params])
            y = function(x, *params)
            loss = tf.reduce_sum(y * tf.cos(2.0 * y))
        results.append([y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x, *params])])
    names = ["output", "d x"] + [f"d {n}" for n in ("kernel1 bias1 gamma1 beta1 kernel2 bias2 gamma2 beta2").split()]
    # the conv biases' true gradient is 0 (BatchNorm removes constants): compare them absolutely
    for a, b, name in zip(*results, names):
        if "bias" in name:
            assert np.abs(a).max() < 1e-10 and np.abs(b).max() < 1e-10, name
        else:
            assert np.abs(a - b).max() <= 1e-10 * np.abs(b).max(), name


@pytest.mark.parametrize("lag", [0, 1, 7, FRAMES - 1, FRAMES, FRAMES + 5])
def test_time_shifts_are_adjoint(lag):
    """shift_left is the transpose of shift_right: <shift_right(x), y> = <x, shift_left(y)>."""
    rng = np.random.default_rng(lag)
    x, y = (tf.constant(rng.normal(size=(3, FRAMES, 5))) for _ in range(2))
    right = shift_right(x, lag).numpy()
    assert np.array_equal(right[:, lag:], x.numpy()[:, :max(FRAMES - lag, 0)])
    assert not right[:, :lag].any()
    np.testing.assert_allclose(np.sum(right * y.numpy()), np.sum(x.numpy() * shift_left(y, lag).numpy()), rtol=1e-12)
