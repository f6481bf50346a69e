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
layers, and one Adam step with the authors' original graph. TensorFlow operations; where switched on (fused_ops,
for one fold's batch), the element-wise work of a temporal-aware block and of a gated unit runs in the fused ops of
fused_tail.cc instead, with the same mathematics in fewer passes over memory. There a temporal-aware block's
convolutions run inside the fused BatchNorm ops too: the forward op computes z from x and the taps' kernels (C, k F),
the backward op the input and kernel gradients from dz, utterance by utterance, so no product, shifted copy of x or dz
is written to memory; the block's sigmoid gate runs inside its second BatchNorm op, and the backward ops recompute
what they need from the conv output z rather than read stored activations. A gated unit's value and gate
convolutions run inside its two fused ops the same way, as one convolution of 2 n F outputs (``_fused_gated_unit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import tensorflow as tf

from . import fused_ops
from .causal_conv import SingleBatch, causal_conv, kernel_tap, shift_left, shift_right, tap_lags


class _BatchNormReLU:
    """Conv -> BatchNorm (batch statistics) -> ReLU -> SpatialDropout, forward and backward.

    Forward, for the conv output z = sum_j shift(x, lag_j) @ W_j (its bias cancels in the normalisation
    and only moves the batch mean that the moving average records; with the fused ops, the forward op computes z
    from x and [W_0 .. W_{k-1}] itself and writes no product):
        d = z - mean(z),  inv = 1 / sqrt(mean(d^2) + eps),  y = relu(d * gamma * inv + beta) * mask
    With row weights w (M, B, 1, 1) (stacked members: 1 on a member's row, 0 on padding) z becomes z w and
    d = (z - mean(z)) w, the means taken over the member's ``count`` frames: padding rows have d = 0, so they add
    nothing to the variance nor to d gamma, their gradient arrives as 0 (they reach no loss), and dz stays 0 there.
    """

    def __init__(self, x, kernel, gamma, beta, mask, lags, epsilon, batch=SingleBatch, rows=None, count=None,
                 gate_input=None):
        self.kernel, self.gamma, self.lags, self.batch, self.rows = kernel, gamma, lags, batch, rows
        self.fused = _fused_library(x, batch, rows)
        if self.fused is not None:  # the taps' shifts and sum inside the op, statistics and output in 2 passes
            self.x, self.wide = x, _wide_kernel(kernel)  # x kept for the weight gradient
            self.beta, self.mask = beta, tf.zeros([0], x.dtype) if mask is None else mask
            # z, not d: the backward op recomputes d and the ReLU's condition from z (fused_tail.cc)
            inputs = (x, self.wide, gamma, beta, self.mask, tf.constant(epsilon, x.dtype))  # the op convolves
            if gate_input is None:  # x (B, T, C) -> (B, T, F)
                self.mean, self.z, self.variance, self.inv, self.y = self.fused.fused_bn_relu_forward(
                    *inputs, lags=list(lags))
            else:  # out = gate_input sigmoid(y) and the gate in the last pass; y itself is never written
                (self.mean, self.z, self.variance, self.inv, self.out, self.gate,
                 self.time_mean) = self.fused.fused_bn_relu_gate(*inputs, gate_input, lags=list(lags))
            return
        self.taps = [batch.shift(x, lag, shift_right) for lag in lags]  # (B, T, C) each, kept for the weight gradient
        z = tf.add_n([batch.products(t, kernel_tap(kernel, j)) for j, t in enumerate(self.taps)])  # (B, T, F), no bias
        if rows is not None:
            z = z * rows
        self.count = count if count is not None else tf.cast(tf.shape(x)[0] * x.shape[1], x.dtype)  # M = B T
        self.mean = batch.total(z) / self.count  # (F,)
        mean = batch.channels(self.mean)
        self.d = z - (mean if rows is None else rows * mean)  # (B, T, F) centred conv output, 0 on padding rows
        self.variance = batch.total(self.d * self.d) / self.count  # (F,) biased, as Keras' BatchNormalization
        self.inv = tf.math.rsqrt(self.variance + epsilon)
        scale, offset = batch.channels(gamma * self.inv), batch.channels(beta)
        if mask is not None:  # (B, 1, F) of 0 or 1/(1-rate): relu(u) * m = relu(u * m) for m >= 0
            scale, offset = scale * mask, offset * mask
        self.y = tf.nn.relu(self.d * scale + offset)

    def backward(self, dy, keep_scale: float):
        """(dx, d kernel, d bias, d gamma, d beta) from dy = d loss / d y."""
        batch = self.batch
        if self.fused is not None:  # in 2 passes: dgamma, dbeta; then dz, utterance by utterance, and from it
            # dbias, d x[t] = sum_j dz[t + lag_j] W_j^T and d W_j = sum_t x[t - lag_j]^T dz[t] (dz is never written)
            dx, dwide, dgamma, dbeta, dbias = self.fused.fused_bn_relu_backward(
                dy, self.z, self.mean, self.gamma, self.beta, self.inv, self.mask, tf.constant(keep_scale, dy.dtype),
                self.x, self.wide, lags=list(self.lags))
            return dx, _from_wide(dwide, self.kernel.shape), dbias, dgamma, dbeta  # (C, k F) -> (k, C, F)
        r = tf.raw_ops.ReluGrad(gradients=dy, features=self.y)  # zero wherever the mask dropped a channel
        # d loss / d (BN output) = r * mask = r * keep_scale, because r = 0 where mask = 0
        dbeta = batch.total(r) * keep_scale
        dgamma = batch.total(r * self.d) * (keep_scale * self.inv)
        scale = self.gamma * self.inv
        # dz = gamma inv (r keep - dbeta / M - xhat dgamma / M),  xhat = d inv
        constant = batch.channels(scale * dbeta / self.count)
        dz = (r * batch.channels(scale * keep_scale) - self.d * batch.channels(scale * self.inv * dgamma / self.count)
              - (constant if self.rows is None else self.rows * constant))
        dbias = batch.total(dz)  # ~0: BatchNorm removes any constant; kept as computed, like autodiff
        dkernel = tf.stack([batch.weight_products(t, dz) for t in self.taps], axis=-3)  # (k, C, F)
        kernels = [kernel_tap(self.kernel, j) for j in range(len(self.lags))]
        return _input_gradient(batch, dz, kernels, self.lags), dkernel, dbias, dgamma, dbeta


def _wide_kernel(kernel):
    """(k, C, F) -> (C, k F), tap j in columns j F .. j F + F - 1: the taps side by side, as the fused ops take them."""
    k, channels, features = kernel.shape
    return tf.reshape(tf.transpose(kernel, [1, 0, 2]), [channels, k * features])


def _from_wide(wide, kernel_shape):
    """(C, k F) -> (k, C, F) of ``kernel_shape``: ``_wide_kernel``'s inverse, for the kernel's gradient."""
    k, channels, features = kernel_shape
    return tf.transpose(tf.reshape(wide, [channels, k, features]), [1, 0, 2])


def _fused_library(x, batch, rows):
    """The fused ops (nn/fused_ops.py) where they serve this unit: switched on, one fold's batch, float32/64."""
    if fused_ops.active() and batch is SingleBatch and rows is None and x.dtype in (tf.float32, tf.float64):
        return fused_ops.library()
    return None


def _input_gradient(batch, dz, kernels, lags: Sequence[int]):
    """d loss / d x of z = sum_j shift_right(x, lags[j]) @ kernels[j]: sum_j shift_left(dz @ kernels[j]^T, lags[j])."""
    total = None
    for kernel, lag in zip(kernels, lags):
        if lag >= dz.shape[-2]:
            continue  # the tap only ever saw zeros
        part = batch.shift(batch.products(dz, kernel, transpose_b=True), lag, shift_left)
        total = part if total is None else total + part
    return total


def temporal_aware_block(x, kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2,
                         mask1: Optional[tf.Tensor], mask2: Optional[tf.Tensor], dilation: int,
                         keep_scale: float, epsilon: float, batch=SingleBatch, rows=None, count=None,
                         time_mean: bool = False):
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
        batch: how the tensors are laid out: ``SingleBatch`` (one fold), or stacked_training.MemberBatches, with
            every shape above led by the member axis M.
        rows: with MemberBatches, (M, B, 1, 1) row weights, 1 for a member's row, 0 for padding; else None.
        count: with ``rows``, (M, 1) frames of each member's batch (its rows times T).
        time_mean: also return out's mean over time (B, C), one fold's batch only (TIM-Net's scale at this
            block's level, TIMNET.call): its gradient joins out's inside the gate's backward pass, where a mean
            taken outside would send back a (B, T, C) broadcast and a sum with out's gradient.

    Returns:
        out (B, T, C), with ``time_mean`` then its mean over time (B, C), and the batch statistics (mean1, var1,
        mean2, var2) of the two conv outputs, bias included, for the moving averages. Gradients flow to every
        argument but the masks.
    """
    lags = tap_lags(kernel1.shape[-3], dilation)
    masks = (mask1, mask2)
    return gated_pair(x, (kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2),
                      lambda inputs, kernel, gamma, beta, i, gate_input=None: _BatchNormReLU(
                          inputs, kernel, gamma, beta, masks[i], lags, epsilon, batch, rows, count, gate_input),
                      keep_scale, time_mean)


def batch_norm_affine(gamma, beta, mean, variance, epsilon: float) -> tuple:
    """BatchNorm in inference as z * scale + offset: scale = gamma / sqrt(moving variance + epsilon) and offset =
    beta - moving mean * scale, as tf.nn.batch_normalization computes them; (C,) each, or any shape alike."""
    scale = tf.math.rsqrt(variance + epsilon) * gamma
    return scale, beta - mean * scale


def temporal_aware_inference(x, kernel1, bias1, kernel2, bias2, statistics, epsilon: float, dilation: int):
    """One TIM-Net temporal-aware block in inference (paper §2.2), in one fused op (fused_tail.cc), or None where the
    fused ops do not serve (switched off, not built, not float32/64): the block's Keras layers compute it then.

    out = x * sigmoid(relu(BN2(conv2(a)))),  a = relu(BN1(conv1(x))),  each BN(z) = z * scale + offset with
    scale = gamma / sqrt(moving variance + epsilon) and offset = beta - moving mean * scale, as
    tf.nn.batch_normalization computes them (Keras' BatchNormalization in inference).

    Args:
        x: (B, T, C) block input.
        kernel1, kernel2: (k, C, C) causal conv kernels (Keras Conv1D layout); bias1, bias2: (C,).
        statistics: ((gamma1, beta1, moving_mean1, moving_variance1), (the same of the second BatchNorm)), (C,) each.
        epsilon: BatchNorm's epsilon.
        dilation: the convolutions' dilation.

    Returns:
        (B, T, C), or None. A gradient asked of it (a saliency map, say) flows to every argument: the op has none of
        its own, so the backward pass computes the block again in TensorFlow operations and differentiates those.
    """
    fused = _fused_library(x, SingleBatch, None)
    if fused is None:
        return None
    affine = [part for bn in statistics for part in batch_norm_affine(*bn, epsilon)]  # scale1, offset1, scale2, ...
    lags = tap_lags(kernel1.shape[-3], dilation)

    @tf.custom_gradient
    def block(*inputs):  # x, kernel1, bias1, scale1, offset1, kernel2, bias2, scale2, offset2
        x, kernel1, bias1, scale1, offset1, kernel2, bias2, scale2, offset2 = inputs
        out = fused.fused_temporal_aware_inference(x, _wide_kernel(kernel1), bias1, scale1, offset1,
                                                   _wide_kernel(kernel2), bias2, scale2, offset2, lags=list(lags))

        def backward(dout):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                again = _inference_in_tensorflow_ops(inputs, lags)
            return tape.gradient(again, inputs, output_gradients=dout)

        return out, backward

    # variables enter as their values, so the gradients reach them through the tape's read operations
    return block(*[tf.convert_to_tensor(p) for p in (x, kernel1, bias1, *affine[:2], kernel2, bias2, *affine[2:])])


def _inference_in_tensorflow_ops(inputs, lags: Sequence[int]):
    """FusedTemporalAwareInference's mathematics in TensorFlow operations, for its gradient: (B, T, C)."""
    x, kernel1, bias1, scale1, offset1, kernel2, bias2, scale2, offset2 = inputs

    def conv_bn_relu(h, kernel, bias, scale, offset):  # relu(BN(causal conv(h))), BN folded into scale and offset
        return tf.nn.relu(causal_conv(h, kernel, bias, lags) * scale + offset)

    a = conv_bn_relu(x, kernel1, bias1, scale1, offset1)
    return x * tf.sigmoid(conv_bn_relu(a, kernel2, bias2, scale2, offset2))


def gated_pair(x, params, unit, keep_scale: float, time_mean: bool = False):
    """out = x * sigmoid(b), a = unit 0 on x, b = unit 1 on a: a temporal-aware block's structure with its
    backward pass, around its two BatchNorm-ReLU units (``_BatchNormReLU`` on either layout of the batch).

    Args:
        x: the block's input.
        params: (kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2), tensors or variables.
        unit: (input, kernel, gamma, beta, i, gate_input=None) -> a unit with ``y``, ``mean``, ``variance``,
            ``backward`` and ``fused`` (the fused ops' library where they compute it, else None); where ``fused``
            is set and ``gate_input`` given, ``out`` = gate_input * sigmoid(y), ``gate`` and ``time_mean`` (out's
            mean over time) instead of ``y``.
        keep_scale: 1 / (1 - dropout rate).
        time_mean: also return out's mean over time (``temporal_aware_block``).

    Returns:
        out, with ``time_mean`` its mean over time, and the batch statistics (mean1, var1, mean2, var2) of the two
        conv outputs, bias included.
    """
    @tf.custom_gradient
    def block(x, kernel1, bias1, gamma1, beta1, kernel2, bias2, gamma2, beta2):
        first = unit(x, kernel1, gamma1, beta1, 0)  # a = first.y
        second = unit(first.y, kernel2, gamma2, beta2, 1, gate_input=x)
        fused = second.fused
        if fused is not None:  # the gate inside the second unit's last pass; backward in one pass (fused_tail.cc)
            out, gate, mean = second.out, second.gate, second.time_mean
        else:
            gate = tf.sigmoid(second.y)
            out = x * gate
            mean = tf.reduce_mean(out, axis=-2) if time_mean else None
        stats = (first.mean + bias1, first.variance, second.mean + bias2, second.variance)

        def backward(dout, *gradients):  # with time_mean, the mean's gradient first; the statistics' are unused
            dmean = gradients[0] if time_mean else None
            if dout is None:  # out itself reaches no loss (TIM-Net's last block: only its mean does)
                dout = tf.zeros_like(out)
            if fused is not None:  # dout + dmean / T inside the pass
                empty = tf.zeros([0], dout.dtype)
                dgate_in, dx_gate = fused.fused_sigmoid_gate_grad(dout, x, gate, empty if dmean is None else dmean)
            else:
                if dmean is not None:
                    dout = dout + tf.expand_dims(dmean, -2) / tf.cast(tf.shape(out)[-2], dout.dtype)
                dgate_in, dx_gate = tf.raw_ops.SigmoidGrad(y=gate, dy=dout * x), dout * gate
            da, dk2, db2, dg2, dbe2 = second.backward(dgate_in, keep_scale)
            dx, dk1, db1, dg1, dbe1 = first.backward(da, keep_scale)
            return dx_gate + dx, dk1, db1, dg1, dbe1, dk2, db2, dg2, dbe2

        means = [mean] if time_mean else []
        return (out, *means, *[tf.stop_gradient(s) for s in stats]), backward

    # variables enter as their values, so the gradients reach them through the tape's read operations
    out, *rest = block(x, *[tf.convert_to_tensor(p) for p in params])
    return (out, rest[0], rest[1:]) if time_mean else (out, rest)


def gated_unit(x, value_kernel, value_bias, gate_kernel, gate_bias, dilation: int, branches: int,
               batch=SingleBatch, training: bool = True):
    """One GM-TCNet gated unit (paper §3, SPEC §3 one level), with its backward pass.

    out = (1/n) sum_b relu(value_b(x)) * sigmoid(relu(gate_b(x))) over n = ``branches`` causal convs.

    Args:
        x: (B, T, C).
        value_kernel, gate_kernel: (k*C, n*F): the n convolutions' (k, C, F) kernels, each reshaped to
            (k*C, F) (row j*C + c multiplies channel c of tap j) and placed side by side.
        value_bias, gate_bias: (n*F,).
        dilation: the convolutions' dilation.
        branches: n.
        batch: ``SingleBatch``, or stacked_training.MemberBatches with every shape led by the member axis M
            (no statistic here, so a stack's padding rows need no weights: their gradient arrives as 0).
        training: False in inference: the fused op then keeps none of the activations a gradient needs (a gradient
            asked for there, a saliency map say, computes them again first); the function is the same.

    Returns:
        (B, T, F).
    """
    lags = tap_lags(value_kernel.shape[-2] // x.shape[-1], dilation)
    fused = _fused_library(x, batch, None)
    if fused is None:
        unit = _gated_unit(batch, lags, branches)
    else:
        unit = _fused_gated_unit(fused, lags, branches, training)
    return unit(x, *[tf.convert_to_tensor(p) for p in (value_kernel, value_bias, gate_kernel, gate_bias)])


def _gated_unit(batch, lags: Sequence[int], branches: int):
    """``gated_unit`` in TensorFlow operations, for either layout of the batch: the taps side by side (B, T, k*C), times
    the value and the gate kernels; the reference of the fused ops and their fallback."""

    @tf.custom_gradient
    def unit(x, value_kernel, value_bias, gate_kernel, gate_bias):
        channels, steps = x.shape[-1], x.shape[-2]
        features = value_bias.shape[-1] // branches
        lead = list(x.shape[:-3])  # [] for one batch, [M] for members
        stacked = tf.concat([batch.shift(x, lag, shift_right) for lag in lags], axis=-1)  # (B, T, k*C)
        values = batch.products(stacked, value_kernel, value_bias, relu=True)  # (B, T, n*F)
        gate_inputs = batch.products(stacked, gate_kernel, gate_bias, relu=True)  # (B, T, n*F)
        gates = tf.sigmoid(gate_inputs)
        branched = tf.reshape(values * gates, lead + [-1, steps, branches, features])  # (B, T, n, F)
        out = tf.reduce_sum(branched, axis=-2) * (1.0 / branches)  # (B, T, F)

        def backward(dout):
            dbranch = tf.tile(dout * (1.0 / branches), [1] * (dout.shape.rank - 1) + [branches])  # (B, T, n*F)
            dvalues = tf.raw_ops.ReluGrad(gradients=dbranch * gates, features=values)
            dgates = tf.raw_ops.ReluGrad(gradients=tf.raw_ops.SigmoidGrad(y=gates, dy=dbranch * values),
                                         features=gate_inputs)
            dx = None
            for j, lag in enumerate(lags):
                if lag >= steps:
                    continue  # the tap only ever saw zeros
                rows = slice(j * channels, (j + 1) * channels)  # tap j's rows of both kernels
                part = batch.shift(batch.products(dvalues, value_kernel[..., rows, :], transpose_b=True)
                                   + batch.products(dgates, gate_kernel[..., rows, :], transpose_b=True), lag,
                                   shift_left)
                dx = part if dx is None else dx + part
            return (dx, batch.weight_products(stacked, dvalues), batch.total(dvalues),
                    batch.weight_products(stacked, dgates), batch.total(dgates))

        return out, backward

    return unit


def _fused_gated_unit(fused, lags: Sequence[int], branches: int, training: bool):
    """``gated_unit`` of one fold's batch in the fused ops (fused_tail.cc): the value and gate convolutions as one
    causal convolution of W = 2 n F outputs, computed with the biases, ReLUs, gates and the branches' mean in one op;
    backward, from dout and the op's (B, T, W) activations, the input, kernel and bias gradients in another. No
    product, shifted copy of x or gradient of the W outputs is written to memory. In inference the first op keeps
    no activations (they never leave the cache); a gradient asked for there runs it again to get them."""

    @tf.custom_gradient
    def unit(x, value_kernel, value_bias, gate_kernel, gate_bias):
        half = value_kernel.shape[-1]
        shape = (len(lags), x.shape[-1], 2 * half)  # the joint convolution's (k, C, W) kernel
        wide = _wide_kernel(tf.reshape(tf.concat([value_kernel, gate_kernel], axis=-1), shape))  # (C, k W)
        bias = tf.concat([value_bias, gate_bias], axis=0)

        def forward(keep: bool):  # (out, the activations where ``keep``, else an empty tensor)
            return fused.fused_gated_unit(x, wide, bias, lags=list(lags), branches=branches, training=keep)

        out, activations = forward(training)

        def backward(dout):
            kept = activations if training else forward(True)[1]
            dx, dwide, dbias = fused.fused_gated_unit_grad(dout, kept, x, wide, lags=list(lags), branches=branches)
            dkernel = tf.reshape(_from_wide(dwide, shape), [-1, 2 * half])  # (k*C, W), as the kernels' rows
            return dx, dkernel[:, :half], dbias[:half], dkernel[:, half:], dbias[half:]

        return out, backward

    return unit
