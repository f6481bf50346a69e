"""Honest model selection (inner_val) and speaker-independent folds."""

import os
from dataclasses import replace

import numpy as np
import pytest

from conftest import train_toy_run
from test_engine import toy_data
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.engine.protocol import FoldPlan, make_folds, train_epochs, validation_rows
from timnet_ser.Model import MODELS


def test_inner_val_never_touches_the_test_fold():
    x, y = toy_data(60)
    config = RunConfig(model="TIMNET", data="TOY", classes=list("abc"), feature_path="-", protocol="inner_val",
                       val_fraction=0.2)
    for train_idx, test_idx in make_folds(60, 5, 1):
        fit, val = validation_rows(config, train_idx, test_idx, y, 3)
        assert set(fit) | set(val) == set(train_idx) and not set(fit) & set(val)
        assert not set(val) & set(test_idx)
        assert len(val) == int(np.ceil(0.2 * len(train_idx)))
        # stratified: every class keeps its share of the training fold in the validation rows (to one utterance)
        expected = np.bincount(y[train_idx].argmax(1)) * len(val) / len(train_idx)
        assert np.abs(np.bincount(y[val].argmax(1), minlength=3) - expected).max() <= 1
    paper = RunConfig(model="TIMNET", data="TOY", classes=list("abc"), feature_path="-", protocol="paper")
    train_idx, test_idx = make_folds(60, 5, 1)[0]
    assert validation_rows(paper, train_idx, test_idx, y, 3)[1] is test_idx  # the paper protocol, by its name


def test_inner_val_run_keeps_the_best_validation_epoch(tmp_path):
    x, y = toy_data()
    config = RunConfig(model="TIMNET", data="TOY", classes=list("abc"), feature_path="-", split_fold=3, epochs=4,
                       batch_size=8, protocol="inner_val", val_fraction=0.25, hyper=Hyper(dilation_size=3))
    record = train_toy_run(MODELS["TIMNET"], config, x, y, str(tmp_path / "M"), str(tmp_path / "R"))["record"]
    assert record["protocol"] == "inner_val" and "used once, after training" in record["protocol_description"]
    for fold in record["folds"]:
        assert fold["kept_epoch"] == int(np.argmax(fold["history"]["val_accuracy"])) + 1
        assert not set(fold["validation_rows"]) & set(fold["test_rows"])


def test_speaker_folds_hold_out_whole_speakers():
    speakers = [f"s{i % 5}" for i in range(50)]
    loso = make_folds(50, 5, 46, speakers)
    assert sorted(sorted({speakers[i] for i in test}) for _, test in loso) == [[f"s{i}"] for i in range(5)]
    for train, test in make_folds(50, 2, 46, speakers):
        assert not {speakers[i] for i in train} & {speakers[i] for i in test}
    with pytest.raises(UserError, match="--split_fold 6: --cv speaker needs between 2 and the number of speakers"):
        make_folds(50, 6, 46, speakers)


@pytest.mark.parametrize("fraction, message", [
    ("0", "--val_fraction 0: --protocol inner_val chooses each fold's epoch on that share of its training rows"),
    ("0.99", "--val_fraction 0.99: --protocol inner_val would hold out 26 of a training fold's 26 rows"),
])
def test_a_validation_share_that_leaves_nothing_is_one_line_and_no_run_folder(tmp_path, capsys, fraction, message):
    """inner_val on 3 folds of 40 rows (26 or 27 training rows a fold): no share held out, or nothing left to fit."""
    from test_run_folder import toy_feature_file
    from timnet_ser.main import main
    features = toy_feature_file(tmp_path / "TOY.npy")
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "3", "--epoch", "1",
                 "--protocol", "inner_val", "--val_fraction", fraction, "--model_path", str(tmp_path / "M"),
                 "--result_path", str(tmp_path / "R")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "M").exists() or not os.listdir(tmp_path / "M")  # no run folder left behind


def test_a_validation_share_smaller_than_the_classes_is_warned_of(capsys):
    """--val_fraction 0.01 of a few hundred rows held out 3-5 utterances of 7 classes, and chose every fold's epoch on
    them without a word."""
    from timnet_ser.engine.protocol import check_validation_split
    config = RunConfig(model="TIMNET", data="TOY", classes=list("abcdefg"), feature_path="-", protocol="inner_val",
                       val_fraction=0.01)
    folds = make_folds(535, 10, 46)  # EMO-DB's size: 481 or 482 training rows a fold, 5 of them held out
    check_validation_split(config, folds)
    assert capsys.readouterr().err == (
        "warning: --val_fraction 0.01 holds out 5 row(s) of a training fold, fewer than its 7 classes: some classes "
        "are missing from it, and each fold's epoch is chosen on the accuracy of a handful of utterances\n")
    check_validation_split(replace(config, val_fraction=0.1), folds)  # 49 rows: no warning
    assert capsys.readouterr().err == ""


