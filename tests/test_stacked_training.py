"""Stacked training (stacked_training.py) is the sequential training of every member, member by member.

In float64, where rounding cannot hide a wrong term, members trained together in either layout end with the
weights, histories and kept epochs of ``Common_Model.train_fold`` run fold after fold: with dropout (the same
masks), BatchNorm, inner_val's epoch selection, folds of different sizes whose last batches are short and whose
epochs have different numbers of steps, and stacks cut into chunks. In float32 a short run gives every fold the
sequential run's test-fold predictions: to 1e-6 in the grouped layout (the same operations on the same rows;
equal in our runs), to rounding in the batched one (batched products and sums over padded rows round
differently).
"""

import functools
from dataclasses import replace

import numpy as np
import pytest

from timnet_ser.Common_Model import Trainer, train_fold
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.engine import stacked_training
from timnet_ser.engine.protocol import make_folds
from timnet_ser.Model import MODELS, build_model, inference_function

FRAMES, CHANNELS, CLASSES = 24, 39, 4



def data(n: int):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, FRAMES, CHANNELS)).astype(np.float32)
    return x, np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, n)]


def tiny_config(model: str, **settings) -> RunConfig:
    return RunConfig(model=model, data="TINY", classes=list("abcd"), feature_path="-",
                     hyper=Hyper(filter_size=8, dilation_size=3, dropout=0.1), **settings)


def sequential(spec, config, x, y, folds):
    """(weights, train_fold record) of every fold, trained one after the other as the engine does."""
    trainer = Trainer(lambda: build_model(spec, x.shape[1:], y.shape[1], config.hyper), config)
    out = []
    for fold in range(len(folds)):
        record = train_fold(trainer, x, y, folds, fold, config, f"[sequential fold {fold + 1}]")
        out.append((trainer.get_weights(), record))
    return out, trainer.model


def stacked(spec, config, x, y, folds, max_members=None, layout=None):
    plans = [stacked_training.plan_member(config, x, y, folds, fold, f"[stacked fold {fold + 1}]")
             for fold in range(len(folds))]
    return plans, list(stacked_training.train_members(spec, config, x, plans, max_members, layout))


# fit rows 31, 36, 24, 27 (inner_val keeps 90 %): batches of 4 end short, and the members' epochs take 8, 9, 6 and
# 7 steps, so members sit out the last steps of the longest one
UNEVEN_FOLDS = [(np.arange(0, 35), np.arange(35, 44)), (np.arange(4, 44), np.arange(0, 4)),
                (np.arange(0, 27), np.arange(27, 44)), (np.arange(14, 44), np.arange(0, 14))]


def uneven_config(model: str) -> RunConfig:
    return tiny_config(model, epochs=2, batch_size=4, protocol="inner_val", val_fraction=0.1)


@functools.cache
def sequential_float64(model: str):
    """The sequential folds of ``model`` on UNEVEN_FOLDS, computed once for both layouts (under ``float64``)."""
    x, y = data(44)
    expected, reference_model = sequential(MODELS[model], uneven_config(model), x, y, UNEVEN_FOLDS)
    return expected, [v.path for v in reference_model.variables]


@pytest.mark.parametrize("model, layout, max_members", [("TIMNET", "batched", 2), ("TIMNET", "grouped", None),
                                                        ("GMTCN", "batched", None), ("GMTCN", "grouped", 2)])
def test_stacked_members_train_as_the_sequential_folds_float64(float64, model, layout, max_members):
    x, y = data(44)
    expected, names = sequential_float64(model)
    plans, results = stacked(MODELS[model], uneven_config(model), x, y, UNEVEN_FOLDS, max_members, layout)
    assert len({-(-len(p.fit_rows) // 4) for p in plans}) > 1  # the members' epochs differ in steps
    assert any(len(p.fit_rows) % 4 for p in plans)  # and some last batches are short
    for (weights, record), result in zip(expected, results):
        assert result.kept_epoch == record["kept_epoch"]
        assert set(result.history) == set(record["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        for key, values in record["history"].items():
            np.testing.assert_allclose(result.history[key], values, rtol=0, atol=1e-10, err_msg=key)
        assert len(result.weights) == len(weights)
        for name, got, want in zip(names, result.weights, weights):
            assert got.shape == want.shape and got.dtype == want.dtype, name
            # relative to the variable's scale (at least 1): conv biases before a BatchNorm get gradients of
            # pure rounding (~1e-19), which Adam turns into steps of ~1e-14 that differ between any two graphs
            scale = max(np.abs(want).max(), 1.0)
            assert np.abs(got - want).max() <= 1e-10 * scale, name


def test_stacked_run_gives_each_fold_the_sequential_predictions_float32():
    x, y = data(45)
    folds = make_folds(len(x), 3, seed=7)
    config = tiny_config("TIMNET", epochs=2, batch_size=8, random_seed=7)
    spec = MODELS["TIMNET"]
    expected, model = sequential(spec, config, x, y, folds)

    def predictions(weights, rows):  # as the engine will use a member: its values loaded into a normal Keras model
        for variable, value in zip(model.variables, weights):
            variable.assign(value)
        return inference_function(model, config.fused_kernels)(x[rows])

    grouped = stacked(spec, config, x, y, folds, layout="grouped")[1]
    batched = stacked(spec, config, x, y, folds, layout="batched")[1]
    for (weights, _), same, close, (_, test_idx) in zip(expected, grouped, batched, folds):
        want = predictions(weights, test_idx)
        # the same operations on the same rows: equal in our runs, but threads may sum in another order (1 ulp)
        assert np.abs(predictions(same.weights, test_idx) - want).max() <= 1e-6
        got = predictions(close.weights, test_idx)
        assert np.abs(got - want).max() < 1e-5  # float32 rounding of two orders of summation, two epochs
        top_two = np.sort(want, axis=1)[:, -2:]
        clear = top_two[:, 1] - top_two[:, 0] > 1e-5  # rows whose winner rounding cannot swap
        assert clear.any()
        np.testing.assert_array_equal(got.argmax(1)[clear], want.argmax(1)[clear])


@pytest.mark.parametrize("setting, change", [("model", "DCNN_BLSTMwA"), ("mixed_precision", True), ("xla", True),
                                             ("augment", 1), ("max_members", 0)])
def test_what_the_stacked_path_refuses(setting, change):
    x, y = data(12)
    folds = make_folds(len(x), 2, seed=1)
    config = tiny_config("TIMNET", epochs=1, batch_size=4)
    spec, max_members = MODELS["TIMNET"], None
    if setting == "model":
        spec = MODELS[change]
    elif setting == "max_members":
        max_members = change
    else:
        config = replace(config, **{setting: change})
    with pytest.raises(UserError, match={"model": "DCNN_BLSTMwA", "max_members": "--stack_members 0"}.get(setting,
                                                                                                      setting)):
        stacked(spec, config, x, y, folds, max_members)
