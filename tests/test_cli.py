"""main.py: the published-weights re-test against the authors' numbers, and one-line errors for bad input."""

import csv
import gc
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import CODE
from timnet_ser.main import main, process_main
from timnet_ser.runs import report, results


def reference(shared, *parts):
    return os.path.join(shared, "reference", *parts)


def test_retest_of_published_emodb_weights_prints_the_authors_numbers(shared, tmp_path, capsys):
    code = main(["--mode", "test", "--data", "EMODB", "--random_seed", "46",
                 "--test_path", reference(shared, "Test_Models", "EMODB_46"),
                 "--feature_path", reference(shared, "EMODB_2s.npy"), "--result_path", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    with open(reference(shared, "golden_timnet_emodb46.json")) as f:
        golden = json.load(f)
    [result_json] = [p for p in os.listdir(tmp_path) if p.endswith(".json")]
    assert result_json.startswith("EMODB_10fold_80.92_46_") and "TIMNET_test" in result_json
    with open(tmp_path / result_json) as f:
        record = json.load(f)
    np.testing.assert_allclose([f["war"] for f in record["folds"]], golden["fold_war"], atol=5e-7)
    np.testing.assert_allclose([f["uar"] for f in record["folds"]], golden["fold_uar"], atol=5e-7)
    summary = record["summary"]
    for key in ("war_mean_of_folds", "uar_mean_of_folds", "uar_pooled", "war_pooled"):
        assert summary[key] == pytest.approx(golden[key], abs=5e-7), key
    for printed in ("80.92", "79.41", "79.46"):
        assert printed in out
    assert {".xlsx", ".json"} <= {os.path.splitext(p)[1] for p in os.listdir(tmp_path)}
    # the published weights were selected on the test fold (the paper protocol): every output says so
    assert result_json.endswith("_TIMNET_test_paper.json") and record["config"]["protocol"] == "paper"
    assert "seed 46, test, weights SELECTED ON THE TEST FOLD" in out and "an optimistic figure" in out
    # nothing records the features the authors trained on (their MFCC/EMODB.npy of the full-length corpus, 95.70 %):
    # every output says these were not checked against them, the figures unchanged
    said = results.features_not_checked("EMODB")
    assert out.splitlines()[0].endswith(f"SELECTED ON THE TEST FOLD, {results.FEATURES_NOT_CHECKED}")
    assert [line for line in out.splitlines() if line.startswith("protocol: ")][0].endswith(f"; {said}")
    assert record["title"] == out.splitlines()[0] and record["protocol_description"].endswith(f"; {said}")
    assert record["retest"] == {"split": "own", "features": "unchecked", "label": ""}
    report.write_report(str(tmp_path))
    assert f"- TIMNET, test of EMODB_46, paper (SELECTED ON THE TEST FOLD) on EMODB EMODB_2s.npy: {said}" in \
        capsys.readouterr().out
    with open(tmp_path / "report.csv") as f:
        [row] = csv.DictReader(f)
    assert json.loads(row["note keys"]) == ["selected_on_test_fold", "features_not_checked"]
    assert row["published UAR %"] == row["published WAR %"] == "–"


def test_the_authors_weights_on_another_split_say_both_the_split_and_the_unchecked_features(shared, tmp_path, capsys):
    assert main(["--mode", "test", "--random_seed", "47", "--retest_other_split", "--test_path",
                 reference(shared, "Test_Models", "EMODB_46"), "--feature_path", reference(shared, "EMODB_2s.npy"),
                 "--result_path", str(tmp_path)]) == 0
    [title] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("TIMNET on EMODB")]
    assert "OTHER SPLIT (seed 47, 10-fold kfold)" in title and title.endswith(f", {results.FEATURES_NOT_CHECKED}")
    [name] = [p for p in os.listdir(tmp_path) if p.endswith(".json")]
    with open(tmp_path / name) as f:
        record = json.load(f)
    assert name.endswith("_test_paper_other-split.json")  # the file name as before: no suffix for the features
    assert record["retest"]["split"] == "other" and record["retest"]["features"] == "unchecked"
    assert record["protocol_description"].endswith(f"; {results.features_not_checked('EMODB')}")


def test_a_folder_not_named_as_the_published_ones_is_not_said_to_select_on_the_test_fold(shared, tmp_path, capsys):
    """The original's own Models/<KEY>_<seed>_<time> (TIM-Net's code since Aug 2023 keeps the last epoch): nothing
    says how its epochs were chosen, so no claim is made either way."""
    own = shutil.copytree(reference(shared, "Test_Models", "EMODB_46"), tmp_path / "EMODB_46_2023-09-01_10-00-00")
    assert main(["--mode", "test", "--data", "EMODB", "--random_seed", "46", "--test_path", str(own),
                 "--feature_path", reference(shared, "EMODB_2s.npy"), "--result_path", str(tmp_path / "R")]) == 0
    out = capsys.readouterr().out
    assert "SELECTED ON THE TEST FOLD" not in out and "optimistic" not in out
    assert results.features_not_checked("EMODB") in out  # nor its features, as for the published folders
    # nor the flag's default as a fact (it read "each fold's weights are those of its last epoch")
    assert "; nothing records what chose each fold's weights (a folder without run.json" in out
    assert "those of its last epoch" not in out
    [result_json] = [p for p in os.listdir(tmp_path / "R") if p.endswith(".json")]
    assert result_json.endswith("_TIMNET_test.json")
    # recorded as unknown (it recorded the flag's default, last_epoch), and the report's row says so
    with open(tmp_path / "R" / result_json) as f:
        record = json.load(f)
    assert record["config"]["protocol"] == "unknown"
    # the report reads the record back (its checks took "unknown" for a damaged file) and names the row so
    report.write_report(str(tmp_path / "R"))
    with open(tmp_path / "R" / "report.csv") as f:
        assert [row["protocol"] for row in csv.DictReader(f)] == [
            "test of EMODB_46_2023-09-01_10-00-00, weights' choice unknown"]


def run_cli(*args):
    """main.py in a real process: exit status and stderr lines."""
    done = subprocess.run([sys.executable, os.path.join(CODE, "main.py"), *args], capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}, timeout=300)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


