"""Issue #22 item 4 (utterance only): --normalize utterance, the network's first layer, so that training, test,
predict, the API and the exported graph all apply it; refused where it cannot apply."""

import json
import os

import numpy as np
import pytest

from conftest import retest_toy_run, train_toy_run
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.main import main
from timnet_ser.Model import MODELS

FRAMES = 24


def padded_toy(n=36, seed=0):
    """Three learnable classes; the last 6 frames of every utterance are padding (only coefficient 0 set)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, FRAMES, 39)).astype("float32") + 2 * labels[:, None, None]
    x[:, -6:, 1:] = 0.0
    x[:, -6:, 0] = -700.0
    return x.astype("float32"), np.eye(3, dtype="float32")[labels]


@pytest.fixture(scope="module")
def normalized_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("normalized")
    x, y = padded_toy()
    config = RunConfig(model="TIMNET", data="TOY", classes=["a", "b", "c"], feature_path="toy.npy", split_fold=3,
                       random_seed=7, epochs=2, batch_size=8, hyper=Hyper(dilation_size=3, normalize="utterance"))
    return train_toy_run(MODELS["TIMNET"], config, x, y, str(root / "Models"), str(root / "Results"))


def test_the_layer_standardises_voiced_frames_and_zeroes_padding():
    from timnet_ser.nn.normalization import UtteranceNormalization
    x, _ = padded_toy(4)
    x = x * 3.0 + 7.0 * np.arange(39, dtype="float32")  # voiced frames: any scale and offset per coefficient
    x[:, -6:, 1:], x[:, -6:, 0] = 0.0, -700.0
    layer = UtteranceNormalization()
    out = np.asarray(layer(x))
    voiced = out[:, :-6]
    np.testing.assert_allclose(voiced.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(voiced.std(axis=1), 1.0, atol=1e-3)
    assert not out[:, -6:].any()
    again = UtteranceNormalization.from_config(layer.get_config())
    assert (again.flat, again.epsilon) == (1e-3, 1e-6)


def test_the_run_records_it_and_the_api_applies_it(normalized_run):
    import timnet_ser
    folder = normalized_run["record"]["weights_folder"]
    with open(os.path.join(folder, "run.json")) as f:
        assert json.load(f)["config"]["hyper"]["normalize"] == "utterance"
    run = timnet_ser.load_run(folder)
    assert run.model.layers[1].name == "utterance_normalization"
    x, _ = padded_toy(6, seed=3)
    _, before = run.fold_outputs(x)
    rescaled = x.copy()
    rescaled[:, :-6] = rescaled[:, :-6] * 2.5 - 4.0  # another gain and offset: the same normalised input
    _, after = run.fold_outputs(rescaled)
    np.testing.assert_allclose(after, before, atol=1e-5)

def test_test_mode_reproduces_the_training_run(normalized_run, tmp_path):
    from timnet_ser.runs.run_folder import require_run
    record = normalized_run["record"]
    run = require_run(record["weights_folder"], "--test_path")
    x, y = padded_toy()
    retested = retest_toy_run(MODELS["TIMNET"], run.config, x, y, run.path, str(tmp_path))["record"]
    assert [f["y_pred"] for f in retested["folds"]] == [f["y_pred"] for f in record["folds"]]


def test_the_exported_graph_equals_the_api(normalized_run, tmp_path):
    import onnxruntime

    import timnet_ser
    from timnet_ser.deploy import export
    run = timnet_ser.load_run(normalized_run["record"]["weights_folder"])
    path = str(tmp_path / "model.onnx")
    run.export(path, "onnx")
    x, _ = padded_toy(5, seed=4)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    graph = session.run([export.OUTPUT_NAME], {export.INPUT_NAME: x})[0]
    _, probabilities = run.fold_outputs(x)
    np.testing.assert_allclose(graph, probabilities.mean(axis=0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("flags, message", [
    (["--mode", "train", "--model", "DCNN_BLSTMwA", "--normalize", "utterance"],
     "--normalize utterance: standardises MFCC coefficients; --model DCNN_BLSTMwA reads logmel3"),
    (["--mode", "train", "--training", "stacked", "--normalize", "utterance"], "--training stacked: trains"),
    (["--mode", "train", "--normalize", "corpus"], "--normalize 'corpus': choose one of none, utterance"),
])
def test_where_it_cannot_apply_is_one_line(flags, message, capsys):
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_the_authors_weights_refuse_it(shared, capsys):
    folder = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    assert main(["--mode", "test", "--test_path", folder, "--normalize", "utterance"]) == 2
    assert "the authors' weights were trained without normalisation" in capsys.readouterr().err


def test_a_typed_normalize_must_agree_with_the_run(normalized_run, capsys):
    folder = normalized_run["record"]["weights_folder"]
    assert main(["--mode", "test", "--test_path", folder, "--normalize", "none"]) == 2
    assert "--normalize none: the run in" in capsys.readouterr().err
