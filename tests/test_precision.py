"""--mixed_precision: the bare flag (float16, as before it took a value) and ``bf16`` (Keras mixed_bfloat16): the
parse, the policy applied, a tiny bf16 run end to end (run.json, title, file names), runs recorded as true/false."""

import json
import os

import keras
import numpy as np
import pytest

from conftest import train_toy_run
from timnet_ser.cli import command_line, grid_file
from timnet_ser.Common_Model import Trainer, configure_run
from timnet_ser.core import precision
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.Model import MODELS, build_model
from timnet_ser.nn import legacy_weights
from timnet_ser.nn.flat_adam import FlatAdam
from timnet_ser.runs.run_folder import require_run


@pytest.fixture
def policy():
    """Restores Keras' global dtype policy after the test."""
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("argv, setting", [([], False), (["--mixed_precision"], True),
                                           (["--mixed_precision", "float16"], True),
                                           (["--mixed_precision", "bf16"], "bf16"),
                                           (["--mixed_precision", "--epoch", "2"], True)])
def test_the_flag_is_a_switch_that_takes_a_word(argv, setting):
    parsed = command_line.parse(argv)
    assert parsed.mixed_precision is setting or parsed.mixed_precision == setting and type(setting) is str
    assert ("mixed_precision" in parsed.given) == bool(argv)


def test_a_wrong_word_is_one_line_naming_the_flag():
    with pytest.raises(UserError, match=r"^--mixed_precision: choose one of float16, bf16 or the bare flag, not "
                                        r"'bf61' \(did you mean bf16\?\)$"):
        command_line.parse(["--mixed_precision", "bf61"])


@pytest.mark.parametrize("value", [True, "bf16", "float16"])
def test_the_training_api_passes_it_as_the_command_line(value):
    from timnet_ser.cli.training_api import _argv
    parsed = command_line.parse(_argv("EMODB", None, "GMTCN", {"mixed_precision": value}))
    assert parsed.mixed_precision == precision.WORDS.get(value, value)


def test_a_grid_file_sets_it_as_on_the_command_line():
    switches = grid_file._switches()
    assert grid_file.flag_argv("mixed_precision", "bf16", switches) == ["--mixed_precision", "bf16"]
    assert grid_file.flag_argv("mixed_precision", True, switches) == ["--mixed_precision"]
    assert grid_file.flag_argv("mixed_precision", False, switches) == []
    with pytest.raises(UserError, match=r'mixed_precision = "fp8": expected true or false or "float16" or "bf16"'):
        grid_file.flag_argv("mixed_precision", "fp8", switches, "g.toml")


def test_the_stacked_path_refuses_bf16_in_one_line():
    with pytest.raises(UserError, match=r"^--mixed_precision: the stacked path computes in one type; train sequentially$"):
        command_line.validate(command_line.parse(["--mode", "train", "--training", "stacked", "--mixed_precision", "bf16"]))


@pytest.mark.parametrize("setting, policy_name, compute", [(False, "float32", "float32"),
                                                           (True, "mixed_float16", "float16"),
                                                           ("bf16", "mixed_bfloat16", "bfloat16")])
def test_the_policy_is_applied_and_the_softmax_stays_float32(policy, setting, policy_name, compute):
    configure_run(MODELS["GMTCN"], setting)
    assert keras.config.dtype_policy().name == policy_name
    model = build_model(MODELS["GMTCN"], (24, 39), 3, Hyper())
    assert model.layers[1].compute_dtype == compute
    assert model.get_layer("dense").compute_dtype == "float32" and model.output.dtype == "float32"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}


def test_only_float16_scales_the_loss(policy):
    made, hyper = {}, Hyper(dilation_size=1)
    for setting in (True, "bf16"):
        keras.config.set_dtype_policy(precision.policy(setting))
        config = RunConfig(model="TIMNET", data="T", classes=list("abc"), feature_path="-", mixed_precision=setting,
                           hyper=hyper)
        made[setting] = Trainer(lambda: build_model(MODELS["TIMNET"], (16, 39), 3, hyper), config).optimizer
    assert isinstance(made[True], keras.optimizers.LossScaleOptimizer)
    assert isinstance(made["bf16"], FlatAdam)  # Keras' Adam in one update (nn/flat_adam.py)


def _toy(n: int):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    return rng.normal(size=(n, 16, 39)).astype("float32") + labels[:, None, None], np.eye(3, dtype="float32")[labels]


