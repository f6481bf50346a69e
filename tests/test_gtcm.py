"""GM-TCNet's GTCM layers: size, receptive field (measured), the original graph's weights against its outputs,
legacy weight round trip, config round trip, argument validation. CPU, float32 unless said otherwise."""

import os

import keras
import numpy as np
import pytest

from timnet_ser.GTCM import GTCM, GatedBlock, GatedUnit, receptive_field
from timnet_ser.nn import legacy_weights

FRAMES, CLASSES = 188, 7


def gmtcn(frames=FRAMES, classes=CLASSES, **gtcm_args):
    """Input -> GTCM -> Dense(softmax) as the original builds GM-TCNet; returns (model, gtcm, dense).

    The model has two outputs, (pooled (B, 39), probs (B, C)), so the golden file's both can be checked."""
    gtcm = GTCM(name="gtcm", **gtcm_args)
    dense = keras.layers.Dense(classes, activation="softmax", name="dense")
    inputs = keras.Input((frames, 39), name="features")
    pooled = gtcm(inputs)  # (B, 39)
    probs = dense(pooled)  # (B, C)
    return keras.Model(inputs, [pooled, probs]), gtcm, dense


def groups(gtcm, dense):
    return gtcm.legacy_weight_groups() + [("dense", [dense.kernel, dense.bias])]


def golden_paths(shared):
    reference = os.path.join(shared, "reference")
    return os.path.join(reference, "golden_gmtcn_emodb.hdf5"), os.path.join(reference, "golden_gmtcn_emodb.npz")


def test_parameter_count_and_receptive_field():
    model, gtcm, _ = gmtcn()
    assert model.count_params() == 260_644  # SPEC §3, 7 classes
    assert gtcm.receptive_field == receptive_field() == 382  # 1 + 3 * (1 + 2 + ... + 64)
    assert len(gtcm.legacy_weight_groups()) == 1 + 7 * 12


def test_kernels_are_initialised_independently():
    _, gtcm, _ = gmtcn()
    kernels = [np.asarray(variables[0]).tobytes() for _, variables in gtcm.legacy_weight_groups()]
    assert len(set(kernels)) == len(kernels)


def test_causality():
    """Perturbing input frame t changes pre-pooling outputs at frames >= t only."""
    _, gtcm, _ = gmtcn()
    x = np.random.default_rng(0).normal(size=(1, FRAMES, 39)).astype("float32")
    base = np.asarray(gtcm.sequence(x))[0]  # (T, 39)
    for t in (0, 50, 120, FRAMES - 1):
        bumped = x.copy()
        bumped[0, t] += 3.0
        change = np.abs(np.asarray(gtcm.sequence(bumped))[0] - base).max(axis=1)  # (T,)
        assert change[:t].max(initial=0.0) == 0.0, f"frame {t} changed earlier frames"
        assert change[t] > 0, f"frame {t} did not change its own output"


@pytest.mark.parametrize("dilations", [(1, 2), (1, 2, 4), (1, 2, 4, 8, 16, 32, 64)])
def test_receptive_field_is_measured(dilations):
    """The last pre-pooling frame depends on exactly the last `receptive_field` input frames (float64 and positive
    weights and inputs, so every ReLU is open and no path cancels)."""
    field = receptive_field(2, dilations)
    steps = field + 20
    layer = GTCM(dilations=dilations, dtype="float64")
    x = np.random.default_rng(1).uniform(0.1, 1.0, size=(1, steps, 39))
    layer(x)
    for variable in layer.weights:
        if variable.path.endswith("kernel"):
            variable.assign(np.full(variable.shape, 1.0 / 39))
    base = np.asarray(layer.sequence(x))[0, -1]
    for t, reaches in ((steps - field, True), (steps - field - 1, False), (0, False), (steps - 1, True)):
        bumped = x.copy()
        bumped[0, t] += 1.0
        change = np.abs(np.asarray(layer.sequence(bumped))[0, -1] - base).max()
        assert (change > 0) == reaches, f"frame {t} of {steps}: change {change} at the last frame, field {field}"


@pytest.mark.parametrize("fused", [True, False])
def test_the_original_graphs_weights_reproduce_its_outputs(shared, fused):
    weights, outputs = golden_paths(shared)
    golden = np.load(outputs)
    model, gtcm, dense = gmtcn(fused=fused)
    legacy_weights.load_legacy_weights(weights, groups(gtcm, dense))
    pooled, probs = model.predict(golden["x"], verbose=0)
    assert probs.shape == golden["probs"].shape == (64, 7)
    probs_diff = float(np.abs(probs - golden["probs"]).max())
    pooled_diff = float(np.abs(pooled - golden["pooled"]).max())
    assert probs_diff < 1e-4, f"probs differ from the original's by up to {probs_diff:.3g}"
    assert pooled_diff < 1e-4, f"pooled differs from the original's by up to {pooled_diff:.3g}"


