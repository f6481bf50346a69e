"""The fused element-wise ops of TIM-Net's block and GM-TCNet's gated unit (nn/fused_tail.cc) compute what the
pure-TensorFlow path computes, setup.sh's build of them loads, and without them training takes the TensorFlow path."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from timnet_ser.cli import command_line
from timnet_ser.data.corpora import CORPORA
from timnet_ser.engine.run_config import run_config
from timnet_ser.GTCM import GatedUnit
from timnet_ser.nn import fused_ops, training_kernels
from timnet_ser.TIMNET import TemporalAwareBlock

BUILD = os.path.join(ROOT, "Code", "nn", "build_fused_tail.sh")
NATIVE = os.path.dirname(fused_ops.LIBRARY)


def compiler() -> bool:
    return subprocess.run(["sh", "-c", "command -v ${CXX:-c++}"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def built():
    """setup.sh's step: build the library where fused_ops loads it (nothing to do when it is current)."""
    if not compiler():
        pytest.skip("no C++ compiler: setup.sh builds no fused kernels and training uses the TensorFlow path")
    done = subprocess.run(["bash", BUILD, sys.executable, NATIVE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "failed" not in done.stdout, done.stdout + done.stderr
    return fused_ops.library()


def block_results(dtype, fused: bool, dilation: int, masked: bool, batch: int = 4, steps: int = 30,
                  kernel_size: int = 2, time_mean: bool = False):
    """Output, every gradient and the four batch statistics of one temporal-aware block on random data (B, T, 39);
    with ``time_mean``, the output's time mean (after the output) enters the loss too."""
    rng = np.random.default_rng(dilation)
    x = tf.constant(rng.normal(size=(batch, steps, 39)) + 2.0, dtype)  # a mean, as real activations have
    params = [tf.constant(rng.normal(scale=0.3, size=shape), dtype)
              for shape in [(kernel_size, 39, 39), (39,), (39,), (39,)] * 2]
    params[2], params[6] = tf.abs(params[2]) + 0.5, tf.abs(params[6]) + 0.5  # gammas
    masks = [tf.constant((rng.random((batch, 1, 39)) >= 0.25) / 0.75, dtype) if masked else None for _ in range(2)]
    with fused_ops.enabled(fused) as used, tf.GradientTape() as tape:
        assert used == fused
        tape.watch([x, *params])
        out, *rest = training_kernels.temporal_aware_block(x, *params, *masks, dilation=dilation,
                                                           keep_scale=1 / 0.75 if masked else 1.0, epsilon=1e-3,
                                                           time_mean=time_mean)
        loss = tf.reduce_sum(out * tf.cos(2.0 * out))
        if time_mean:
            loss += tf.reduce_sum(rest[0] * tf.sin(3.0 * rest[0])) * 10.0
    return [out, *rest[:-1]] + tape.gradient(loss, [x, *params]) + list(rest[-1])


NAMES = ["output", "d x"] + [f"d {n}" for n in "kernel1 bias1 gamma1 beta1 kernel2 bias2 gamma2 beta2".split()] + [
    "mean1", "variance1", "mean2", "variance2"]


@pytest.mark.parametrize("dtype, tolerance", [(tf.float64, 1e-10), (tf.float32, 1e-5)])
@pytest.mark.parametrize("kernel_size, dilation, masked, time_mean",
                         [(2, 1, True, True), (2, 4, False, False), (2, 29, True, True), (2, 64, True, False),
                          (3, 2, False, True), (3, 12, True, False), (3, 20, True, True)])
def test_fused_block_equals_the_tensorflow_path(built, dtype, tolerance, kernel_size, dilation, masked, time_mean):
    """float64: equal to 1e-10 of each value's scale; float32: to float rounding (the sums round differently).
    T = 30: lag 29 leaves a tap one step, lags 64 and 40 (3 taps, dilation 20) taps that only see zeros. With
    ``time_mean`` the output's time mean is compared too, and its gradient enters every other one."""
    fused, plain = (block_results(dtype, use, dilation, masked, kernel_size=kernel_size, time_mean=time_mean)
                    for use in (True, False))
    for a, b, name in zip(fused, plain, NAMES[:1] + ["time mean"] * time_mean + NAMES[1:]):
        a, b = a.numpy().astype("float64"), b.numpy().astype("float64")
        if name.startswith("d bias"):  # exactly 0 in exact arithmetic (BatchNorm removes constants): rounding noise
            assert np.abs(a).max() < (1e-10 if dtype == tf.float64 else 1e-3), name
            continue
        error = np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)
        assert error <= tolerance, f"{name}: {error:.2e}"


def inference_block(kernel_size: int, dilation: int):
    """A temporal-aware block built in the current dtype policy with random weights and moving statistics, and
    its random input (5, 30, 39)."""
    block = TemporalAwareBlock(39, kernel_size, dilation)
    rng = np.random.default_rng(dilation)
    x = tf.constant(rng.normal(size=(5, 30, 39)) + 1.0, keras.config.dtype_policy().compute_dtype)
    block.build(x.shape)
    for variable in block.weights:
        value = rng.normal(scale=0.3, size=variable.shape)
        variable.assign(np.abs(value) + 0.2 if "variance" in variable.path or "gamma" in variable.path else value)
    return block, x


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("kernel_size, dilation", [(2, 1), (2, 29), (2, 64), (3, 12)])
def test_fused_inference_equals_the_blocks_keras_layers(built, dtype, tolerance, kernel_size, dilation):
    """A temporal-aware block in inference (BatchNorm's moving statistics, no dropout) in FusedTemporalAwareInference
    against its Keras sub-layers, with random weights and statistics, over 5 x 30 rows: float64 to 1e-10 of the
    output's scale, float32 to rounding. Lag 29 leaves a tap one step, lags 64 and 24 taps that only see zeros."""
    keras.config.set_dtype_policy(dtype)
    try:
        block, x = inference_block(kernel_size, dilation)
        outputs = {}
        for use in (True, False):
            with fused_ops.enabled(use):
                outputs[use] = block(x, training=False).numpy()
                graph = tf.function(lambda v: block(v, training=False)).get_concrete_function(x).graph
            assert ("FusedTemporalAwareInference" in {op.type for op in graph.get_operations()}) is use
    finally:
        keras.config.set_dtype_policy("float32")
    error = np.abs(outputs[True] - outputs[False]).max() / np.abs(outputs[False]).max()
    assert error <= tolerance, f"{error:.2e}"


@pytest.mark.parametrize("kernel_size, dilation", [(2, 1), (2, 64), (3, 12)])
def test_fused_inference_has_the_keras_layers_gradient(built, kernel_size, dilation):
    """A gradient taken through the block in inference (a saliency map, say), eagerly and in a traced function:
    with the fused op, to the input, the kernels, biases, gammas and betas, equals the Keras layers' in float64 to
    1e-10 of each one's scale (the op has no gradient of its own: the block runs again in TensorFlow operations)."""
    keras.config.set_dtype_policy("float64")
    try:
        block, x = inference_block(kernel_size, dilation)
        sources = [x, *block.trainable_weights]

        def gradients(v):
            with tf.GradientTape() as tape:
                tape.watch(v)
                out = block(v, training=False)
                loss = tf.reduce_sum(out * tf.cos(2.0 * out))
            return tape.gradient(loss, [v, *block.trainable_weights])

        results = {}
        for use in (True, False):
            with fused_ops.enabled(use):
                results[use] = [g.numpy() for g in gradients(x)]
                traced = tf.function(gradients)
                assert ("FusedTemporalAwareInference" in {
                    op.type for op in traced.get_concrete_function(x).graph.get_operations()}) is use
                results[use, "traced"] = [g.numpy() for g in traced(x)]
    finally:
        keras.config.set_dtype_policy("float32")
    names = ["d x"] + [w.path for w in sources[1:]]
    assert len(names) == 9  # x, two kernels and biases, two gammas and betas
    for got in (results[True], results[True, "traced"]):
        for a, b, name in zip(got, results[False], names, strict=True):
            assert np.abs(a - b).max() <= 1e-10 * max(np.abs(b).max(), 1e-300), name


def test_fused_inference_refuses_kernels_that_change_the_channels(built):
    x, vector = tf.ones((2, 8, 3)), tf.ones(3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the kernels must be"):
        built.fused_temporal_aware_inference(x, tf.ones((3, 8)), vector, vector, vector, tf.ones((3, 6)), vector,
                                             vector, vector, lags=[1, 0])


@pytest.mark.parametrize("masked", [True, False])
def test_fused_block_equals_the_tensorflow_path_over_many_blocks(built, masked):
    """float64 at 6 x 77 rows: several of the ops' blocks of rows (the variance merged across them), utterances
    that end inside a tile, and the tiles' sums folded more than once."""
    fused, plain = (block_results(tf.float64, use, 3, masked, batch=6, steps=77) for use in (True, False))
    for a, b, name in zip(fused, plain, NAMES):
        a, b = a.numpy(), b.numpy()
        scale = 1.0 if name.startswith("d bias") else np.abs(b).max()  # d bias: 0 up to rounding
        assert np.abs(a - b).max() <= 1e-10 * scale, name


def test_fused_float32_is_closer_to_float64_than_the_tensorflow_path(built):
    """At an EMODB batch's shape (64, 188, 39): the fused ops round less (their sums are blocked, then in double)."""
    def errors(fused):
        computed = block_results(tf.float32, fused, 4, True, batch=64, steps=188)
        return [np.linalg.norm(a.numpy() - e.numpy()) / np.linalg.norm(e.numpy())
                for a, e, name in zip(computed, exact, NAMES) if not name.startswith("d bias")]
    exact = block_results(tf.float64, False, 4, True, batch=64, steps=188)
    fused, plain = errors(True), errors(False)
    assert max(fused) <= max(plain) and np.median(fused) <= np.median(plain), (fused, plain)


def shifted(a: np.ndarray, lag: int) -> np.ndarray:
    """a[:, t - lag] along time (axis 1), zeros where that falls outside the utterance; a negative lag looks ahead."""
    out, steps = np.zeros_like(a), a.shape[1]
    if abs(lag) < steps:
        out[:, max(lag, 0):steps + min(lag, 0)] = a[:, max(-lag, 0):steps - max(lag, 0)]
    return out


def convolved(x, kernel, lags):
    """sum_j x[t - lag_j] kernel[j] in float64, (B, T, C) and (k, C, F) -> (B, T, F), and the sums of |terms| (the
    scale of its rounding)."""
    exact, scale = np.zeros(x.shape[:2] + kernel.shape[-1:]), np.zeros(x.shape[:2] + kernel.shape[-1:])
    for j, lag in enumerate(lags):
        behind = shifted(x, lag)
        exact += behind @ kernel[j]
        scale += np.abs(behind) @ np.abs(kernel[j])
    return exact, scale


def convolution_gradients(x, dz, kernel, lags):
    """The input gradient sum_j dz[t + lag_j] kernel[j]^T and the kernel gradient sum_t x[t - lag_j]^T dz[t] of
    ``convolved`` in float64, each with the sums of |terms|: (dx, its scale, dkernel (k, C, F), its scale)."""
    channels, features = kernel.shape[1:]
    dx, dx_scale = np.zeros_like(x), np.zeros_like(x)
    dkernel, dkernel_scale = np.zeros_like(kernel), np.zeros_like(kernel)
    for j, lag in enumerate(lags):
        ahead, behind = shifted(dz, -lag), shifted(x, lag)  # dz[t + lag], x[t - lag]
        dx += ahead @ kernel[j].T
        dx_scale += np.abs(ahead) @ np.abs(kernel[j]).T
        dkernel[j] = behind.reshape(-1, channels).T @ dz.reshape(-1, features)
        dkernel_scale[j] = np.abs(behind.reshape(-1, channels)).T @ np.abs(dz.reshape(-1, features))
    return dx, dx_scale, dkernel, dkernel_scale


@pytest.mark.parametrize("dtype, tolerance", [(tf.float64, 1e-12), (tf.float32, 1e-6)])
@pytest.mark.parametrize("channels, features, lags", [(39, 39, [4, 0]), (7, 64, [9, 3, 0]), (39, 100, [40, 0]),
                                                      (39, 5, [1, 0]), (3, 48, [2, 0]), (3, 49, [2, 0])])
def test_the_forward_op_convolves_at_any_width(built, dtype, tolerance, channels, features, lags):
    """FusedBnReluForward's convolution z[t] = sum_j x[t - lag_j] W_j, 0 before each utterance's start, against
    float64 NumPy: at 16 to 48 and 49 to 80 features (float32 on AVX-512: register tiles of 8 x 48 and 4 x 80
    values), beyond 80 (tiles of 8 x 48 in column panels; float64 or no AVX-512: the plain loop) and at 5, over
    7 x 23 rows (not a multiple of any tile), with a lag beyond T; and its batch mean and variance. Errors are
    relative to the sums of |terms|."""
    rng = np.random.default_rng(features)
    x = rng.normal(size=(7, 23, channels))
    kernel = rng.normal(size=(len(lags), channels, features))
    wide = np.concatenate(list(kernel), axis=1)  # (C, k F), tap j in columns j F ..
    exact, scale = convolved(x, kernel, lags)
    mean, z, variance, _, _ = built.fused_bn_relu_forward(
        tf.constant(x, dtype), tf.constant(wide, dtype), tf.ones(features, dtype), tf.zeros(features, dtype),
        tf.zeros([0], dtype), tf.constant(1e-3, dtype), lags=lags)
    assert np.abs(z.numpy() - exact).max() <= tolerance * scale.max()
    assert np.abs(mean.numpy() - exact.mean(axis=(0, 1))).max() <= tolerance * scale.max()
    assert np.allclose(variance.numpy(), exact.var(axis=(0, 1)), rtol=10 * tolerance, atol=0)


@pytest.mark.parametrize("dtype, tolerance", [(tf.float64, 1e-11), (tf.float32, 1e-5)])
@pytest.mark.parametrize("channels, features, lags", [(39, 39, [4, 0]), (7, 64, [9, 3, 0]), (39, 100, [40, 0]),
                                                      (13, 5, [1, 0]), (3, 48, [2, 0]), (3, 49, [2, 0])])
def test_the_backward_op_gives_the_convolutions_gradients_at_any_width(built, dtype, tolerance, channels, features,
                                                                       lags):
    """FusedBnReluBackward's input gradient dx[t] = sum_j dz[t + lag_j] W_j^T (0 past each utterance's end) and
    kernel gradient dW_j = sum_t x[t - lag_j]^T dz[t], against float64 NumPy from BatchNorm's dz (the formula of
    _BatchNormReLU.backward, with a dropout mask), at the widths of the forward test (every register tile on AVX-512,
    channel counts that leave a remainder, panels of 48) over 7 x 23 rows. Errors are relative to the sums of
    |terms|. A kernel whose taps have other widths than dy's F is refused."""
    rng = np.random.default_rng(features + channels)
    b, t = 7, 23
    dy, z, x = rng.normal(size=(b, t, features)), rng.normal(size=(b, t, features)), rng.normal(size=(b, t, channels))
    mean, gamma, beta = rng.normal(size=features), rng.normal(size=features), rng.normal(size=features)
    inv = 1.0 / np.sqrt(rng.random(features) + 0.5)
    keep = 1 / 0.75
    mask = (rng.random((b, 1, features)) >= 0.25) * keep
    kernel = rng.normal(size=(len(lags), channels, features))
    wide = np.concatenate(list(kernel), axis=1)
    d = z - mean
    g = np.where(d * gamma * inv * mask + beta * mask > 0, dy, 0.0)
    dbeta, dgamma = g.sum(axis=(0, 1)) * keep, (g * d).sum(axis=(0, 1)) * keep * inv
    dz = gamma * inv * (g * keep - dbeta / (b * t) - d * inv * dgamma / (b * t))
    dx, dx_scale, dkernel, dkernel_scale = convolution_gradients(x, dz, kernel, lags)
    c = (lambda v: tf.constant(v, dtype))
    got_dx, got_wide, got_dgamma, got_dbeta, got_dbias = built.fused_bn_relu_backward(
        c(dy), c(z), c(mean), c(gamma), c(beta), c(inv), c(mask), c(keep), c(x), c(wide), lags=lags)
    wider = np.concatenate([wide, wide[:, :len(lags)]], axis=1)  # k (F + 1) columns: taps of F + 1 outputs, not F
    with pytest.raises(tf.errors.InvalidArgumentError, match="kernel must be"):
        built.fused_bn_relu_backward(c(dy), c(z), c(mean), c(gamma), c(beta), c(inv), c(mask), c(keep), c(x),
                                     c(wider), lags=lags)
    got_kernel = np.stack(np.split(got_wide.numpy(), len(lags), axis=1))
    assert np.abs(got_dx.numpy() - dx).max() <= tolerance * dx_scale.max()
    assert np.abs(got_kernel - dkernel).max() <= tolerance * dkernel_scale.max()
    assert np.allclose(got_dgamma.numpy(), dgamma, rtol=0, atol=tolerance * np.abs(g * d).sum(axis=(0, 1)).max() * 3)
    assert np.allclose(got_dbias.numpy(), dz.sum(axis=(0, 1)), rtol=0, atol=tolerance * np.abs(dz).sum())


def gated_unit_reference(x, kernel, bias, lags, branches):
    """FusedGatedUnit's outputs in float64 NumPy from the joint kernel (k, C, W): p = sum_j x[t - lag_j] W_j + bias,
    and the sums of |terms| of p (the scale of its rounding)."""
    p, scale = convolved(x, kernel, lags)
    p += bias
    half = p.shape[-1] // 2
    v, g = np.maximum(p[..., :half], 0), np.maximum(p[..., half:], 0)
    s = 1 / (1 + np.exp(-g))
    out = (v * s).reshape(x.shape[:2] + (branches, -1)).sum(axis=2) / branches
    return p, scale + np.abs(bias), v, s, out


@pytest.mark.parametrize("dtype, tolerance", [(tf.float64, 1e-12), (tf.float32, 1e-6)])
@pytest.mark.parametrize("channels, features, branches, lags", [(39, 39, 3, [4, 0]), (7, 64, 1, [9, 3, 0]),
                                                                (13, 5, 2, [30, 0]), (3, 8, 3, [2, 0])])
def test_the_gated_unit_ops_convolve_and_differentiate_at_any_width(built, dtype, tolerance, channels, features,
                                                                    branches, lags):
    """FusedGatedUnit and FusedGatedUnitGrad against float64 NumPy, the value and gate convolutions as one of
    W = 2 n F outputs: GM-TCNet's W = 234 (float32 on AVX-512: five register-tile panels of 48, the last part-used),
    128, 20 and 48, over 7 x 23 rows (not a multiple of a tile), a lag beyond T. Forward: the output, the ReLU'd
    values, the gates signed by their ReLU's condition. Backward, from the TensorFlow path's formulas: the input,
    kernel and bias gradients. Errors are relative to the sums of |terms|."""
    rng = np.random.default_rng(features + channels)
    b, t, width = 7, 23, 2 * branches * features
    x, dout = rng.normal(size=(b, t, channels)), rng.normal(size=(b, t, features))
    kernel, bias = rng.normal(size=(len(lags), channels, width)), rng.normal(scale=0.5, size=width)
    wide = np.concatenate(list(kernel), axis=1)  # (C, k W), tap j in columns j W ..
    p, scale, v, s, out = gated_unit_reference(x, kernel, bias, lags, branches)
    c = (lambda a: tf.constant(a, dtype))
    got_out, activations = built.fused_gated_unit(c(x), c(wide), c(bias), lags=lags, branches=branches)
    inferred, kept = built.fused_gated_unit(c(x), c(wide), c(bias), lags=lags, branches=branches, training=False)
    assert np.array_equal(inferred.numpy(), got_out.numpy()) and kept.shape == (0,)  # inference: the same bits
    got_v, got_s = np.split(activations.numpy(), 2, axis=-1)
    half = width // 2
    assert np.abs(got_v - v).max() <= tolerance * scale[..., :half].max()
    clear = np.abs(p[..., half:]) > 100 * tolerance * scale[..., half:]  # no rounding can move these across 0
    assert np.all((got_s > 0)[clear] == (p[..., half:] > 0)[clear])
    assert np.abs(np.abs(got_s) - s).max() <= tolerance * scale[..., half:].max()
    assert np.abs(got_out.numpy() - out).max() <= 2 * tolerance * scale.max()
    # the TensorFlow path's backward, d = dout / n on every branch, with the ReLUs' conditions the op stored (float32
    # rounding can move a value near 0 across it)
    d = np.concatenate([dout / branches] * branches, axis=-1)
    dp = np.concatenate([np.where(got_v > 0, d * s, 0), np.where(got_s > 0, d * v * s * (1 - s), 0)], axis=-1)
    dx, dx_scale, dkernel, dkernel_scale = convolution_gradients(x, dp, kernel, lags)
    got_dx, got_wide, got_dbias = built.fused_gated_unit_grad(c(dout), activations, c(x), c(wide), lags=lags,
                                                              branches=branches)
    got_kernel = np.stack(np.split(got_wide.numpy(), len(lags), axis=1))
    assert np.abs(got_dx.numpy() - dx).max() <= 10 * tolerance * dx_scale.max()
    assert np.abs(got_kernel - dkernel).max() <= 10 * tolerance * dkernel_scale.max()
    assert np.abs(got_dbias.numpy() - dp.sum(axis=(0, 1))).max() <= 10 * tolerance * np.abs(dp).sum(axis=(0, 1)).max()


GATED_GRADIENT = """
import os, sys
import numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[2]))
lib = tf.load_op_library(sys.argv[1])
rng = np.random.default_rng(0)
x, dout = rng.normal(size=(21, 30, 39)).astype("float32"), rng.normal(size=(21, 30, 39)).astype("float32")
wide, bias = (rng.normal(size=(39, 468)) * 0.2).astype("float32"), rng.normal(size=234).astype("float32")
out, activations = lib.fused_gated_unit(x, wide, bias, lags=[2, 0], branches=3)
grads = lib.fused_gated_unit_grad(dout, activations, x, wide, lags=[2, 0], branches=3)
sys.stdout.write(" ".join(np.concatenate([out.numpy().ravel(), *[g.numpy().ravel() for g in grads]]).view("uint32")
                          .astype(str)[::7]))
"""


def test_the_gated_unit_ops_give_the_same_bits_on_any_number_of_threads(built):
    """The ops split their rows and utterances between the intra-op threads; the backward sums its kernel and bias
    gradients in fixed groups of utterances, added in order: 1 and 2 threads give the same bits (21 utterances:
    groups of 8, 8 and 5)."""
    runs = [subprocess.run([sys.executable, "-c", GATED_GRADIENT, fused_ops.LIBRARY, str(threads)],
                           capture_output=True, text=True, timeout=120) for threads in (1, 2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr[-2000:] + runs[1].stderr[-2000:]
    assert runs[0].stdout and runs[0].stdout == runs[1].stdout


def gated_unit_results(dtype, fused: bool, dilation: int, branches: int = 3, batch: int = 4, steps: int = 30,
                       kernel_size: int = 2):
    """Output and every gradient of one GM-TCNet gated unit on random data (B, T, 39)."""
    rng = np.random.default_rng(dilation)
    x = tf.constant(rng.normal(size=(batch, steps, 39)), dtype)
    params = [tf.constant(rng.normal(scale=0.3, size=shape), dtype)
              for shape in [(kernel_size * 39, branches * 39), (branches * 39,)] * 2]
    with fused_ops.enabled(fused) as used, tf.GradientTape() as tape:
        assert used == fused
        tape.watch([x, *params])
        out = training_kernels.gated_unit(x, *params, dilation=dilation, branches=branches)
        loss = tf.reduce_sum(out * tf.cos(2.0 * out))
    return [out] + tape.gradient(loss, [x, *params])


@pytest.mark.parametrize("dtype, tolerance", [(tf.float64, 1e-10), (tf.float32, 1e-6)])
@pytest.mark.parametrize("kernel_size, dilation, branches", [(2, 1, 3), (2, 8, 2), (2, 29, 3), (2, 64, 3),
                                                              (3, 2, 3), (3, 12, 2), (3, 20, 3)])
def test_fused_gated_unit_equals_the_tensorflow_path(built, dtype, tolerance, kernel_size, dilation, branches):
    """float64: equal to 1e-10 of each value's scale; float32: to float rounding. T = 30: lag 29 leaves a tap one
    step, lags 64 and 40 (3 taps, dilation 20) taps that only see zeros."""
    fused, plain = (gated_unit_results(dtype, use, dilation, branches, kernel_size=kernel_size)
                    for use in (True, False))
    for a, b, name in zip(fused, plain, ["output", "d x", "d value kernel", "d value bias", "d gate kernel",
                                         "d gate bias"]):
        a, b = a.numpy().astype("float64"), b.numpy().astype("float64")
        error = np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)
        assert error <= tolerance, f"{name}: {error:.2e}"


def test_fused_gated_unit_at_an_emodb_batch_equals_the_tensorflow_path(built):
    """At an EMODB batch's shape (64, 188, 39) the ops split their rows between the intra-op threads: the same
    values as the TensorFlow path, to float32 rounding."""
    fused, plain = (gated_unit_results(tf.float32, use, 4, batch=64, steps=188) for use in (True, False))
    for a, b in zip(fused, plain):
        assert np.abs(a.numpy() - b.numpy()).max() <= 1e-6 * np.abs(b.numpy()).max()


def test_a_gated_unit_keeps_its_activations_only_in_training(built):
    """GM-TCNet's unit in inference asks the op for no activations (they are for the gradient alone), and gives the
    same output as in training mode, bit for bit."""
    unit = GatedUnit(filters=39, dilation_rate=4)
    x = tf.constant(np.random.default_rng(4).normal(size=(3, 30, 39)), tf.float32)
    graphs, outputs = {}, {}
    with fused_ops.enabled():
        for training in (True, False):
            function = tf.function(lambda v, training=training: unit(v, training=training))
            outputs[training] = function(x).numpy()
            graphs[training] = function.get_concrete_function(x).graph
    for training, graph in graphs.items():
        units = [op for op in graph.get_operations() if op.type == "FusedGatedUnit"]
        assert len(units) == 1 and units[0].get_attr("training") is training
    assert np.array_equal(outputs[True], outputs[False])


def test_setup_build_loads_and_is_not_repeated(built):
    assert built is not None and hasattr(built, "fused_bn_relu_forward")
    before = os.path.getmtime(fused_ops.LIBRARY)
    again = subprocess.run(["bash", BUILD, sys.executable, NATIVE], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout == "" and os.path.getmtime(fused_ops.LIBRARY) == before


def test_without_a_compiler_setup_says_so_and_succeeds(tmp_path):
    done = subprocess.run(["bash", BUILD, sys.executable, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CXX": "no-such-compiler"})
    assert done.returncode == 0 and "pure-TensorFlow path" in done.stdout and len(done.stdout.splitlines()) == 1
    assert not os.path.exists(tmp_path / "fused_tail.so")


def traced_op_types(fused: bool) -> set:
    """The operation types of a block's training step traced with the fused ops switched on or off."""
    def step(x):
        params = [tf.ones((2, 3, 3)), *[tf.ones(3)] * 3] * 2
        with tf.GradientTape() as tape:
            tape.watch(x)
            out, _ = training_kernels.temporal_aware_block(x, *params, None, None, dilation=1, keep_scale=1.0,
                                                           epsilon=1e-3)
        return tape.gradient(out, x)
    with fused_ops.enabled(fused):
        graph = tf.function(step).get_concrete_function(tf.TensorSpec((None, 8, 3))).graph
    return {op.type for op in graph.get_operations()}


def gated_unit_op_types(fused: bool) -> set:
    """The operation types of a gated unit's training step traced with the fused ops switched on or off."""
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = training_kernels.gated_unit(x, tf.ones((6, 9)), tf.ones(9), tf.ones((6, 9)), tf.ones(9),
                                              dilation=1, branches=3)
        return tape.gradient(out, x)
    with fused_ops.enabled(fused):
        graph = tf.function(step).get_concrete_function(tf.TensorSpec((None, 8, 3))).graph
    return {op.type for op in graph.get_operations()}


def test_the_switch_selects_the_ops(built):
    assert {"FusedBnReluForward", "FusedBnReluGate", "FusedBnReluBackward", "FusedSigmoidGateGrad"} <= \
        traced_op_types(True)
    assert not any(t.startswith("Fused") for t in traced_op_types(False))
    on, off = gated_unit_op_types(True), gated_unit_op_types(False)
    assert {"FusedGatedUnit", "FusedGatedUnitGrad"} <= on and "Sigmoid" not in on
    assert "Sigmoid" in off and not any(t.startswith("Fused") for t in off)
    assert not fused_ops.active()  # off again outside the block


def test_without_the_library_the_block_runs_the_tensorflow_path(monkeypatch):
    monkeypatch.setattr(fused_ops, "library", lambda: None)
    types = traced_op_types(True)
    assert "Sigmoid" in types and not any(t.startswith("Fused") for t in types)


@pytest.mark.parametrize("flags, used", [([], True), (["--fused_kernels", "off"], False), (["--xla"], False),
                                         (["--model", "GMTCN"], True), (["--model", "GMTCN", "--xla"], False),
                                         (["--model", "GMTCN", "--fused_kernels", "off"], False),
                                         (["--model", "GMTCN", "--mixed_precision", "bf16"], False),
                                         (["--training", "stacked"], True),
                                         (["--mixed_precision", "bf16"], False)])
def test_run_json_records_whether_the_fused_kernels_train(built, flags, used):
    typed = command_line.validate(command_line.parse(["--mode", "train", *flags]))
    _, config = run_config(typed, CORPORA["EMODB"], typed.seeds[0])
    assert config.fused_kernels is used


def test_a_library_built_for_another_cpu_is_not_loaded(tmp_path, monkeypatch, capsys):
    """-march=native: a checkout moved to a CPU without one of the build machine's flags keeps the TensorFlow path
    (loading it could stop the process on an illegal instruction) and says so in one line."""
    if not os.path.isfile("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo to compare the CPU's flags with")
    (tmp_path / "fused_tail.so").write_bytes(b"not a library")  # never opened: the flags refuse it first
    (tmp_path / "fused_tail.cpu").write_text("sse2 no_such_instruction_set\n")
    monkeypatch.setattr(fused_ops, "LIBRARY", str(tmp_path / "fused_tail.so"))
    assert fused_ops.library.__wrapped__() is None
    message = capsys.readouterr().err
    assert "built for another CPU" in message and "no_such_instruction_set" in message
    assert len(message.splitlines()) == 1


def test_a_library_built_from_other_sources_is_not_loaded(tmp_path, monkeypatch, capsys):
    """A checkout updated without running setup.sh again: its library's ops may not match the calls traced now, so the
    TensorFlow path trains, and one line says why."""
    (tmp_path / "fused_tail.so").write_bytes(b"not a library")  # never opened: the stamp refuses it first
    (tmp_path / "fused_tail.stamp").write_text("0123abcd 2.21.0 cpu 0 c++\n")
    monkeypatch.setattr(fused_ops, "LIBRARY", str(tmp_path / "fused_tail.so"))
    assert fused_ops.library.__wrapped__() is None
    message = capsys.readouterr().err
    assert "built from another version of fused_tail.cc" in message and len(message.splitlines()) == 1


def test_cpu_flags_reads_the_flags_line():
    text = "processor\t: 0\nflags\t\t: fpu sse2 avx2\nbugs\t\t: spectre\nflags\t\t: other\n"
    assert fused_ops.cpu_flags(text) == {"fpu", "sse2", "avx2"}
    assert fused_ops.cpu_flags("fpu sse2\n") == {"fpu", "sse2"}  # the line the build records


def test_a_run_recorded_with_the_fused_kernels_says_when_they_are_not_built_here(monkeypatch, capsys):
    """--resume of a run trained with them, on a machine where setup.sh built none: one line, then the TensorFlow path."""
    from timnet_ser.Common_Model import build_trainer
    from timnet_ser.core.config import Hyper, RunConfig
    from timnet_ser.Model import MODELS
    monkeypatch.setattr(fused_ops, "available", lambda: False)
    config = RunConfig(model="TIMNET", data="TOY", classes=["a", "b"], feature_path="toy.npy", split_fold=2,
                       random_seed=1, epochs=1, batch_size=4, hyper=Hyper(dilation_size=2, filter_size=4),
                       fused_kernels=True)
    build_trainer(MODELS["TIMNET"], config, (8, 39), 2)
    message = capsys.readouterr().err
    assert "fused kernels, which cannot run here" in message and len(message.splitlines()) == 1
