"""The training hot spots of both networks as forward passes with hand-written backward passes.

Keras' automatic differentiation of a temporal-aware block (TIM-Net) or a gated unit (GM-TCNet)
turns every small operation into one or two passes over a (B, T, 39) tensor: on a CPU the epoch
time is spent in memory traffic between those passes, not in the matrix products. Here each unit's
forward pass keeps exactly the tensors its backward pass needs, and the backward pass is the
textbook derivation written out with as few passes as the algebra allows:

- causal dilated convolution = one matrix product per tap on the input shifted in time
  (``shift_right``: slice, then zero-pad; never strided slicing, whose gradient is a slow scatter);
- BatchNorm (training mode) in its centred form d = z - mean(z), from which the backward pass
  gets the normalised values without keeping them;
- SpatialDropout's mask takes the values 0 or 1/(1-rate) only, and the ReLU after it is zero
  wherever the mask is: in the backward pass the mask is the scalar 1/(1-rate).

The functions compute the same mathematics as the Keras layers they serve (TIMNET.py, GTCM.py); the
tests compare outputs, gradients and BatchNorm statistics with automatic differentiation of the plain
layers, and one Adam step with the authors' original graph. TensorFlow only; float32.
"""

from __future__ import annotations

from typing import Optional, Sequence

import tensorflow as tf

from .causal_conv import shift_left, shift_right


def column_sum(x: tf.Tensor) -> tf.Tensor:
    """Sum over batch and time: (B, T, C) -> (C,).

    A reduction kernel, not a product with a row of ones: that one is faster on CPU but sums 12 032
    rows in float32 with enough rounding to double BatchNorm's gradient error.
    """
    return tf.reduce_sum(x, axis=[0, 1])


def _matmul(x: tf.Tensor, w: tf.Tensor, bias: Optional[tf.Tensor] = None, relu: bool = False,
            transpose_b: bool = False) -> tf.Tensor:
    """relu?((B, T, K) @ (K, N) + bias) -> (B, T, N) as one 2-D product.

    Bias and ReLU are applied before the reshape back to 3-D, so that TensorFlow fuses them into the
    product (one oneDNN kernel instead of three passes).
    """
    out = w.shape[0] if transpose_b else w.shape[1]
    flat = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), w, transpose_b=transpose_b)  # (M, N)
    if bias is not None:
        flat = tf.nn.bias_add(flat, bias)
    if relu:
        flat = tf.nn.relu(flat)
    return tf.reshape(flat, [-1, x.shape[1], out])


def tap_lags(kernel_size: int, dilation: int) -> list[int]:
    """Tap j of a causal convolution reads x[t - (k-1-j) d] (Keras' kernel layout); the last tap reads x[t]."""
    return [(kernel_size - 1 - j) * dilation for j in range(kernel_size)]


def _weight_gradient(taps: Sequence[tf.Tensor], dz: tf.Tensor) -> tf.Tensor:
    """d loss / d kernel (k, C, F) of z = sum_j taps[j] @ kernel[j]."""
    return tf.stack([tf.matmul(tf.reshape(t, [-1, t.shape[-1]]), tf.reshape(dz, [-1, dz.shape[-1]]),
                               transpose_a=True) for t in taps])


def _input_gradient(dz: tf.Tensor, kernel: tf.Tensor, lags: Sequence[int]) -> tf.Tensor:
    """d loss / d x of z = sum_j shift_right(x, lags[j]) @ kernel[j]: sum_j shift_left(dz @ kernel[j]^T, lags[j])."""
    total = None
    for j, lag in enumerate(lags):
        if lag >= dz.shape[1]:
            continue  # the tap only ever saw zeros
        part = shift_left(_matmul(dz, kernel[j], transpose_b=True), lag)
        total = part if total is None else total + part
    return total


