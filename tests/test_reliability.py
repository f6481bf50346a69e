"""The fault campaign's short form (bench/faults.py runs it N times at random moments): a full disk during a fold
write, a damaged fold weights file, run.json and feature file. Each is named in one line, never used, leaves no
half-written file, and the run recovers to the undisturbed run's weights. The signals (SIGKILL, Ctrl-C, a killed
Ray worker) are test_resume.py's, test_run_folder.py's and test_grid.py's."""

import glob
import json
import os
import resource
import shutil
import sys

import numpy as np
import pytest

from conftest import SPEECH_WAV
from test_run_folder import error_line, only, toy_feature_file
from timnet_ser.main import main
from timnet_ser.nn.legacy_weights import read_weight_arrays

TRAIN = ["--mode", "train", "--data", "TOY", "--split_fold", "3", "--epoch", "2", "--batch_size", "8",
         "--dilation_size", "2", "--filter_size", "8", "--random_seed", "3"]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    """A 3-fold run of a tiny TIM-Net on a toy corpus, left alone: its folder and features."""
    tmp = tmp_path_factory.mktemp("undisturbed")
    features = toy_feature_file(tmp / "TOY.npy", n=30)
    assert main([*TRAIN, "--feature_path", features, "--model_path", str(tmp / "M"),
                 "--result_path", str(tmp / "R")]) == 0
    return {"folder": only(str(tmp / "M")), "features": features}


def weights(folder):
    return [read_weight_arrays(path) for path in sorted(glob.glob(os.path.join(folder, "*.hdf5")))]


def same_weights(folder, other):
    return all(np.array_equal(a, b) for one, two in zip(weights(folder), weights(other))
               for (_, xs), (_, ys) in zip(one, two) for a, b in zip(xs, ys))


def nothing_half_written(folder):
    for name in os.listdir(folder):
        assert ".partial-" not in name, f"a temporary is left: {name}"
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                json.load(f)
    weights(folder)  # every weights file reads whole


def copy_of(run, tmp_path):
    """The run copied, its results folder pointed into ``tmp_path`` (a hand edit run.json allows)."""
    folder = str(tmp_path / "M" / os.path.basename(run["folder"]))
    shutil.copytree(run["folder"], folder)
    with open(os.path.join(folder, "run.json")) as f:
        description = json.load(f)
    description["result_path"] = str(tmp_path / "R")
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(description, f)
    os.makedirs(tmp_path / "R", exist_ok=True)  # a recorded results folder is never made (a run from elsewhere)
    return folder


@pytest.mark.parametrize("training", ["sequential", "stacked"])
def test_a_full_disk_during_a_fold_write_is_one_line_and_resumes_to_the_same_run(undisturbed, tmp_path, capsys,
                                                                                  training):
    """Either path names the file and the command that continues (before, a stack's full disk named no command)."""
    models = str(tmp_path / "M")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))  # a fold's weights are larger: the disk is "full"
    try:
        status = main([*TRAIN, "--training", training, "--feature_path", undisturbed["features"],
                       "--model_path", models, "--result_path", str(tmp_path / "R")])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert status == 2
    line = error_line(capsys)
    folder = only(models)
    assert "3-fold_weights_best_1.hdf5: cannot be written (" in line, line
    assert f"; the finished folds are kept: free space and continue with: {sys.executable} " in line, line
    assert line.endswith(f"main.py --mode train --resume {folder}"), line
    nothing_half_written(folder)
    assert not glob.glob(os.path.join(folder, "*.hdf5")), "no weights under a real name"
    assert main(["--mode", "train", "--resume", folder, "--training", training]) == 0
    nothing_half_written(folder)
    if training == "sequential":  # a stack is the same training within float32 rounding (test_stacked_training.py)
        assert same_weights(folder, undisturbed["folder"])