def test_a_bf16_run_trains_records_and_labels_it(tmp_path, policy, capsys):
    """One tiny epoch per fold in bf16 through the engine (TIM-Net; GM-TCNet's first step traces for a minute on
    the CI machine: docs/speed.md's 10-fold runs train it in bf16), its float32 weights, run.json and labels."""
    x, y = _toy(12)
    config = RunConfig(model="TIMNET", data="TOY", classes=list("abc"), feature_path="toy.npy", split_fold=2, epochs=1,
                       batch_size=8, hyper=Hyper(dilation_size=1), mixed_precision="bf16")
    configure_run(MODELS["TIMNET"], "bf16")
    record = train_toy_run(MODELS["TIMNET"], config, x, y, str(tmp_path / "M"), str(tmp_path / "R"))["record"]
    assert "MIXED PRECISION bfloat16" in capsys.readouterr().out.splitlines()[0]  # the run's header
    assert record["title"].endswith("MIXED PRECISION bfloat16") and record["config"]["mixed_precision"] == "bf16"
    assert all(np.isfinite(fold["history"]["loss"][0]) for fold in record["folds"])
    folder = record["weights_folder"]
    assert folder.endswith("TIMNET_mixed-bfloat16")
    saved = legacy_weights.read_weight_arrays(os.path.join(folder, "2-fold_weights_best_1.hdf5"))
    assert {array.dtype for _, group in saved for array in group} == {np.dtype("float32")}
    with open(os.path.join(folder, "run.json")) as f:
        assert json.load(f)["config"]["mixed_precision"] == "bf16"
    assert any(name.endswith("_mixed-bfloat16.json") for name in os.listdir(tmp_path / "R"))
    assert require_run(folder, "--test_path").config.mixed_precision == "bf16"
    # predict and the API compute as the run was tested (in float32 they disagreed with its recorded predictions),
    # whatever the global policy, which they leave as it was; an export computes in float32 and says so
    import timnet_ser
    from timnet_ser.deploy import export
    keras.config.set_dtype_policy("float32")
    run = timnet_ser.load_run(folder)
    assert keras.config.dtype_policy().name == "float32"
    assert run.model.get_layer("dense").dtype_policy.name == "float32"  # the softmax, as in training
    assert {layer.dtype_policy.name for layer in run.model.layers[1:-1]} == {"mixed_bfloat16"}
    for number, fold in enumerate(record["folds"], start=1):
        _, probabilities = run.fold_outputs(x[fold["test_rows"]], fold=number)
        assert probabilities[0].argmax(axis=1).tolist() == fold["y_pred"]
    sidecar = export.sidecar_for(run.spec, run.data, run.classes, run.signal_length, run.input_shape, [1, 2],
                                 run.folder, run.normalize, run.mixed_precision)
    assert sidecar["compute"].startswith("float32 (the run trained and was tested in mixed precision bfloat16")
    assert sidecar["signature"]["name"] == "serve"


@pytest.mark.parametrize("recorded, setting", [(True, True), (False, False)])
def test_runs_recorded_as_true_or_false_still_read(tmp_path, recorded, setting):
    folder = _run_folder_with(tmp_path, recorded)
    run = require_run(folder, "--test_path")
    assert run.config.mixed_precision is setting
    assert precision.policy(run.config.mixed_precision) == ("mixed_float16" if setting else "float32")
    typed = command_line.validate(command_line.parse(["--mode", "test", "--mixed_precision", "bf16"]))
    with pytest.raises(UserError, match=rf"^--mixed_precision bf16: the run in .* has {setting}; a run folder"):
        command_line.check_against_run(typed, run)


def test_a_damaged_value_in_run_json_is_named(tmp_path):
    folder = _run_folder_with(tmp_path, "bf61")
    with pytest.raises(UserError, match=r"run.json: damaged run file \('config.mixed_precision' must be true, false "
                                        r"or \"bf16\", it is \"bf61\"\)"):
        require_run(folder, "--test_path")


def _run_folder_with(tmp_path, mixed) -> str:
    """A run folder of 2 folds whose run.json records ``mixed_precision`` as ``mixed`` (no training)."""
    from timnet_ser.core.config import TrainingData
    from timnet_ser.data.feature_files import features_digest
    from timnet_ser.engine.cross_validation import start_run
    x = np.zeros((6, 16, 39), "float32")
    y = np.eye(3, dtype="float32")[np.arange(6) % 3]
    config = RunConfig(model="TIMNET", data="TOY", classes=list("abc"), feature_path="toy.npy", split_fold=2)
    info = TrainingData(signal_length=15 * 512, features="mfcc", input_shape=x.shape[1:], size=0,
                        sha256=features_digest(x, y), files=None)
    folder = start_run(config, info, x, None, str(tmp_path / "M"), str(tmp_path / "R")).path
    path = os.path.join(folder, "run.json")
    with open(path) as f:
        description = json.load(f)
    description["config"]["mixed_precision"] = mixed
    with open(path, "w") as f:
        json.dump(description, f)
    return folder