class _BatchNormReLU:
    """Conv -> BatchNorm (batch statistics) -> ReLU -> SpatialDropout, forward and backward.

    Forward, for the conv output z = sum_j shift(x, lag_j) @ W_j (its bias cancels in the normalisation
    and only moves the batch mean that the moving average records):
        d = z - mean(z),  inv = 1 / sqrt(mean(d^2) + eps),  y = relu(d * gamma * inv + beta) * mask
    """

    def __init__(self, x, kernel, gamma, beta, mask, lags, epsilon):
        self.kernel, self.gamma, self.lags = kernel, gamma, lags
        self.taps = [shift_right(x, lag) for lag in lags]  # (B, T, C) each, kept for the weight gradient
        self.count = count = tf.cast(tf.shape(x)[0] * x.shape[1], x.dtype)  # M = B T
        z = tf.add_n([_matmul(t, kernel[j]) for j, t in enumerate(self.taps)])  # (B, T, F) without its bias
        self.mean = column_sum(z) / count  # (F,)
        self.d = z - self.mean  # (B, T, F) centred conv output
        self.variance = column_sum(self.d * self.d) / count  # (F,) biased, as Keras' BatchNormalization
        self.inv = tf.math.rsqrt(self.variance + epsilon)
        scale, offset = gamma * self.inv, beta
        if mask is not None:  # (B, 1, F) of 0 or 1/(1-rate): relu(u) * m = relu(u * m) for m >= 0
            scale, offset = scale * mask, offset * mask
        self.y = tf.nn.relu(self.d * scale + offset)

    def backward(self, dy, keep_scale: float):
        """(dx, d kernel, d bias, d gamma, d beta) from dy = d loss / d y."""
        r = tf.raw_ops.ReluGrad(gradients=dy, features=self.y)  # zero wherever the mask dropped a channel
        # d loss / d (BN output) = r * mask = r * keep_scale, because r = 0 where mask = 0
        dbeta = column_sum(r) * keep_scale
        dgamma = column_sum(r * self.d) * (keep_scale * self.inv)
        scale = self.gamma * self.inv
        # dz = gamma inv (r keep - dbeta / M - xhat dgamma / M),  xhat = d inv
        dz = (r * (scale * keep_scale) - self.d * (scale * self.inv * dgamma / self.count)
              - scale * dbeta / self.count)
        dkernel = _weight_gradient(self.taps, dz)
        dbias = column_sum(dz)  # ~0: BatchNorm removes any constant; kept as computed, like autodiff
        return _input_gradient(dz, self.kernel, self.lags), dkernel, dbias, dgamma, dbeta


def temporal_aware_block(x, kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2,
                         mask1: Optional[tf.Tensor], mask2: Optional[tf.Tensor], dilation: int,
                         keep_scale: float, epsilon: float):
    """One TIM-Net temporal-aware block in training mode (paper §2.2, SPEC §2), with its backward pass.

    a = drop(relu(BN(conv1(x)))),  b = drop(relu(BN(conv2(a)))),  out = x * sigmoid(b)

    Args:
        x: (B, T, C) block input.
        kernel1, kernel2: (k, C, C) causal conv kernels (Keras Conv1D layout); bias1, bias2: (C,).
        gamma1, beta1, gamma2, beta2: (C,) BatchNorm scale and offset.
        mask1, mask2: (B, 1, C) SpatialDropout masks with values 0 or keep_scale, or None without dropout.
        dilation: the convolutions' dilation.
        keep_scale: 1 / (1 - dropout rate).
        epsilon: BatchNorm's epsilon.

    Returns:
        out (B, T, C) and the batch statistics (mean1, var1, mean2, var2) of the two conv outputs, bias
        included, for the moving averages. Gradients flow to every argument but the masks.
    """
    lags = tap_lags(kernel1.shape[0], dilation)
    masks = (mask1, mask2)
    return gated_pair(x, (kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2),
                      lambda inputs, kernel, gamma, beta, i: _BatchNormReLU(inputs, kernel, gamma, beta, masks[i], lags,
                                                                            epsilon), keep_scale)


