"""--training stacked through the command line: the folds trained together give every fold the sequential run's
predictions and weights; it says how each fold was trained; where it cannot apply, it is refused in one line."""

import json
import os

import numpy as np
import pytest

from test_run_folder import only, toy_feature_file
from timnet_ser.main import main
from timnet_ser.nn import legacy_weights


@pytest.mark.parametrize("model, protocol, seeds, stack", [("TIMNET", "inner_val", "46", []),
                                                           ("GMTCN", "last_epoch", "46,47", ["--stack_members", "4"])])
def test_stacked_folds_equal_the_sequential_run(tmp_path, capsys, model, protocol, seeds, stack):
    """GM-TCNet: the 6 folds of two seeds in stacks of 4 and 2 (members of both seeds in the first stack). TIM-Net's
    grouped stack runs each member's blocks through the same kernels as a sequential fold (the fused ops where
    setup.sh built them), so both runs take the defaults."""
    features = toy_feature_file(tmp_path / "TOY.npy", n=30)
    read = ([] if model == "GMTCN" else ["--dilation_size", "2"]) + (  # only what the model and protocol read
        ["--val_fraction", "0.25"] if protocol == "inner_val" else [])
    for training in ("sequential", "stacked"):
        assert main(["--mode", "train", "--data", "TOY", "--model", model, "--feature_path", features,
                     "--split_fold", "3", "--epoch", "2", "--batch_size", "8", *read,
                     "--protocol", protocol, "--training", training,
                     "--random_seed", seeds, *(stack if training == "stacked" else []),
                     "--model_path", str(tmp_path / training), "--result_path", str(tmp_path / f"R_{training}")]) == 0
    out = capsys.readouterr().out
    assert ("training 6 folds stacked in stacks of 4" if stack else "training 3 folds stacked in one step") in out
    for seed in seeds.split(","):
        runs = {training: only(str(tmp_path / training), f"TOY_{seed}_") for training in ("sequential", "stacked")}
        for fold in (1, 2, 3):
            records = {}
            for training, folder in runs.items():
                with open(os.path.join(folder, f"3-fold_record_{fold}.json")) as f:
                    records[training] = json.load(f)
            assert records["stacked"]["training"] == "stacked" and records["sequential"]["training"] == "sequential"
            for key in ("y_pred", "kept_epoch", "validation_rows"):
                assert records["stacked"][key] == records["sequential"][key], key
            np.testing.assert_allclose(records["stacked"]["history"]["loss"],
                                       records["sequential"]["history"]["loss"], rtol=1e-5)
            a, b = (legacy_weights.read_weight_arrays(os.path.join(folder, f"3-fold_weights_best_{fold}.hdf5"))
                    for folder in runs.values())
            for (_, us), (_, vs) in zip(a, b):
                for u, v in zip(us, vs):
                    np.testing.assert_allclose(u, v, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--mode", "train", "--model", "DCNN_BLSTMwA", "--training", "stacked"], "--training stacked: trains TIMNET and GMTCN"),
    (["--mode", "train", "--stack_members", "4"], "--stack_members 4: a positive number of folds per stack, with "
                                                  "--training stacked"),
    (["--mode", "train", "--training", "stacked", "--stack_members", "0"], "--stack_members 0: a positive number"),
    (["--mode", "grid", "--grid", "any.toml", "--training", "stacked"], "--training stacked: a grid trains every fold"),
    (["--mode", "train", "--training", "stacked", "--activation", "tanh"],
     "--activation tanh: the stacked path trains ReLU blocks only"),
    (["--mode", "train", "--training", "stacked", "--xla"], "--xla: the stacked path is not compiled with XLA"),
])
def test_stacked_is_refused_where_it_cannot_train(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    ({"hyper": {"normalize": "utterance"}}, "--normalize utterance: the stacked path trains without"),
    ({"hyper": {"activation": "tanh"}}, "--activation tanh: the stacked path trains ReLU blocks only"),
    ({"xla": True}, "--xla: the stacked path is not compiled with XLA"),
])
def test_the_stacked_trainer_refuses_what_the_command_line_refuses(change, message):
    """The API's way in (engine/stacked_training.StackedTrainer) asks the same rule before it builds a member."""
    from dataclasses import replace

    from timnet_ser.core.config import Hyper, RunConfig
    from timnet_ser.core.errors import UserError
    from timnet_ser.engine.stacked_training import NETWORKS, StackedTrainer
    from timnet_ser.Model import MODELS
    assert set(NETWORKS) == {name for name, spec in MODELS.items() if spec.stacked}
    config = RunConfig("TIMNET", "TOY", ["a", "b"], "none.npy")
    config = replace(config, **{k: (Hyper(**v) if k == "hyper" else v) for k, v in change.items()})
    with pytest.raises(UserError, match=f"^{message}"):
        StackedTrainer(MODELS["TIMNET"], config, (20, 39), 2, [46])