def corrupt(path, at=None):
    """Overwrite 16 bytes in the middle of ``path`` (or at ``at``) with bytes that are not text."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2 if at is None else at)
        f.write(bytes(range(200, 216)))


def test_damaged_fold_weights_are_named_never_used_and_trained_again(undisturbed, tmp_path, capsys):
    folder = copy_of(undisturbed, tmp_path)
    damaged = os.path.join(folder, "3-fold_weights_best_2.hdf5")
    corrupt(damaged)
    assert main(["--mode", "test", "--test_path", folder]) == 2
    line = error_line(capsys)
    assert f"{damaged}: damaged fold weights" in line and "--resume" in line, line
    assert main(["--mode", "predict", "--test_path", folder, "--wav", SPEECH_WAV]) == 2
    assert f"{damaged}: damaged fold weights" in error_line(capsys)
    assert main(["--mode", "train", "--resume", folder]) == 0
    out = capsys.readouterr().out
    assert f"fold 2/3: {damaged}: damaged fold weights" in out and "trained again" in out, out
    nothing_half_written(folder)
    assert same_weights(folder, undisturbed["folder"])
    assert main(["--mode", "test", "--test_path", folder]) == 0


@pytest.mark.parametrize("y_pred, reason", [
    (None, "'y_pred' must be a JSON array, it is missing"),
    ([99], "'y_pred' must hold its {n} utterances' class indices, 0 to 2"),  # went into the results and the report
])
def test_a_fold_record_without_its_results_is_named_and_trained_again(undisturbed, tmp_path, capsys, y_pred, reason):
    """A fold record that reads as JSON but lacks a field the run's results are made of (its predictions): a
    resume trained the missing folds and then ended in a KeyError while writing the results; now the fold is damaged
    like one whose weights are, and is trained again. So is one whose predictions are no class indices of its
    utterances."""
    folder = copy_of(undisturbed, tmp_path)
    record = os.path.join(folder, "3-fold_record_3.json")
    with open(record) as f:
        fields = json.load(f)
    if y_pred is None:
        del fields["y_pred"]
    else:
        fields["y_pred"] = y_pred * fields["n"]
    with open(record, "w") as f:
        json.dump(fields, f)
    assert main(["--mode", "test", "--test_path", folder]) == 2
    line = error_line(capsys)
    assert f"{record}: damaged fold record ({reason.format(n=fields['n'])})" in line, line
    assert main(["--mode", "train", "--resume", folder]) == 0
    out = capsys.readouterr().out
    assert f"fold 3/3: {record}: damaged fold record" in out and "trained again" in out, out
    assert same_weights(folder, undisturbed["folder"]) and glob.glob(str(tmp_path / "R" / "*.json"))


def test_a_fold_another_process_trains_is_named_and_left_to_it(undisturbed, tmp_path, capsys):
    """A second --resume (or a grid's worker) of a run whose unfinished fold another process is training: one line
    naming the fold and that process, nothing trained or written; once that process has gone (killed, here: the
    kernel drops its lock), the same command trains the fold."""
    from conftest import another_process_holding
    folder = copy_of(undisturbed, tmp_path)
    os.remove(os.path.join(folder, "3-fold_weights_best_2.hdf5"))
    lock = os.path.join(folder, ".3-fold_2.lock")
    with another_process_holding(lock, "process {pid} on a test machine") as holder:
        before = sorted(os.listdir(folder))
        assert main(["--mode", "train", "--resume", folder]) == 2
        line = error_line(capsys)
        assert f"fold 2/3 is being trained by process {holder.pid} on a test machine; wait for it to end" in line, line
        assert sorted(os.listdir(folder)) == before
        # a re-test meanwhile was told to --resume: the command already running
        assert main(["--mode", "test", "--test_path", folder]) == 2
        line = error_line(capsys)
        assert f"fold 2/3 is being trained by process {holder.pid} on a test machine" in line, line
    # a killed process leaves its lock's file (the kernel drops the lock): of a fold it had finished, which is not
    # locked again, the file stayed in the finished run; a resume removes every file no process holds
    with open(os.path.join(folder, ".3-fold_1.lock"), "w") as f:
        f.write("process 1 on a killed machine")
    assert main(["--mode", "train", "--resume", folder]) == 0
    assert same_weights(folder, undisturbed["folder"]) and not glob.glob(os.path.join(folder, ".*.lock"))


def test_fold_locks_are_reentrant_and_never_stop_a_fold_where_none_can_be_taken(undisturbed, tmp_path, monkeypatch,
                                                                               capsys):
    import errno
    import fcntl

    from timnet_ser.runs.run_folder import require_run
    run = require_run(copy_of(undisturbed, tmp_path), "--resume")
    with run.training([0, 1]), run.training([1, 2]):  # this process holds 1 already: not taken again
        other = os.open(os.path.join(run.path, ".3-fold_3.lock"), os.O_RDWR)  # another holder's descriptor
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(other)
    assert not glob.glob(os.path.join(run.path, ".*.lock"))  # released, and their files removed

    def no_locks(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)  # a file system without locks: trained as before, unguarded
    capsys.readouterr()
    with run.training([0]), run.training([1]):
        pass
    assert capsys.readouterr().err == (f"warning: {run.path}: its file system takes no locks (No locks available); "
                                       "nothing stops a second process (a --resume, a grid's worker) from training "
                                       "the same fold at the same time\n")  # once per run folder


def test_a_fold_another_command_only_asks_about_is_not_called_busy(undisturbed, tmp_path):
    """Who trains a fold is asked by holding its lock shared for an instant (FoldLocks.holder, a re-test of
    an unfinished run); a resume that tried to lock the fold at that instant said it was being trained. Here the
    shared lock lasts 50 ms: the fold is locked once it is free."""
    import fcntl
    import threading

    from timnet_ser.runs.run_folder import require_run
    run = require_run(copy_of(undisturbed, tmp_path), "--resume")
    asking = os.open(os.path.join(run.path, ".3-fold_1.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(asking, fcntl.LOCK_SH)
    threading.Timer(0.05, fcntl.flock, (asking, fcntl.LOCK_UN)).start()
    try:
        with run.training([0]):
            pass
    finally:
        os.close(asking)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "a required key's type", "a row in two folds",
                                    "a row that is no row number", "statistics of 5 coefficients",
                                    "a created time that is a path"])
def test_a_damaged_run_json_is_named_and_changes_nothing(undisturbed, tmp_path, capsys, damage):
    folder = copy_of(undisturbed, tmp_path)
    path = os.path.join(folder, "run.json")
    with open(path) as f:
        original = f.read()
    if damage == "truncate":
        os.truncate(path, len(original) // 2)
    elif damage == "garbage":
        corrupt(path)
    else:
        description = json.loads(original)
        rows = description["test_rows"]
        if damage == "a row in two folds":  # was tested, and trained, twice
            rows[1][0] = rows[0][0]
        elif damage == "a created time that is a path":  # it names the results files: they were written elsewhere
            description["created"] = "2026/../../x/"
        elif damage == "statistics of 5 coefficients":  # predict's domain shift read them; a string was a TypeError
            description["feature_statistics"]["utterance_std"] = description["feature_statistics"]["utterance_std"][:5]
        else:  # "1,2,3" was a traceback from inside the split, -1 the last row silently
            description["test_rows"] = "1,2,3" if damage == "a required key's type" else [[-1, *rows[0]], *rows[1:]]
        with open(path, "w") as f:
            json.dump(description, f)
    before = {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)}
    for command in (["--mode", "test", "--test_path", folder], ["--mode", "train", "--resume", folder]):
        assert main(command) == 2
        line = error_line(capsys)
        assert line.startswith(f"error: {path}: damaged run file ("), line
    assert before == {name: os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)}
    with open(path, "w") as f:  # put back, and edited by hand in a key that is no required one: accepted
        json.dump({**json.loads(original), "note": "copied from the undisturbed run"}, f, indent=2)
    assert main(["--mode", "test", "--test_path", folder]) == 0


@pytest.mark.parametrize("field, value, reason", [
    ("hyper.activation", "softmax", '\'config.hyper.activation\' is "softmax": not one of Keras\' element-wise'),
    ("hyper.dilation_size", 0, "'config.hyper.dilation_size' is 0: must be between 1 and 31"),
    ("hyper.dropout", "x", '\'config.hyper.dropout\' must be a JSON number, it is "x"'),
    ("hyper.kernel_size", 1.5, "'config.hyper.kernel_size' must be a JSON integer, it is 1.5"),
    ("hyper.normalize", "z", '\'config.hyper.normalize\' is "z": choose one of none, utterance, speaker, corpus'),
    ("hyper.backbone", "resnet", '\'config.hyper.backbone\' is "resnet": must be one of mobilenetv2, resnet50v2'),
    ("model", "FOO", '\'config.model\' is "FOO": choose one of TIMNET, GMTCN, DCNN_BLSTMwA'),
    ("protocol", "foo", '\'config.protocol\' is "foo": choose one of last_epoch, paper, inner_val'),
    ("split_fold", 1, "'config.split_fold' is 1: must be at least 2"),
    ("random_seed", -1, "'config.random_seed' is -1: must be between 0 and"),
    ("epochs", None, "'config.epochs' must be set, it is null"),
    ("lr", float("inf"), "'config.lr' is Infinity: must be a finite number"),  # json writes and reads Infinity
    # a run from elsewhere: its data began the results' file names (a path wrote them there), its class names were
    # printed (control characters rewrote the console), its network was built before any weights were read
    ("data", "/tmp/elsewhere/x", "'config.data' is \"/tmp/elsewhere/x\": a corpus name is letters, digits"),
    ("classes", ["a", "b\u001b[2J", "c"], "'config.classes' holds \"b\\u001b[2J\": a class name holds no control"),
    ("hyper.filter_size", 30000, "'config.hyper.filter_size' is 30000: must be between 1 and 1024"),
    ("hyper.stack_size", 100000, "'config.hyper.stack_size' is 100000: must be between 1 and 16"),
])
def test_a_recorded_setting_no_flag_could_give_is_named_before_any_model_is_built(undisturbed, tmp_path, capsys,
                                                                                   field, value, reason):
    """A run.json edited by hand (or written by a version that took what this one refuses): the first four were a
    Keras traceback when the model was built, the model a KeyError; the others were taken silently."""
    folder = copy_of(undisturbed, tmp_path)
    path = os.path.join(folder, "run.json")
    with open(path) as f:
        description = json.load(f)
    *parents, key = field.split(".")
    table = description["config"]
    for parent in parents:
        table = table[parent]
    table[key] = value
    with open(path, "w") as f:
        json.dump(description, f)
    for command in (["--mode", "test", "--test_path", folder], ["--mode", "predict", "--test_path", folder, "--wav",
                                                                 SPEECH_WAV]):
        assert main(command) == 2
        assert error_line(capsys).startswith(f"error: {path}: a recorded setting this version refuses ({reason}")
    from timnet_ser.core.errors import UserError
    from timnet_ser.deploy.api import load_run
    with pytest.raises(UserError, match="a recorded setting this version refuses"):
        load_run(folder)


def test_the_api_refuses_a_network_or_feature_file_for_a_run_folder(undisturbed):
    """load_run's hyper= and feature_path= describe a folder without run.json; with a run folder they were ignored."""
    from timnet_ser.core.config import Hyper
    from timnet_ser.core.errors import UserError
    from timnet_ser.deploy.api import load_run
    for keyword in ({"hyper": Hyper(dilation_size=4)}, {"feature_path": undisturbed["features"]}):
        with pytest.raises(UserError, match=rf"^{next(iter(keyword))}=.*: the run in .* brings its own \(run.json\); "
                                            "leave it out$"):
            load_run(undisturbed["folder"], **keyword)


def test_a_test_row_beyond_the_feature_file_is_named(undisturbed, tmp_path, capsys):
    """A hand-edited run.json whose test rows reach past its feature file: an IndexError from inside the split."""
    folder = copy_of(undisturbed, tmp_path)
    path = os.path.join(folder, "run.json")
    with open(path) as f:
        description = json.load(f)
    description["test_rows"][0][0] = 999
    with open(path, "w") as f:
        json.dump(description, f)
    assert main(["--mode", "test", "--test_path", folder]) == 2
    assert error_line(capsys) == (f"error: {path}: damaged run file ('test_rows' holds row 999; the feature file has "
                                  "30 rows)")


def test_a_changed_feature_file_is_named_and_nothing_trains_on_it(undisturbed, tmp_path, capsys):
    folder = copy_of(undisturbed, tmp_path)
    features = str(tmp_path / "TOY.npy")
    shutil.copy(undisturbed["features"], features)
    with open(os.path.join(folder, "run.json")) as f:
        description = json.load(f)
    description["config"]["feature_path"] = features
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(description, f)
    for path in glob.glob(os.path.join(folder, "3-fold_*_3.*")):  # fold 3 unfinished: an interrupted run
        os.remove(path)
    data = np.load(features, allow_pickle=True).item()
    data["x"][0, 0, 0] += 1  # one value of one row changed between the runs
    np.save(features, data)
    assert main(["--mode", "train", "--resume", folder]) == 2
    line = error_line(capsys)
    assert features in line and "differs from the features the run" in line, line
    assert not glob.glob(os.path.join(folder, "3-fold_*_3.*")), "nothing trained on the changed file"
    shutil.copy(undisturbed["features"], features)
    assert main(["--mode", "train", "--resume", folder]) == 0
    assert same_weights(folder, undisturbed["folder"])


@pytest.mark.parametrize("training", ["sequential", "stacked"])
def test_a_fold_whose_weights_diverge_is_named_and_never_saved(undisturbed, tmp_path, capsys, training):
    """--lr 1e30: the loss is NaN from the first epoch. Before, every fold trained its epochs to the end, was saved
    with NaN weights and scored as predicting one class for every utterance. Now the fold is named and not saved;
    under last_epoch the epoch loop stops at once (NaN weights stay NaN): a stack too, once every member diverged
    (it trained on to its last epoch before)."""
    models = tmp_path / "M"
    assert main([*TRAIN, "--epoch", "4", "--lr", "1e30", "--training", training, "--feature_path",
                 undisturbed["features"], "--model_path", str(models), "--result_path", str(tmp_path / "R")]) == 2
    out, err = capsys.readouterr()
    folder, line = only(str(models)), err.strip().splitlines()[-1]
    assert line.startswith(f"error: {folder}: fold 1/3 diverged: its weights are not finite (training loss nan at "
                           "epoch 1), so it was not saved"), line
    assert "--resume would diverge again: train a new run with a lower --lr (this one's: 1e+30)" in line
    assert ("2 more fold(s) of the stack diverged too" in line) == (training == "stacked")
    assert not glob.glob(os.path.join(folder, "*.hdf5")) and not glob.glob(os.path.join(folder, "*record*"))
    assert not os.path.exists(tmp_path / "R") or not os.listdir(tmp_path / "R")
    assert "epoch 1/4" in out + err and "epoch 2/4" not in out + err
    nothing_half_written(folder)
    # the folder says so to every later command: a re-test, and a resume that would train the fold to the same end
    note = os.path.join(folder, "3-fold_diverged_1.json")
    said = (f"error: {folder}: fold 1/3 diverged in training (training loss nan at epoch 1), so it has no weights; "
            f"--resume would diverge again: train a new run with a lower --lr (this one's: 1e+30) (to train it again "
            f"anyway, delete {note})")
    for command in (["--mode", "test", "--test_path", folder], ["--mode", "train", "--resume", folder]):
        assert main(command) == 2
        assert error_line(capsys) == said
    if training == "sequential":  # the note deleted, the fold trained again: it diverges again, and says so again
        os.unlink(note)
        assert main(["--mode", "train", "--resume", folder]) == 2
        assert "fold 1/3 diverged: its weights are not finite" in error_line(capsys) and os.path.isfile(note)


def test_ctrl_c_between_stacks_keeps_the_stacks_saved_and_names_every_run_to_continue(undisturbed, tmp_path,
                                                                                        capsys, monkeypatch):
    """Two seeds' 6 folds in stacks of 4: Ctrl-C while the second stack trains. The first stack is saved (before, no
    stack was saved before the last had trained, and Ctrl-C printed "nothing was written"), and each run is named
    with the command that continues it: seed 3's folds are all trained, but its results are not written yet."""
    from timnet_ser.engine import stacked_training
    chunks, train_chunk = [], stacked_training._train_chunk

    def second_stack_stopped(*args, **kwargs):
        chunks.append(len(args[3]))
        if len(chunks) == 2:
            raise KeyboardInterrupt
        return train_chunk(*args, **kwargs)
    monkeypatch.setattr(stacked_training, "_train_chunk", second_stack_stopped)
    models, results = tmp_path / "M", tmp_path / "R"
    assert main([*TRAIN, "--random_seed", "3,4", "--training", "stacked", "--stack_members", "4", "--feature_path",
                 undisturbed["features"], "--model_path", str(models), "--result_path", str(results)]) == 130
    assert chunks == [4, 2]
    err = capsys.readouterr().err
    seed_3, seed_4 = sorted(glob.glob(str(models / "TOY_*")), key=lambda path: "_4_" in os.path.basename(path))
    assert f"interrupted: finished folds (1, 2, 3 of 3) are saved in {seed_3}; continue with:\n" in err, err
    assert f"and: finished folds (1 of 3) are saved in {seed_4}; continue with:\n" in err, err
    assert f"main.py --mode train --resume {seed_3}\n" in err and f"main.py --mode train --resume {seed_4}\n" in err
    assert len(glob.glob(os.path.join(seed_3, "*.hdf5"))) == 3 and len(glob.glob(os.path.join(seed_4, "*.hdf5"))) == 1
    assert not os.path.exists(results) or not os.listdir(results)
    monkeypatch.setattr(stacked_training, "_train_chunk", train_chunk)
    for folder in (seed_3, seed_4):
        nothing_half_written(folder)
        assert main(["--mode", "train", "--resume", folder]) == 0
    out = capsys.readouterr().out
    assert out.count("(trained before this command)") == 4 and "trained 0 folds" in out
    assert len([name for name in os.listdir(results) if name.endswith(".json")]) == 2  # each run's results


def test_ctrl_c_in_one_seed_of_several_names_the_seeds_not_started(undisturbed, tmp_path, capsys, monkeypatch):
    """Sequential training makes a seed's run folder when its turn comes: a stop in seed 3's run says that seeds 4
    and 5 had not started (before, only seed 3's run was named)."""
    from timnet_ser.engine import cross_validation
    calls, train_and_save_fold = [], cross_validation.train_and_save_fold

    def second_fold_stopped(*args, **kwargs):
        calls.append(args[5])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_and_save_fold(*args, **kwargs)
    monkeypatch.setattr(cross_validation, "train_and_save_fold", second_fold_stopped)
    models = tmp_path / "M"
    assert main([*TRAIN, "--random_seed", "3,4,5", "--feature_path", undisturbed["features"],
                 "--model_path", str(models), "--result_path", str(tmp_path / "R")]) == 130
    folder, lines = only(str(models)), capsys.readouterr().err.strip().splitlines()[-3:]  # after the epochs' lines
    assert lines == [f"interrupted: finished folds (1 of 3) are saved in {folder}; continue with:",
                     lines[1], "seed(s) 4,5 had not started: train them with the same command and --random_seed 4,5"]
    assert lines[1].startswith(f"  {sys.executable} ") and lines[1].endswith(f"main.py --mode train --resume {folder}")


def test_a_stack_whose_fold_diverged_writes_the_results_of_its_complete_runs(undisturbed, tmp_path, capsys,
                                                                             monkeypatch):
    """Two seeds stacked, a fold of seed 4 diverges (a stand-in for NaN weights): seed 3's run, all of whose folds
    trained, writes its results before the line names seed 4's fold (before, it was left without them)."""
    from timnet_ser.core.errors import Diverged
    from timnet_ser.engine import cross_validation
    save_trained_fold = cross_validation.save_trained_fold

    def seed_4_fold_2_diverges(run, trainer, x, y, fold, kept):
        if run.config.random_seed == 4 and fold == 1:
            raise Diverged(f"{run.path}: fold 2/3 diverged: its weights are not finite, so it was not saved")
        return save_trained_fold(run, trainer, x, y, fold, kept)
    monkeypatch.setattr(cross_validation, "save_trained_fold", seed_4_fold_2_diverges)
    results = tmp_path / "R"
    assert main([*TRAIN, "--random_seed", "3,4", "--training", "stacked", "--feature_path", undisturbed["features"],
                 "--model_path", str(tmp_path / "M"), "--result_path", str(results)]) == 2
    assert "fold 2/3 diverged" in error_line(capsys)
    written = [name for name in os.listdir(results) if name.endswith(".json")]
    assert len(written) == 1 and "_3_" in written[0], written
