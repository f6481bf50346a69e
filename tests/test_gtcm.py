"""GM-TCNet: parameter count, receptive field, and the original graph's weights against its outputs."""

import os

import keras
import numpy as np
import pytest

import legacy_weights
from GTCM import GTCM, GatedBlock, GatedUnit
from Model import MODELS, Hyper, build_model, embedding_model, legacy_weight_groups


def gmtcn(frames=188, classes=7):
    return build_model(MODELS["GMTCN"], (frames, 39), classes, Hyper())


def test_parameter_count_and_receptive_field():
    model = gmtcn()
    assert model.count_params() == 260_644  # SPEC §3
    assert model.get_layer("gtcm").receptive_field == 382


@pytest.mark.parametrize("dilations, field", [((1, 2), 10), ((1, 2, 4), 22)])
def test_receptive_field_is_measured(dilations, field):
    layer = GTCM(dilations=dilations)
    steps = field + 12
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(1, steps, 39)).astype("float32")
    layer(x)
    for variable in layer.weights:  # positive weights: every ReLU open, so every path shows
        if variable.path.endswith("kernel"):
            variable.assign(np.full(variable.shape, 0.05, "float32"))
    assert layer.receptive_field == field
    base = np.asarray(layer.sequence(x))[0, -1]
    for t, reaches in ((steps - field, True), (steps - field - 1, False)):
        bumped = x.copy()
        bumped[0, t] += 5.0
        assert (np.abs(np.asarray(layer.sequence(bumped))[0, -1] - base).max() > 0) == reaches, t


def test_the_original_graphs_weights_reproduce_its_outputs(shared):
    reference = os.path.join(shared, "reference")
    golden = np.load(os.path.join(reference, "golden_gmtcn_emodb.npz"))
    model = gmtcn()
    legacy_weights.load_legacy_weights(os.path.join(reference, "golden_gmtcn_emodb.hdf5"), legacy_weight_groups(model))
    pooled, probs = embedding_model(model).predict(golden["x"], verbose=0)
    assert np.abs(probs - golden["probs"]).max() < 1e-4
    assert np.abs(pooled - golden["pooled"]).max() < 1e-4


def test_layer_names_follow_the_original(shared):
    names = [name for name, _ in legacy_weight_groups(gmtcn())]
    stored = [name for name, _ in legacy_weights.read_weight_arrays(
        os.path.join(shared, "reference", "golden_gmtcn_emodb.hdf5"))]
    assert names == stored  # GM-TCNet's names carry no counters, so they match exactly


def test_own_weights_round_trip(tmp_path):
    model, other = gmtcn(40, 4), gmtcn(40, 4)
    path = str(tmp_path / "w.hdf5")
    legacy_weights.save_legacy_weights(path, legacy_weight_groups(model))
    legacy_weights.load_legacy_weights(path, legacy_weight_groups(other))
    x = np.random.default_rng(2).normal(size=(3, 40, 39)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), other.predict(x, verbose=0))


def test_validation_and_config():
    with pytest.raises(ValueError, match="dilation_rate=0"):
        GatedUnit(dilation_rate=0)
    with pytest.raises(ValueError, match="dilation=-2"):
        GatedBlock(dilation=-2)
    with pytest.raises(ValueError, match=r"dilations=\(\)"):
        GTCM(dilations=())
    layer = GTCM(dilations=(1, 3), leaky_alpha=0.1)
    assert GTCM.from_config(layer.get_config()).get_config() == layer.get_config()
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(gmtcn(30, 3)))
    assert rebuilt.count_params() == gmtcn(30, 3).count_params()