def test_level_two_convolves_with_twice_the_blocks_dilation(shared):
    """The names say dilation i at level 2, but the original convolves with 2i there: with i the golden outputs
    are far off."""
    weights, outputs = golden_paths(shared)
    golden = np.load(outputs)
    model, gtcm, dense = gmtcn()
    legacy_weights.load_legacy_weights(weights, groups(gtcm, dense))
    for block in gtcm.blocks:
        assert block.level2.dilation_rate == 2 * block.dilation
        assert block.level2.gate_convs[0].name.endswith(f"_dilation{block.dilation}_stack0")
        for conv in [block.level2] + block.level2.gate_convs + block.level2.value_convs:
            conv.dilation_rate = block.dilation  # the wrong reading of the names
    pooled, _ = keras.Model(model.inputs, model.outputs).predict(golden["x"], verbose=0)
    assert np.abs(pooled - golden["pooled"]).max() > 0.1


def test_layer_names_follow_the_original(shared):
    weights, _ = golden_paths(shared)
    _, gtcm, dense = gmtcn()
    stored = [name for name, _ in legacy_weights.read_weight_arrays(weights)]
    assert [name for name, _ in groups(gtcm, dense)] == stored  # GM-TCNet's conv names carry no counters


def test_fused_and_plain_gated_units_agree():
    plain, plain_gtcm, plain_dense = gmtcn(40, 4, fused=False)
    fused, fused_gtcm, fused_dense = gmtcn(40, 4, fused=True)
    for (_, a), (_, b) in zip(groups(plain_gtcm, plain_dense), groups(fused_gtcm, fused_dense)):
        for source, target in zip(a, b):
            target.assign(source)
    x = np.random.default_rng(3).normal(size=(5, 40, 39)).astype("float32")
    for a, b in zip(plain(x), fused(x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=0)


def test_every_variable_is_trained_in_the_fused_form():
    import tensorflow as tf  # the project's Keras backend

    _, gtcm, _ = gmtcn(40, 4)
    x = tf.constant(np.random.default_rng(4).normal(size=(2, 40, 39)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(gtcm(x) ** 2)
    gradients = tape.gradient(loss, gtcm.trainable_variables)
    assert len(gradients) == 2 * (1 + 7 * 12)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


def test_legacy_weights_round_trip(tmp_path):
    model, gtcm, dense = gmtcn(40, 4)
    other, other_gtcm, other_dense = gmtcn(40, 4)
    path = str(tmp_path / "w.hdf5")
    legacy_weights.save_legacy_weights(path, groups(gtcm, dense))
    legacy_weights.load_legacy_weights(path, groups(other_gtcm, other_dense))
    x = np.random.default_rng(2).normal(size=(3, 40, 39)).astype("float32")
    for a, b in zip(model.predict(x, verbose=0), other.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_config_round_trip():
    layer = GTCM(filters=16, dilations=(1, 3), leaky_alpha=0.1, fused=False)
    config = layer.get_config()
    assert GTCM.from_config(config).get_config() == config
    for sub in (GatedBlock(16, 2, 3, fused=False), GatedUnit(16, 2, 6, level=2, block_dilation=3)):
        assert type(sub).from_config(sub.get_config()).get_config() == sub.get_config()
    model, _, _ = gmtcn(30, 3)
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert rebuilt.count_params() == model.count_params()
    assert rebuilt.get_layer("gtcm").receptive_field == 382


@pytest.mark.parametrize("make, echoed", [
    (lambda: GatedUnit(dilation_rate=0), "dilation_rate=0"),
    (lambda: GatedUnit(filters=2.5), "filters=2.5"),
    (lambda: GatedUnit(level=3), "level=3"),
    (lambda: GatedBlock(dilation=-2), "dilation=-2"),
    (lambda: GatedBlock(kernel_size=0), "kernel_size=0"),
    (lambda: GTCM(dilations=()), r"dilations=\(\)"),
    (lambda: GTCM(dilations=(1, 0)), r"dilations=\(1, 0\)"),
    (lambda: GTCM(dilations=5), "dilations=5"),
    (lambda: GTCM(leaky_alpha=1.5), "leaky_alpha=1.5"),
    (lambda: GTCM(fused="yes"), "fused='yes'"),
])
def test_invalid_arguments_are_echoed(make, echoed):
    with pytest.raises(ValueError, match=echoed):
        make()


def test_block_needs_as_many_input_channels_as_filters():
    with pytest.raises(ValueError, match=r"input_shape=\(None, 10, 12\)"):
        GatedBlock(filters=39).build((None, 10, 12))
