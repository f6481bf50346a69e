"""TIM-Net: shapes, parameter counts, receptive field, and the authors' published weights against their own outputs."""

import os

import keras
import numpy as np
import pytest

from timnet_ser.core.config import Hyper
from timnet_ser.core.errors import UserError
from timnet_ser.Model import MODELS, build_model, embedding_model, legacy_weight_groups
from timnet_ser.nn import legacy_weights
from timnet_ser.TIMNET import TIMNET, TemporalAwareBlock, WeightLayer


def timnet(frames=188, classes=7, blocks=8):
    return build_model(MODELS["TIMNET"], (frames, 39), classes, Hyper(dilation_size=blocks))


@pytest.mark.parametrize("frames, classes, blocks, total, trainable", [
    (188, 7, 8, 106_992, 104_496),  # EMODB (SPEC §2)
    (606, 4, 10, 132_770, None),  # IEMOCAP
])
def test_parameter_counts(frames, classes, blocks, total, trainable):
    model = timnet(frames, classes, blocks)
    assert model.count_params() == total
    if trainable is not None:
        assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == trainable


def test_receptive_field_of_the_papers_settings():
    assert TIMNET(dilations=8).receptive_field == 511  # SPEC §2
    assert TIMNET(dilations=10).receptive_field == 2047


@pytest.mark.parametrize("blocks, field", [(3, 15), (5, 63)])
def test_receptive_field_is_measured_not_just_computed(blocks, field):
    # Measured on few blocks: across eight, a far frame's effect falls below float32 resolution.
    layer = TIMNET(dilations=blocks, dropout_rate=0.0)
    assert layer.receptive_field == field
    steps = field + 40
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(1, steps, 39)).astype("float32")
    layer(x)
    # Small positive weights keep every ReLU open and every sigmoid off its flat ends, so any
    # path from an input frame to the output shows up as a change.
    for variable in layer.weights:
        if variable.path.endswith("kernel"):
            variable.assign(np.full(variable.shape, 0.02, "float32"))

    def last_frame(inp):  # the forward direction's output at the last frame
        h = layer.forward_conv(inp)
        for block in layer.forward_blocks:
            h = block(h, training=False)
        return np.asarray(h[0, -1], dtype="float64")

    base = last_frame(x)
    for t, reaches in ((steps - field, True), (steps - field - 1, False)):
        bumped = x.copy()
        bumped[0, t] += 5.0
        assert (np.abs(last_frame(bumped) - base).max() > 0) == reaches, t


def test_layers_validate_and_serialise():
    with pytest.raises(ValueError, match="dilation_rate=0"):
        TemporalAwareBlock(dilation_rate=0)
    with pytest.raises(ValueError, match="dropout_rate=1.5"):
        TIMNET(dropout_rate=1.5)
    for layer in (TIMNET, TemporalAwareBlock):  # across the channels: Keras built it, and it broke the block
        with pytest.raises(ValueError, match="element-wise activations .*received activation='softmax'"):
            layer(activation="softmax")
    layer = TIMNET(dilations=3, stacks=2, dropout_rate=0.2, name="t")
    clone = TIMNET.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert len(clone.forward_blocks) == 6
    model = timnet(50, 4, 3)
    config = keras.saving.serialize_keras_object(model)
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert rebuilt.count_params() == model.count_params()
    assert isinstance(rebuilt.get_layer("weight_layer"), WeightLayer)


def test_published_emodb_weights_reproduce_the_original_outputs(shared):
    """All 10 folds of the authors' EMODB_46 weights, all 535 rows: probs and fusion within 1e-4."""
    reference = os.path.join(shared, "reference")
    golden = np.load(os.path.join(reference, "golden_timnet_emodb46.npz"))
    x = np.load(os.path.join(reference, "EMODB_2s.npy"), allow_pickle=True).item()["x"]  # trusted reference file
    model = timnet()
    both = embedding_model(model)
    groups = legacy_weight_groups(model)
    for fold in range(10):
        legacy_weights.load_legacy_weights(
            os.path.join(reference, "Test_Models", "EMODB_46", f"10-fold_weights_best_{fold + 1}.hdf5"), groups)
        fusion, probs = both.predict(x, batch_size=128, verbose=0)
        assert np.abs(probs - golden["probs"][fold]).max() < 1e-4, f"fold {fold + 1} probs"
        assert np.abs(fusion - golden["fusion"][fold]).max() < 1e-4, f"fold {fold + 1} fusion"


@pytest.mark.parametrize("folder, classes", [("CASIA_32", 6), ("EMOVO_1", 7)])
def test_other_published_weights_load(shared, folder, classes):
    path = os.path.join(shared, "reference", "Test_Models", folder, "10-fold_weights_best_1.hdf5")
    model = timnet(188, classes)
    legacy_weights.load_legacy_weights(path, legacy_weight_groups(model))
    stored = legacy_weights.read_weight_arrays(path)
    np.testing.assert_array_equal(model.get_layer("dense").kernel.numpy(), stored[-1][1][0])


def test_wrong_class_count_names_the_layer_and_shapes(shared):
    path = os.path.join(shared, "reference", "Test_Models", "EMODB_46", "10-fold_weights_best_1.hdf5")
    model = timnet(188, 6)
    before = [v.numpy() for v in model.weights]
    with pytest.raises(UserError, match=r"dense_1.*\(39, 7\).*\(39, 6\)"):
        legacy_weights.load_legacy_weights(path, legacy_weight_groups(model))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.weights)), "nothing half-loaded"
    with pytest.raises(UserError, match="layers with weights"):
        legacy_weights.load_legacy_weights(path, legacy_weight_groups(timnet(188, 7, blocks=6)))


def test_own_weights_round_trip_in_the_legacy_layout(tmp_path):
    model = timnet(60, 4, 3)
    path = str(tmp_path / "10-fold_weights_best_1.hdf5")
    legacy_weights.save_legacy_weights(path, legacy_weight_groups(model))
    assert os.listdir(tmp_path) == ["10-fold_weights_best_1.hdf5"], "no temporary file left"
    other = timnet(60, 4, 3)
    legacy_weights.load_legacy_weights(path, legacy_weight_groups(other))
    x = np.random.default_rng(1).normal(size=(5, 60, 39)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), other.predict(x, verbose=0))
    import h5py
    with h5py.File(path) as f:  # the Keras-2 layout the authors' load_weights reads by order
        assert {"layer_names", "backend", "keras_version"} <= set(f.attrs)
        first = f.attrs["layer_names"][0].decode()
        assert f[first].attrs["weight_names"][0].decode() == f"{first}/kernel:0"
        assert f[first][f"{first}/kernel:0"].shape == (1, 39, 39)


def test_every_block_activation_is_keras_element_wise_one():
    """nn/layer_args.BLOCK_ACTIVATIONS, the names --activation takes: each is a Keras activation that maps each value
    on its own (the same shape; a change to one input changes that output only)."""
    from timnet_ser.nn.layer_args import BLOCK_ACTIVATIONS
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    bumped = x.copy()
    bumped[0, 0, 0] += 1.0
    for name in BLOCK_ACTIVATIONS:
        act = keras.activations.get(name)
        y, y2 = np.asarray(act(x)), np.asarray(act(bumped))
        changed = y2 != y
        changed[0, 0, 0] = False
        assert y.shape == x.shape and not changed.any(), name
