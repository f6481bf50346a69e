"""Causal dilated 1-D convolution written as matrix products, shared by TIM-Net and GM-TCNet.

Keras ``Conv1D(padding="causal", dilation_rate=d)`` with kernel size k computes
``y[t] = b + sum_j x[t - (k-1-j) d] @ W[j]`` with zeros before the first frame. For the
kernel sizes of these models (1 and 2) that is one or two dense products over the
channel axis of the sequence and a copy of it shifted right by ``d`` frames; on CPU
this runs much faster than the generic dilated convolution (which TensorFlow lowers to
space-to-batch, a 2-D convolution and batch-to-space). The variables keep Keras'
``Conv1D`` shapes, kernel (k, C_in, C_out) and bias (C_out,), so weights map one to one. The same sum serves
stacked members (engine/stacked_training.py) through another ``batch`` layout than ``SingleBatch``.
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from .layer_args import check_positive_int


def shift_right(x, lag: int):
    """x[:, t - lag] with zeros before the first frame: (B, T, C) -> (B, T, C); a lag >= T gives zeros.

    A slice, then a zero pad: the gradient of each is the other, where a strided slice's gradient would
    be a slow scatter into a zero tensor. T must be known when the graph is built.
    """
    steps = x.shape[1]
    if lag == 0:
        return x
    if lag >= steps:
        return tf.zeros_like(x)
    return tf.pad(tf.slice(x, [0, 0, 0], [-1, steps - lag, -1]), [[0, 0], [lag, 0], [0, 0]])


def shift_left(x, lag: int):
    """x[:, t + lag] with zeros after the last frame, the adjoint of ``shift_right``: (B, T, C) -> (B, T, C)."""
    steps = x.shape[1]
    if lag == 0:
        return x
    if lag >= steps:
        return tf.zeros_like(x)
    return tf.pad(tf.slice(x, [0, lag, 0], [-1, steps - lag, -1]), [[0, 0], [0, lag], [0, 0]])


def tap_lags(kernel_size: int, dilation: int) -> list[int]:
    """Tap j of a causal convolution reads x[t - (k-1-j) d] (Keras' kernel layout); the last tap reads x[t]."""
    return [(kernel_size - 1 - j) * dilation for j in range(kernel_size)]


def channel_product(x: tf.Tensor, w: tf.Tensor, bias: Optional[tf.Tensor] = None, relu: bool = False,
                    transpose_b: bool = False) -> tf.Tensor:
    """relu?((B, T, K) @ (K, N) + bias) -> (B, T, N) as one 2-D product over the B*T rows.

    The product Keras' ``ops.matmul`` computes for these shapes (``tf.tensordot``: the same reshape and MatMul),
    without tensordot's shape arithmetic, some two dozen graph nodes per product that every trace and exporter
    handles. Bias and ReLU are applied before the reshape back to 3-D, so that TensorFlow fuses them into the
    product (one oneDNN kernel instead of three passes).
    """
    out = w.shape[0] if transpose_b else w.shape[1]
    flat = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), w, transpose_b=transpose_b)  # (B*T, N)
    if bias is not None:
        flat = tf.nn.bias_add(flat, bias)
    if relu:
        flat = tf.nn.relu(flat)
    steps = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]  # unknown only for a kernel of one tap
    return tf.reshape(flat, [-1, steps, out])


def column_sum(x: tf.Tensor) -> tf.Tensor:
    """Sum over batch and time: (B, T, C) -> (C,).

    A reduction kernel, not a product with a row of ones: that one is faster on CPU but sums 12 032
    rows in float32 with enough rounding to double BatchNorm's gradient error.
    """
    return tf.reduce_sum(x, axis=[0, 1])


class SingleBatch:
    """How ``causal_conv`` and training_kernels' passes address one fold's batch: activations (B, T, C), kernels
    (k, C, F), channel vectors (C,).

    stacked_training.MemberBatches addresses M members' batches the same way, so that one derivation
    (``causal_conv`` below, training_kernels' forward and backward passes) serves both training paths.
    """

    @staticmethod
    def products(x, w, bias=None, relu: bool = False, transpose_b: bool = False):
        """relu?(x @ w + bias) over every row: (B, T, K) @ (K, N) -> (B, T, N)."""
        return channel_product(x, w, bias, relu, transpose_b)

    @staticmethod
    def weight_products(a, b):
        """a^T b summed over batch and time: (B, T, K), (B, T, N) -> (K, N), a kernel's gradient."""
        return tf.matmul(tf.reshape(a, [-1, a.shape[-1]]), tf.reshape(b, [-1, b.shape[-1]]), transpose_a=True)

    @staticmethod
    def shift(x, lag: int, direction):
        """``direction`` (shift_right or shift_left) by ``lag`` steps on the time axis."""
        return direction(x, lag)

    total = staticmethod(column_sum)  # (B, T, C) -> (C,)

    @staticmethod
    def channels(v):
        """A channel vector, ready to broadcast over the activations: (C,) already is."""
        return v


def kernel_tap(kernel, j: int):
    """Tap j, (C, F), of a causal convolution's kernel (k, C, F), or every member's, (M, C, F), of (M, k, C, F)."""
    return kernel[..., j, :, :]


def causal_conv(x: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor], lags: list[int],
                batch=SingleBatch) -> tf.Tensor:
    """b + sum_j shift_right(x, lags[j]) @ kernel[j]: (B, T, C), (k, C, F), (F,) or None -> (B, T, F); with
    ``batch=stacked_training.MemberBatches`` the same for each of M members: (M, B, T, C), (M, k, C, F), (M, F)."""
    y = batch.products(x, kernel_tap(kernel, len(lags) - 1))  # the tap at lag 0
    for j, lag in enumerate(lags[:-1]):
        y = y + batch.products(batch.shift(x, lag, shift_right), kernel_tap(kernel, j))
    return y if bias is None else y + batch.channels(bias)


@keras.saving.register_keras_serializable(package="ser")
class CausalConv1D(keras.layers.Layer):
    """Causal dilated convolution, numerically the same function as Keras' causal ``Conv1D``.

    Args:
        filters: output channels.
        kernel_size: taps of the filter (>= 1).
        dilation_rate: spacing between taps in frames (>= 1).
        use_bias: add a bias vector (initialised to zeros).
        kernel_initializer: initializer of the (kernel_size, C_in, filters) kernel.
    """

    def __init__(self, filters: int, kernel_size: int = 2, dilation_rate: int = 1, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("filters", filters), ("kernel_size", kernel_size), ("dilation_rate", dilation_rate)):
            check_positive_int("CausalConv1D", arg, value)
        self.filters = filters
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, channels, self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)

    def call(self, x):  # (B, T, C_in) -> (B, T, filters)
        return causal_conv(x, self.kernel, self.bias, tap_lags(self.kernel_size, self.dilation_rate))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate, "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
