"""An interrupted run, killed by a real signal, resumes after its last complete fold to the same results."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import CODE
from test_engine import toy_data
from timnet_ser.nn import legacy_weights


def toy_feature_file(path):
    x, y = toy_data(40)
    np.save(path, {"x": x, "y": y, "classes": np.array(["a", "b", "c"]), "signal_length": np.int64(24 * 512)})
    return str(path)


def train_command(features, models, results, *extra):
    return [sys.executable, os.path.join(CODE, "main.py"), "--mode", "train", "--data", "TOY", "--feature_path",
            features, "--split_fold", "4", "--epoch", "12", "--batch_size", "8", "--dilation_size", "3",
            "--random_seed", "5", "--model_path", models, "--result_path", results, *extra]


def only_folder(parent):
    [name] = os.listdir(parent)
    return os.path.join(parent, name)


def test_kill_then_resume_equals_an_uninterrupted_run(tmp_path):
    features = toy_feature_file(tmp_path / "TOY.npy")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    models, results = str(tmp_path / "M"), str(tmp_path / "R")
    run = subprocess.Popen(train_command(features, models, results), env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done = []
    while time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
        if os.path.isdir(models) and os.listdir(models):
            done = [n for n in os.listdir(only_folder(models)) if n.startswith("4-fold_record_")]
            if done:
                run.send_signal(signal.SIGKILL)  # no clean-up: only what was already on disk survives
                break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL and 1 <= len(done) < 4, "the run was not interrupted mid-way"
    folder = only_folder(models)
    for name in os.listdir(folder):  # no half-written file under a real name: only temporaries may be partial
        if name.endswith(".hdf5") and ".partial-" not in name:
            legacy_weights.read_weight_arrays(os.path.join(folder, name))
    assert not os.path.exists(results) or not os.listdir(results), "no results before the run ends"

    resumed = subprocess.run([sys.executable, os.path.join(CODE, "main.py"), "--mode", "train", "--resume", folder,
                              "--result_path", results], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "trained before this command" in resumed.stdout and "another version" not in resumed.stdout
    assert not [n for n in os.listdir(folder) if ".partial-" in n], "the temporaries of the killed run are removed"
    straight = subprocess.run(train_command(features, str(tmp_path / "M2"), str(tmp_path / "R2")), env=env,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr

    def record(parent):
        [name] = [n for n in os.listdir(parent) if n.endswith(".json")]
        with open(os.path.join(parent, name)) as f:
            return json.load(f)

    a, b = record(results), record(str(tmp_path / "R2"))
    assert [f["y_pred"] for f in a["folds"]] == [f["y_pred"] for f in b["folds"]]
    assert a["summary"] == b["summary"]
    for i in range(1, 5):
        ours = legacy_weights.read_weight_arrays(os.path.join(folder, f"4-fold_weights_best_{i}.hdf5"))
        theirs = legacy_weights.read_weight_arrays(
            os.path.join(only_folder(str(tmp_path / "M2")), f"4-fold_weights_best_{i}.hdf5"))
        assert all(np.array_equal(u, v) for (_, us), (_, vs) in zip(ours, theirs) for u, v in zip(us, vs))


def test_a_resume_by_another_version_of_the_program_says_which_folds_it_did_not_train(tmp_path, capsys):
    """A run continued by a newer program trained its last folds with other code (a mended step, another rounding:
    a probe's resume of an older version's run gave fold 3 47.83 % where that version gave 39.13 %), without a
    word; each fold records the program's source digest, and a resume names the folds another one trained."""
    from timnet_ser.core.paths import source_digest
    from timnet_ser.main import main
    features = toy_feature_file(tmp_path / "TOY.npy")
    models, results = str(tmp_path / "M"), str(tmp_path / "R")
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "3", "--epoch", "1",
                 "--batch_size", "8", "--dilation_size", "2", "--model_path", models, "--result_path", results]) == 0
    folder = only_folder(models)
    records = [os.path.join(folder, f"3-fold_record_{i}.json") for i in (1, 2, 3)]
    for path in records:
        with open(path) as f:
            assert json.load(f)["program_source"] == source_digest()
    with open(os.path.join(folder, "run.json")) as f:
        assert json.load(f)["versions"]["timnet_ser_source"] == source_digest()
    with open(records[0]) as f:
        older = json.load(f)
    del older["program_source"]  # as an older version wrote it
    with open(records[0], "w") as f:
        json.dump(older, f)
    os.remove(records[2])  # fold 3 not finished
    capsys.readouterr()
    assert main(["--mode", "train", "--resume", folder]) == 0
    out = capsys.readouterr().out
    assert "note: fold(s) 1 were trained by another version of this program (its source differs, or went " \
           "unrecorded)" in out, out
    with open(records[2]) as f:
        assert json.load(f)["program_source"] == source_digest()
    capsys.readouterr()
    assert main(["--mode", "train", "--resume", folder]) == 0  # nothing left to train: nothing to say of it
    assert "another version" not in capsys.readouterr().out