def gated_pair(x, params, unit, keep_scale: float):
    """out = x * sigmoid(b), a = unit 0 on x, b = unit 1 on a: a temporal-aware block's structure with its
    backward pass, whatever its BatchNorm-ReLU units are (one fold's ``_BatchNormReLU``, or stacked_training's
    masked units for many members).

    Args:
        x: the block's input.
        params: (kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2), tensors or variables.
        unit: (input, kernel, gamma, beta, i) -> a unit with ``y``, ``mean``, ``variance`` and ``backward``.
        keep_scale: 1 / (1 - dropout rate).

    Returns:
        out and the batch statistics (mean1, var1, mean2, var2) of the two conv outputs, bias included.
    """
    @tf.custom_gradient
    def block(x, kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2):
        first = unit(x, kernel1, gamma1, beta1, 0)  # a = first.y
        second = unit(first.y, kernel2, gamma2, beta2, 1)
        gate = tf.sigmoid(second.y)
        out = x * gate
        stats = (first.mean + bias1, first.variance, second.mean + bias2, second.variance)

        def backward(dout, *unused_stat_gradients):
            dgate_in = tf.raw_ops.SigmoidGrad(y=gate, dy=dout * x)
            da, dk2, db2, dg2, dbe2 = second.backward(dgate_in, keep_scale)
            dx, dk1, db1, dg1, dbe1 = first.backward(da, keep_scale)
            return dout * gate + dx, dk1, db1, dg1, dbe1, dk2, db2, dg2, dbe2

        return (out, *[tf.stop_gradient(s) for s in stats]), backward

    # variables enter as their values, so the gradients reach them through the tape's read operations
    out, *stats = block(x, *[tf.convert_to_tensor(p) for p in params])
    return out, stats


def gated_unit(x, value_kernel, value_bias, gate_kernel, gate_bias, dilation: int, branches: int):
    """One GM-TCNet gated unit (paper §3, SPEC §3 one level), with its backward pass.

    out = (1/n) sum_b relu(value_b(x)) * sigmoid(relu(gate_b(x))) over n = ``branches`` causal convs.

    Args:
        x: (B, T, C).
        value_kernel, gate_kernel: (k*C, n*F): the n convolutions' (k, C, F) kernels, each reshaped to
            (k*C, F) (row j*C + c multiplies channel c of tap j) and placed side by side.
        value_bias, gate_bias: (n*F,).
        dilation: the convolutions' dilation.
        branches: n.

    Returns:
        (B, T, F).
    """
    channels = x.shape[-1]
    features = value_bias.shape[0] // branches
    lags = tap_lags(value_kernel.shape[0] // channels, dilation)

    @tf.custom_gradient
    def unit(x, value_kernel, value_bias, gate_kernel, gate_bias):
        stacked = tf.concat([shift_right(x, lag) for lag in lags], axis=-1)  # (B, T, k*C)
        values = _matmul(stacked, value_kernel, value_bias, relu=True)  # (B, T, n*F)
        gate_inputs = _matmul(stacked, gate_kernel, gate_bias, relu=True)  # (B, T, n*F)
        gates = tf.sigmoid(gate_inputs)
        branched = tf.reshape(values * gates, [-1, x.shape[1], branches, features])  # (B, T, n, F)
        out = tf.reduce_sum(branched, axis=2) * (1.0 / branches)  # (B, T, F)

        def backward(dout):
            dbranch = tf.tile(dout * (1.0 / branches), [1, 1, branches])  # (B, T, n*F)
            dvalues = tf.raw_ops.ReluGrad(gradients=dbranch * gates, features=values)
            dgates = tf.raw_ops.ReluGrad(gradients=tf.raw_ops.SigmoidGrad(y=gates, dy=dbranch * values),
                                         features=gate_inputs)
            flat_stacked = tf.reshape(stacked, [-1, stacked.shape[-1]])
            dvalue_kernel = tf.matmul(flat_stacked, tf.reshape(dvalues, [-1, dvalues.shape[-1]]), transpose_a=True)
            dgate_kernel = tf.matmul(flat_stacked, tf.reshape(dgates, [-1, dgates.shape[-1]]), transpose_a=True)
            dx = None
            for j, lag in enumerate(lags):
                if lag >= x.shape[1]:
                    continue
                rows = slice(j * channels, (j + 1) * channels)
                part = shift_left(_matmul(dvalues, value_kernel[rows], transpose_b=True)
                               + _matmul(dgates, gate_kernel[rows], transpose_b=True), lag)
                dx = part if dx is None else dx + part
            return dx, dvalue_kernel, column_sum(dvalues), dgate_kernel, column_sum(dgates)

        return out, backward

    return unit(x, *[tf.convert_to_tensor(p) for p in (value_kernel, value_bias, gate_kernel, gate_bias)])