def test_speaker_groups_change_with_the_seed_and_stay_whole():
    """Unshuffled GroupKFold gave every seed the same speaker folds, which the report took for resampled splits."""
    speakers = [f"s{i % 6}" for i in range(60)]
    groupings = set()
    for seed in (1, 2, 3, 4):
        folds = make_folds(60, 3, seed, speakers)
        tested = [frozenset(speakers[i] for i in test) for _, test in folds]
        assert sorted(len(t) for t in tested) == [2, 2, 2] and frozenset().union(*tested) == set(speakers)
        for train, test in folds:
            assert not {speakers[i] for i in train} & {speakers[i] for i in test}
        groupings.add(frozenset(tested))
        assert make_folds(60, 3, seed, speakers)[0][1].tolist() == folds[0][1].tolist()  # the seed repeats it
    assert len(groupings) > 1
    loso = [test.tolist() for _, test in make_folds(60, 6, 1, speakers)]  # one grouping: its order kept
    assert loso == [test.tolist() for _, test in make_folds(60, 6, 2, speakers)]


def test_a_fold_count_one_corpus_cannot_take_names_that_corpus():
    corpora = np.array([0] * 40 + [1] * 3)
    with pytest.raises(UserError, match=r"^--split_fold 5: must be between 2 and the number of samples \(3\): in "
                                        r"corpus 2 of the 2 of --data, which is split into the folds on its own$"):
        make_folds(43, 5, 1, corpora=corpora)


def test_only_timnets_last_epoch_names_timnets_code():
    from timnet_ser.engine.protocol import protocol_description
    for model, note in (("TIMNET", True), ("GMTCN", False), ("DCNN_BLSTMwA", False)):
        config = RunConfig(model=model, data="TOY", classes=list("abc"), feature_path="-")
        assert ("TIM-Net's code since Aug 2023" in protocol_description(config)) is note


def test_every_protocol_the_flag_takes_has_its_description_and_no_other():
    """The names live in core/config.PROTOCOL_NAMES (the flag's choices); the engine describes each of them."""
    from timnet_ser.core.config import PROTOCOL_NAMES
    from timnet_ser.core.flags import BY_NAME
    from timnet_ser.engine.protocol import PROTOCOLS
    assert BY_NAME["protocol"].choices == PROTOCOL_NAMES and set(PROTOCOLS) == set(PROTOCOL_NAMES)
    from timnet_ser.engine.retest import WEIGHTS_CHOSEN  # a re-test's protocol line says what chose the weights
    assert set(WEIGHTS_CHOSEN) == set(PROTOCOL_NAMES)


def _plans(count, monitored):
    labels = np.eye(2)[[0, 1, 0, 1]]
    return [FoldPlan(seed, None, None, np.arange(2), np.arange(2, 4) if monitored else None, labels,
                     np.random.default_rng(seed)) for seed in range(count)]


def test_the_epoch_loop_keeps_each_folds_first_best_epoch_and_its_weights(capsys):
    """The loop both trainers share: fold 0's monitored accuracy 0.5, 1, 1, 0.5 keeps epoch 2 (strictly better, not
    the later tie), fold 1's 0, 0, 0.5, 1 keeps epoch 4; the weights kept are those of that epoch."""
    config = RunConfig(model="TIMNET", data="TOY", classes=list("ab"), feature_path="-", epochs=4, protocol="inner_val")
    right, wrong = np.eye(2)[[0, 1]], np.eye(2)[[1, 0]]
    half = np.eye(2)[[0, 0]]
    scores = {0: [half, right, right, half], 1: [wrong, wrong, half, right]}
    epoch = {"n": 0}

    def train_epoch(orders):
        epoch["n"] += 1
        return [(1.0, 0.5)] * len(orders)

    kept = train_epochs(config, "[toy]", _plans(2, True), train_epoch,
                        lambda rows: [scores[i][epoch["n"] - 1] for i in range(2)],
                        lambda: [[np.full(1, epoch["n"])], [np.full(1, -epoch["n"])]])
    assert [k.epoch for k in kept] == [2, 4]
    assert [k.weights[0][0] for k in kept] == [2, -4]
    assert kept[0].history["val_accuracy"] == [0.5, 1.0, 1.0, 0.5] and len(kept[1].history["loss"]) == 4
    assert "[toy] epoch 4/4  loss 1.0000  acc 0.5000  val_loss" in capsys.readouterr().err


@pytest.mark.parametrize("diverged", [(True, True), (True, False)])
def test_the_epoch_loop_stops_once_every_fold_diverged(diverged):
    """last_epoch: NaN weights stay NaN, so the loop stops after the epoch where every fold's loss and weights are
    not finite (a stack's other members train on while one is finite)."""
    config = RunConfig(model="TIMNET", data="TOY", classes=list("ab"), feature_path="-", epochs=5,
                       protocol="last_epoch")
    calls = []

    def train_epoch(orders):
        calls.append(len(orders))
        return [(np.nan if bad else 0.5, 0.5) for bad in diverged]

    kept = train_epochs(config, "[toy]", _plans(2, False), train_epoch, None,
                        lambda: [[np.full(1, np.nan if bad else 1.0)] for bad in diverged])
    assert len(calls) == (1 if all(diverged) else 5)
    assert [k.epoch for k in kept] == [5, 5] and all(k.weights is None for k in kept)