def test_help_explains_every_flag():
    done = subprocess.run([sys.executable, os.path.join(CODE, "main.py"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for flag in ("--mode", "--data", "--split_fold", "--random_seed", "--epoch", "--batch_size", "--lr", "--beta1",
                 "--beta2", "--dropout", "--activation", "--filter_size", "--dilation_size", "--kernel_size",
                 "--stack_size", "--model_path", "--result_path", "--test_path", "--gpu", "--feature_path",
                 "--protocol", "--model"):
        assert flag in done.stdout


def test_unknown_corpus_is_one_line():
    code, err = run_cli("--data", "FOO")
    assert code == 2 and len(err) == 1 and "--data 'FOO'" in err[0] and "EMODB" in err[0]


@pytest.mark.parametrize("args, expected", [
    (["--batch_size", "0"], "--batch_size 0"),
    (["--epoch", "-3"], "--epoch -3"),
    (["--split_fold", "1"], "--split_fold 1"),
    (["--model", "RNN"], "--model 'RNN'"),
    (["--dropout", "1.5"], "--dropout 1.5"),
])
def test_impossible_flags_name_themselves(args, expected, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_missing_feature_file_says_how_to_make_it(tmp_path, capsys):
    missing = str(tmp_path / "EMODB.npy")
    assert main(["--mode", "train", "--feature_path", missing]) == 2
    err = capsys.readouterr().err.strip()
    assert missing in err and "--mode extract" in err and "\n" not in err


def test_feature_file_of_another_corpus_is_refused(shared, capsys):
    assert main(["--mode", "train", "--data", "CASIA", "--feature_path", reference(shared, "EMODB_2s.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "EMODB_2s.npy" in err and "7" in err and "6" in err and "\n" not in err


def test_split_fold_larger_than_the_corpus(shared, tmp_path, capsys):
    assert main(["--mode", "test", "--split_fold", "1000", "--feature_path", reference(shared, "EMODB_2s.npy"),
                 "--test_path", reference(shared, "Test_Models", "EMODB_46"), "--result_path", str(tmp_path)]) == 2
    assert "--split_fold 1000" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_weights_of_another_class_count_name_the_layer(shared, tmp_path, capsys):
    x = np.load(reference(shared, "EMODB_2s.npy"), allow_pickle=True).item()["x"][:60]
    y = np.eye(6, dtype="float32")[np.arange(60) % 6]
    fake = tmp_path / "CASIA.npy"
    np.save(fake, {"x": x, "y": y})
    weights = tmp_path / "weights"  # named EMODB_46, the folder says EMODB: --data CASIA is refused by its name
    shutil.copytree(reference(shared, "Test_Models", "EMODB_46"), weights)
    assert main(["--mode", "test", "--data", "CASIA", "--feature_path", str(fake), "--random_seed", "46",
                 "--test_path", str(weights), "--result_path", str(tmp_path / "R")]) == 2
    err = capsys.readouterr().err.strip()
    assert "dense" in err and "(39, 7)" in err and "(39, 6)" in err
    assert not os.path.exists(tmp_path / "R")


def test_a_run_keeps_tensorflow_out_of_the_collector_and_gives_it_back(shared, tmp_path, monkeypatch, capsys):
    """main() freezes what TensorFlow's start left (its collections then skip it) and unfreezes it when it ends,
    so that a caller in the same process keeps its collector as it was; here a run that ends in an error."""
    x = np.load(reference(shared, "EMODB_2s.npy"), allow_pickle=True).item()["x"][:60]
    np.save(tmp_path / "CASIA.npy", {"x": x, "y": np.eye(6, dtype="float32")[np.arange(60) % 6]})
    frozen_during_the_run = []
    unfreeze = gc.unfreeze
    monkeypatch.setattr(gc, "unfreeze", lambda: (frozen_during_the_run.append(gc.get_freeze_count()), unfreeze()))
    assert gc.get_freeze_count() == 0
    weights = tmp_path / "weights"  # a name that gives no corpus: the error comes from the weights, after the start
    shutil.copytree(reference(shared, "Test_Models", "EMODB_46"), weights)
    assert main(["--mode", "test", "--data", "CASIA", "--feature_path", str(tmp_path / "CASIA.npy"),
                 "--test_path", str(weights), "--random_seed", "46", "--result_path", str(tmp_path / "R")]) == 2
    assert len(frozen_during_the_run) == 1 and frozen_during_the_run[0] > 100_000  # TensorFlow's objects
    assert gc.get_freeze_count() == 0


def test_the_process_entry_leaves_every_object_out_of_the_collections_at_exit(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["main.py", "--data", "FOO"])
    try:
        assert process_main() == 2 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
