"""Weights without run.json read as another model than theirs (the authors' TIM-Net folder with model='GMTCN'): one
line naming the model setting, as the API's argument or the command line's flag, and the model they fit; before,
a weights file and a layer count, as if the file were damaged."""

import os
import re

import pytest

import timnet_ser
from conftest import SPEECH_WAV
from timnet_ser.core.config import Hyper
from timnet_ser.core.errors import UserError
from timnet_ser.main import main


@pytest.fixture(scope="module")
def emodb46(shared) -> str:
    return os.path.join(shared, "reference", "Test_Models", "EMODB_46")


@pytest.mark.parametrize("model", ["GMTCN", "DCNN_BLSTMwA"])
def test_the_api_names_model_and_the_model_the_weights_are(emodb46, model):
    with pytest.raises(UserError) as error:
        timnet_ser.load_run(emodb46, data="EMODB", model=model)
    assert str(error.value) == (f"model={model!r}: the weights in {emodb46} are not {model}'s, they are TIMNET's; "
                                "give model='TIMNET'")


def test_weights_that_fit_no_model_as_given_say_so(emodb46):
    """Another block count fits no network here: the model is not said to be wrong, nor another named."""
    with pytest.raises(UserError, match=f"^model='TIMNET': the weights in {re.escape(emodb46)} fit neither TIMNET "
                                        r"with these hyper-parameters nor another model \(10-fold_weights_best_1.hdf5 "
                                        r"holds 68 layers with weights, the model has 52 .*\)$"):
        timnet_ser.load_run(emodb46, data="EMODB", model="TIMNET", hyper=Hyper(dilation_size=6))


@pytest.mark.parametrize("mode", [["--mode", "predict", "--wav", SPEECH_WAV],
                                  ["--mode", "export", "--format", "onnx", "--output", "m.onnx"],
                                  ["--mode", "test", "--feature_path", "EMODB_2s.npy", "--result_path", "r"]])
def test_the_command_line_names_model_and_the_model_the_weights_are(emodb46, shared, tmp_path, capsys, monkeypatch,
                                                                    mode):
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(shared, "reference", "EMODB_2s.npy"), "EMODB_2s.npy")
    assert main(["--data", "EMODB", "--test_path", emodb46, "--model", "GMTCN", *mode]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: --model GMTCN: the weights in {emodb46} are not GMTCN's, they are TIMNET's; give "
                       "--model TIMNET"), err
    assert sorted(os.listdir(tmp_path)) in (["EMODB_2s.npy"], ["EMODB_2s.npy", "r"])  # no model written


def test_fine_tuning_from_them_names_model_and_the_model_they_are(emodb46, shared, tmp_path, capsys):
    """--init_from the authors' TIM-Net folder with --model GMTCN: refused before any folder is made, naming --model
    (it named a weights file and its layer count)."""
    import numpy as np
    emodb = np.load(os.path.join(shared, "reference", "EMODB_2s.npy"), allow_pickle=True).item()
    classes = np.array(["angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"])
    np.save(tmp_path / "TOY.npy", {"x": emodb["x"][:40], "y": emodb["y"][:40], "classes": classes,
                                   "signal_length": np.int64(96000)}, allow_pickle=True)
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", str(tmp_path / "TOY.npy"), "--init_from",
                 emodb46, "--model", "GMTCN", "--epoch", "1", "--split_fold", "2", "--model_path",
                 str(tmp_path / "M"), "--result_path", str(tmp_path / "R")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --model GMTCN: the weights in {os.path.abspath(emodb46)} are not GMTCN's, they are TIMNET's; give "
        "--model TIMNET")  # the source folder as fine-tuning records it: absolute
    assert not os.path.exists(tmp_path / "M")
