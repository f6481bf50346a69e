"""The shared engine: fold split, label smoothing, fresh weights per fold, protocols, save -> re-test round trip."""

import json
import os

import numpy as np
import pytest
from sklearn.model_selection import KFold

from conftest import retest_toy_run, train_toy_run
from timnet_ser.Common_Model import Trainer
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.engine.protocol import make_folds, smooth_labels
from timnet_ser.Model import MODELS, build_model, legacy_weight_groups
from timnet_ser.nn import legacy_weights
from timnet_ser.runs.run_folder import fold_weight_files

CLASSES = ["a", "b", "c"]


def toy_data(n=36, frames=24, seed=0):
    """Three classes whose MFCC-like frames differ in mean: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, frames, 39)).astype("float32") + labels[:, None, None].astype("float32")
    return x, np.eye(3, dtype="float32")[labels]


def config(model="TIMNET", **overrides):
    base = dict(model=model, data="TOY", classes=CLASSES, feature_path="toy.npy", split_fold=3, random_seed=7,
                epochs=3, batch_size=8, label_smoothing=0.1, hyper=Hyper(dilation_size=3))
    return RunConfig(**{**base, **overrides})


@pytest.mark.parametrize("n, k, seed", [(535, 10, 46), (100, 5, 1)])
def test_folds_equal_sklearn_kfold(n, k, seed):
    ours = make_folds(n, k, seed)
    theirs = list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n)))
    assert len(ours) == k
    for (a_train, a_test), (b_train, b_test) in zip(ours, theirs):
        np.testing.assert_array_equal(a_train, b_train)
        np.testing.assert_array_equal(a_test, b_test)


@pytest.mark.parametrize("k", [1, 37])
def test_impossible_fold_counts_name_the_flag(k):
    with pytest.raises(UserError, match=f"--split_fold {k}"):
        make_folds(36, k, 0)


def test_label_smoothing_is_on_a_copy():
    y = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0]]
    original = y.copy()
    smoothed = smooth_labels(y, 0.1)
    np.testing.assert_array_equal(y, original)
    np.testing.assert_allclose(smoothed[0], [0.925, 0.025, 0.025, 0.025])
    np.testing.assert_allclose(smoothed.sum(1), 1.0, rtol=1e-6)


def test_reset_gives_fresh_seeded_weights_and_optimiser_state():
    x, y = toy_data()
    cfg = config()
    trainer = Trainer(lambda: build_model(MODELS["TIMNET"], (24, 39), 3, cfg.hyper), cfg)
    trainer.reset(5)
    first = trainer.get_weights()
    trainer.train_epoch(x, y, np.arange(len(x)), 8)
    assert int(trainer.optimizer.iterations.numpy()) == 5
    trainer.reset(5)
    assert int(trainer.optimizer.iterations.numpy()) == 0
    assert all(np.array_equal(a, b) for a, b in zip(first, trainer.get_weights()))
    trainer.reset(6)
    assert not all(np.array_equal(a, b) for a, b in zip(first, trainer.get_weights()))


@pytest.mark.parametrize("model", ["TIMNET", "GMTCN"])
def test_train_then_retest_reproduces_every_fold(tmp_path, model):
    x, y = toy_data()
    cfg = config(model)
    trained = train_toy_run(MODELS[model], cfg, x, y, str(tmp_path / "Models"), str(tmp_path / "Results"))
    record = trained["record"]
    folder = record["weights_folder"]
    assert os.path.basename(folder).startswith("TOY_7_") and folder.endswith(model)
    assert sorted(os.listdir(folder)) == sorted([f"3-fold_weights_best_{i}.hdf5" for i in (1, 2, 3)] +
                                                [f"3-fold_record_{i}.json" for i in (1, 2, 3)] +
                                                ["run.json", "training_rows.npy"])
    assert record["protocol"] == "last_epoch" and all(f["kept_epoch"] == 3 for f in record["folds"])
    for path in trained["paths"].values():
        assert os.path.getsize(path) > 0 and model in os.path.basename(path)
    with open(trained["paths"]["json"]) as f:
        stored = json.load(f)
    assert stored["config"]["model"] == model and stored["versions"]["tensorflow"]
    retested = retest_toy_run(MODELS[model], cfg, x, y, folder, str(tmp_path / "Results"))["record"]
    assert [f["war"] for f in retested["folds"]] == [f["war"] for f in record["folds"]]
    assert [f["y_pred"] for f in retested["folds"]] == [f["y_pred"] for f in record["folds"]]


def test_same_seed_same_run(tmp_path):
    """docs/training.md's promise, exactly: under main.py's TensorFlow settings (op determinism on, Grappler off;
    conftest sets them as main.py does, checked here first) two runs of the same seed are equal bit for bit: every
    array saved for every fold (BatchNorm moving statistics included), every fold's history, predictions and kept
    epoch. With Grappler on, the moving means differed in their last bits now and then (bench/repeatability.py)."""
    import tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled  # no public getter in TF 2.21

    assert is_op_determinism_enabled(), "conftest starts TensorFlow as main.py does: op determinism on"
    assert tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer"), "graph optimiser off"
    x, y = toy_data()
    runs = [train_toy_run(MODELS["TIMNET"], config(), x, y, str(tmp_path / "M"), str(tmp_path / f"R{i}"))
            for i in range(2)]
    folders = [r["record"]["weights_folder"] for r in runs]
    assert folders[0] != folders[1], "a run never writes into another run's folder"
    for fold in range(1, 4):
        a, b = (legacy_weights.read_weight_arrays(os.path.join(f, f"3-fold_weights_best_{fold}.hdf5")) for f in folders)
        assert [name for name, _ in a] == [name for name, _ in b]
        for (name, us), (_, vs) in zip(a, b):
            assert all(np.array_equal(u, v) for u, v in zip(us, vs)), f"fold {fold}: {name} differs"
    for key in ("history", "kept_epoch", "y_pred"):
        assert [f[key] for f in runs[0]["record"]["folds"]] == [f[key] for f in runs[1]["record"]["folds"]], key


def test_paper_protocol_keeps_the_best_test_fold_epoch_and_says_so(tmp_path):
    x, y = toy_data()
    run = train_toy_run(MODELS["TIMNET"], config(protocol="paper", epochs=4), x, y, str(tmp_path / "M"),
                         str(tmp_path / "R"))["record"]
    assert "SELECTS ON THE TEST FOLD" in run["protocol_description"]
    for fold in run["folds"]:
        accuracies = fold["history"]["val_accuracy"]
        assert fold["kept_epoch"] == int(np.argmax(accuracies)) + 1  # first best, strictly greater
        assert fold["war"] == pytest.approx(accuracies[fold["kept_epoch"] - 1])


def test_missing_fold_file_is_named(tmp_path):
    x, y = toy_data()
    model = build_model(MODELS["TIMNET"], (24, 39), 3, Hyper(dilation_size=3))
    for i in (1, 3):
        legacy_weights.save_legacy_weights(str(tmp_path / f"3-fold_weights_best_{i}.hdf5"), legacy_weight_groups(model))
    with pytest.raises(UserError, match="3-fold_weights_best_2.hdf5"):
        fold_weight_files(str(tmp_path))


@pytest.mark.parametrize("model", ["TIMNET", "GMTCN"])
def test_mixed_precision_trains_and_retests(tmp_path, model):
    """--mixed_precision: float16 compute with loss scaling; the saved weights are float32 and re-test the same."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        x, y = toy_data()
        run = train_toy_run(MODELS[model], config(model, mixed_precision=True, epochs=2), x, y,
                             str(tmp_path / "M"), str(tmp_path / "R"))["record"]
        folder = run["weights_folder"]
        arrays = [a for _, group in legacy_weights.read_weight_arrays(os.path.join(folder, "3-fold_weights_best_1.hdf5"))
                  for a in group]
        assert all(a.dtype == np.float32 for a in arrays)
        assert all(np.isfinite(loss) for fold in run["folds"] for loss in fold["history"]["loss"])
        retested = retest_toy_run(MODELS[model], config(model, mixed_precision=True), x, y, folder,
                                  str(tmp_path / "R"))["record"]
        assert [f["y_pred"] for f in retested["folds"]] == [f["y_pred"] for f in run["folds"]]
        built = build_model(MODELS[model], x.shape[1:], 3, Hyper(dilation_size=3))
        assert built.get_layer("dense").compute_dtype == "float32"  # the softmax stays in float32
        assert built.layers[1].compute_dtype == "float16"
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("model, cores, threads", [("TIMNET", 2, (2, 1)), ("TIMNET", 8, (2, 4)), ("GMTCN", 2, (2, 2)),
                                                   ("GMTCN", 1, (1, 1)), ("DCNN_BLSTMwA", 2, (1, 2))])
def test_threads_of_a_training_step(model, cores, threads):
    """(inter-op, intra-op): TIM-Net's two directions on a share of the cores each; GM-TCNet's two chains with every
    operation free to use all cores (its fused gated unit joins them); one chain on all cores."""
    assert MODELS[model].threads(cores) == threads
