"""--label_smoothing_history cumulative: the labels of every fold equal, bit for bit, those of the original's
in-place smoothing loop; a run made with it says so everywhere and the report keeps it apart."""

import csv
import os

import numpy as np
import pytest
from sklearn.model_selection import KFold

from test_run_folder import toy_feature_file
from timnet_ser.engine.protocol import fold_labels
from timnet_ser.main import main


def original_smooth_labels(labels, factor=0.1):
    """TIM-Net_SER's smooth_labels (Common_Model.py before PR #14): in place on the array it is given."""
    labels *= (1 - factor)
    labels += (factor / labels.shape[1])
    return labels


def original_fold_loop(y, folds, factor):
    """The original's fold loop, reduced to its labels: ``y[train] = smooth_labels(y[train], 0.1)`` on the one
    label array, then ``fit(x[train], y[train], validation_data=(x[test], y[test]))``; the array each fold used."""
    y = y.copy()
    used = []
    for train, _ in folds:
        y[train] = original_smooth_labels(y[train], factor)
        used.append(y.copy())
    return used


@pytest.mark.parametrize("n, k, classes, seed", [(40, 4, 3, 0), (535, 10, 7, 46), (23, 5, 4, 2)])
def test_cumulative_labels_equal_the_original_loop_row_by_row(n, k, classes, seed):
    y = np.eye(classes, dtype=np.float32)[np.random.default_rng(seed).integers(0, classes, n)]
    folds = list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n)))
    for fold, expected in enumerate(original_fold_loop(y, folds, 0.1)):
        train, test = folds[fold]
        ours = fold_labels(y, folds, fold, train, 0.1, "cumulative")
        assert ours.dtype == expected.dtype and np.array_equal(ours, expected)  # training and validation rows
        # every row recurs: at fold k it was smoothed once per earlier or current fold that trained on it
        times = sum(np.isin(np.arange(n), t) for t, _ in folds[:fold + 1])
        np.testing.assert_allclose(ours, y * 0.9 ** times[:, None] + (1 - 0.9 ** times[:, None]) / classes,
                                   rtol=1e-6)
        assert np.array_equal(ours.argmax(1), y.argmax(1))  # accuracies and the paper's epoch choice unchanged
    assert times.max() == k - 1  # the last fold trains on rows smoothed k - 1 times


def test_per_fold_smooths_a_copy_of_the_fit_rows_once():
    y = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    folds = list(KFold(n_splits=3, shuffle=True, random_state=1).split(np.zeros(12)))
    for fold, (train, test) in enumerate(folds):
        ours = fold_labels(y, folds, fold, train, 0.1)
        np.testing.assert_array_equal(ours[train], y[train] * np.float32(0.9) + np.float32(0.1 / 3))
        np.testing.assert_array_equal(ours[test], y[test])


def test_a_cumulative_run_says_so_everywhere_and_stays_apart_in_the_report(tmp_path, capsys):
    features = toy_feature_file(tmp_path / "TOY.npy")
    common = ["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "3", "--epoch", "1",
              "--batch_size", "8", "--dilation_size", "2", "--model_path", str(tmp_path / "M"),
              "--result_path", str(tmp_path / "R")]
    assert main([*common, "--label_smoothing_history", "cumulative"]) == 0
    printed = capsys.readouterr().out
    assert "CUMULATIVE label smoothing" in printed
    [folder] = os.listdir(tmp_path / "M")
    assert folder.endswith("_TIMNET_cumulative-smoothing")
    named = [n for n in os.listdir(tmp_path / "R") if n.endswith((".json", ".xlsx", ".png"))]
    assert named and all("cumulative-smoothing" in n for n in named)
    assert main(common) == 0
    assert main(["--mode", "report", "--result_path", str(tmp_path / "R")]) == 0
    with open(tmp_path / "R" / "report.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["protocol"] for r in rows) == ["last_epoch", "last_epoch, cumulative smoothing"]
    assert all(r["runs"] == "1" for r in rows)


def test_cumulative_without_smoothing_is_refused(tmp_path, capsys):
    features = toy_feature_file(tmp_path / "TOY.npy")
    assert main(["--mode", "train", "--data", "TOY", "--model", "GMTCN", "--feature_path", features,
                 "--label_smoothing_history", "cumulative", "--model_path", str(tmp_path / "M")]) == 2
    assert "--label_smoothing_history cumulative: GMTCN trains without label smoothing" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "M")
