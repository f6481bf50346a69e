"""timnet_ser.train: the command line's flags as keywords, its checks and one-line errors, its engine; returns the
run loaded."""

import gc
import json
import os

import numpy as np
import pytest

import timnet_ser
from timnet_ser.core.errors import UserError
from timnet_ser.data import features, synthetic_corpus
from timnet_ser.data.feature_files import save_features

CLASSES = list(synthetic_corpus.CORPUS.classes)
LENGTH = 32 * 512  # 33 MFCC frames


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory):
    """A dataset of its own: 6 synthetic utterances per class, 3 speakers."""
    signals = [synthetic_corpus.utterance(c, np.random.default_rng([2, i, k])) for i, c in enumerate(CLASSES)
               for k in range(6)]
    path = str(tmp_path_factory.mktemp("api") / "TOYAPI.npy")
    save_features(path, {"x": np.stack([features.signal_features(s, LENGTH) for s in signals]),
                         "y": np.eye(len(CLASSES), dtype="float32")[np.repeat(np.arange(len(CLASSES)), 6)],
                         "classes": np.array(CLASSES), "signal_length": LENGTH, "features": "mfcc",
                         "speakers": np.array([f"p{k % 3}" for k in range(6 * len(CLASSES))])})
    return path


def test_train_returns_the_run_as_the_command_line_trains_it(feature_file, tmp_path):
    assert gc.get_freeze_count() == 0
    run = timnet_ser.train(data="TOYAPI", feature_path=feature_file, model="TIMNET", epoch=1, split_fold=2,
                           batch_size=8, filter_size=8, dilation_size=2, random_seed=5, normalize="corpus",
                           balance=True, model_path=str(tmp_path / "Models"), result_path=str(tmp_path / "Results"))
    assert isinstance(run, timnet_ser.Run) and run.classes == CLASSES and len(run.folds) == 2
    assert gc.get_freeze_count() == 0  # the caller's collector as it was (only the command line freezes it)
    with open(os.path.join(run.folder, "run.json")) as f:
        config = json.load(f)["config"]
    assert (config["epochs"], config["split_fold"], config["random_seed"], config["balance"]) == (1, 2, 5, True)
    assert config["hyper"]["normalize"] == "corpus" and config["hyper"]["filter_size"] == 8
    assert run.model.get_layer("corpus_normalization") is not None
    signal = synthetic_corpus.utterance("happy", np.random.default_rng(9))
    assert run.predict((signal, synthetic_corpus.SAMPLE_RATE))[0]["label"] in CLASSES
    listed = timnet_ser.train(data="TOYAPI", feature_path=feature_file, epoch=1, split_fold=2, batch_size=8,
                              filter_size=8, dilation_size=2, random_seed=(6,), model_path=str(tmp_path / "Models"),
                              result_path=str(tmp_path / "Results"))
    assert isinstance(listed, list) and len(listed) == 1  # a list of one seed gave a Run, not a list of one


def test_resume_continues_a_run_of_another_corpus_and_model(feature_file, tmp_path):
    """resume= takes the corpus and model from the run's run.json: train() typed --data EMODB --model TIMNET
    before, which every other run refused."""
    run = timnet_ser.train(data="TOYAPI", feature_path=feature_file, model="GMTCN", epoch=1, split_fold=2,
                           batch_size=8, filter_size=8, model_path=str(tmp_path / "M"), result_path=str(tmp_path / "R"))
    os.remove(os.path.join(run.folder, "2-fold_record_2.json"))  # as if stopped after its first fold
    resumed = timnet_ser.train(resume=run.folder)
    assert resumed.folder == run.folder and resumed.model_name == "GMTCN" and len(resumed.folds) == 2
    assert os.path.isfile(os.path.join(run.folder, "2-fold_record_2.json"))
    assert timnet_ser.train(resume=run.folder).folder == run.folder  # complete: loaded as it is
    with pytest.raises(UserError, match=r"^--model TIMNET: the run in .* has GMTCN"):
        timnet_ser.train(resume=run.folder, model="TIMNET")


def test_ctrl_c_raises_the_lines_that_say_how_to_continue(feature_file, tmp_path, monkeypatch):
    """In a notebook, a stop of train() raises TrainingInterrupted; its text is the command line's (it was empty)."""
    from timnet_ser.core.errors import TrainingInterrupted
    from timnet_ser.engine import cross_validation
    train_and_save_fold = cross_validation.train_and_save_fold

    def second_fold_stopped(*args, **kwargs):
        if args[5] == 1:
            raise KeyboardInterrupt
        return train_and_save_fold(*args, **kwargs)
    monkeypatch.setattr(cross_validation, "train_and_save_fold", second_fold_stopped)
    with pytest.raises(TrainingInterrupted) as stop:
        timnet_ser.train(data="TOYAPI", feature_path=feature_file, epoch=1, split_fold=2, batch_size=8, filter_size=8,
                         dilation_size=2, model_path=str(tmp_path / "M"), result_path=str(tmp_path / "R"))
    [folder] = [str(path) for path in (tmp_path / "M").iterdir()]
    first, command = str(stop.value).splitlines()
    assert first == f"interrupted: finished folds (1 of 2) are saved in {folder}; continue with:"
    assert command.endswith(f"main.py --mode train --resume {folder}")


@pytest.mark.parametrize("flags, message", [
    ({"epoch": -1}, "--epoch -1: must be positive"),
    ({"epochs": 2}, "unknown flag --epochs (did you mean --epoch?)"),
    ({"normalize": "speakers"}, "--normalize 'speakers': choose one of none, utterance, speaker, corpus"),
    ({"model": "DCNN_BLSTMwA", "normalize": "corpus"}, "--normalize corpus: standardises MFCC coefficients"),
    ({"mode": "test"}, "mode='test': train() trains; load_run(folder) tests, predicts and exports"),
    # a keyword of a type its flag cannot take: a stray word for the parser, or a TypeError, before
    ({"balance": "yes"}, "balance='yes': a switch, True or False"),
    ({"normalize": True}, "normalize=True: takes a value, not True or False"),
    ({"data": 5}, "data=5: give a name, a str"),
    ({"feature_path": 5}, "feature_path=5: give the path of a feature file"),
])
def test_a_wrong_argument_is_the_command_lines_one_line(flags, message, tmp_path):
    with pytest.raises(UserError) as caught:
        timnet_ser.train(**{"data": "TOYAPI", "feature_path": str(tmp_path / "none.npy"),
                            "model_path": str(tmp_path / "M"), **flags})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not os.path.exists(tmp_path / "M")
