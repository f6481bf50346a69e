"""The grid (--mode grid): the TOML's axes and corpus tables, one local Ray shared by every Ray test, a worker
killed mid-fold, a repeated grid that trains nothing, Ray against this process, failures that stop nothing, a
SIGKILLed driver that leaves no Ray process behind."""

import contextlib
import glob
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import another_process_holding
from timnet_ser.cli import grid_file
from timnet_ser.core.errors import UserError
from timnet_ser.grid import pool
from timnet_ser.main import main

# 2 models x 2 seeds x 3 folds x 1 epoch of tiny networks on 30 generated utterances
GRID = """
data = "TOY"
feature_path = "TOY.npy"
model = ["TIMNET", "GMTCN"]
random_seed = [1, 2]
split_fold = 3
epoch = 1
batch_size = 8
dilation_size = 2
filter_size = 8
"""
# The killed-worker grid must be done by then, else the test fails rather than hangs. Its fixtures (Ray's start, this
# grid in this process, then on Ray) took some 50 s in a CI run, and 154 s on a machine loaded with other tests.
RAY_DEADLINE_S = 300


def toy_features(path, n=30, frames=24, seed=0):
    """Three classes of MFCC-like frames that differ in mean, in a feature file of a dataset of our own."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, frames, 39)).astype("float32") + labels[:, None, None].astype("float32")
    np.save(path, {"x": x, "y": np.eye(3, dtype="float32")[labels], "classes": np.array(["a", "b", "c"]),
                   "signal_length": np.int64((frames - 1) * 512)}, allow_pickle=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder with TOY.npy and grid.toml."""
    path = tmp_path_factory.mktemp("grid")
    toy_features(path / "TOY.npy")
    (path / "grid.toml").write_text(GRID)
    return path


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (loopback only, 2 CPUs, no GPU) for every Ray test of this file; shut down at the end."""
    pool.start_local_ray(cpus=2, gpus=0, object_store_bytes=256 * 2 ** 20)
    import ray  # after the start: a local Ray's settings are read when Ray is imported
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}  # reachable from here only
    yield ray
    ray.shutdown()


def run_grid(folder, name: str, *flags, toml: str = "grid.toml") -> tuple[int, str]:
    """main.py --mode grid into folder/<name>-models and folder/<name>-results: (exit status, its stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["--mode", "grid", "--grid", str(folder / toml), "--gpu", "-1",
                       "--model_path", str(folder / f"{name}-models"), "--result_path",
                       str(folder / f"{name}-results"), *flags])
    return status, err.getvalue()


def fold_records(model_path) -> dict:
    """{(model, seed, fold record file): (predictions, training losses)} of every run under ``model_path``."""
    found = {}
    for run_file in glob.glob(os.path.join(model_path, "*", "run.json")):
        with open(run_file) as f:
            config = json.load(f)["config"]
        for path in glob.glob(os.path.join(os.path.dirname(run_file), "*-fold_record_*.json")):
            with open(path) as f:
                record = json.load(f)
            found[(config["model"], config["random_seed"], os.path.basename(path))] = (
                record["y_pred"], record["history"]["loss"])
    return found


def weight_times(model_path) -> dict:
    return {path: os.stat(path).st_mtime_ns for path in glob.glob(os.path.join(model_path, "*", "*.hdf5"))}


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])  # the field after the state; the name may hold spaces


def ours(pid: int) -> bool:
    """Whether ``pid`` descends from this process (the local Ray that this test started), not another's Ray."""
    while pid > 1:
        pid = parent(pid)
        if pid == os.getpid():
            return True
    return False


def kill_first_training_worker(killed: list, stop: threading.Event) -> None:
    """SIGKILL the first of our Ray worker processes seen inside FoldWorker.train (Ray titles it so meanwhile)."""
    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read()
                mine = title.startswith(b"ray::FoldWorker.train") and ours(int(pid))
            except OSError:  # the process ended meanwhile
                continue
            if mine:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def in_process(folder):
    """The grid with --address none: every fold in this process, one after the other."""
    status, err = run_grid(folder, "here", "--address", "none")
    assert status == 0, err
    return fold_records(folder / "here-models")


@pytest.fixture(scope="module")
def on_ray(folder, local_ray):
    """The grid on the shared local Ray, with one worker killed by SIGKILL while it trains a fold."""
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=kill_first_training_worker, args=(killed, stop), daemon=True)
    killer.start()
    timer = threading.Timer(RAY_DEADLINE_S, lambda: os.kill(os.getpid(), signal.SIGINT))  # Ctrl-C, not a hang
    timer.start()
    try:
        status, err = run_grid(folder, "ray", "--workers", "2")  # a pool of two: one dies, one goes on
    finally:
        timer.cancel()
        stop.set()
    assert status == 0, err
    return {"records": fold_records(folder / "ray-models"), "stderr": err, "killed": killed}


# --- the grid file ----------------------------------------------------------------------------------------------

def write(tmp_path, text: str) -> str:
    path = tmp_path / "g.toml"
    path.write_text(text)
    return str(path)


def points_of(path: str, **typed) -> list:
    return grid_file.expand(path, grid_file.read_grid(path), typed)


def test_axes_make_a_cartesian_product_and_corpus_tables_pair_data_with_their_file(tmp_path):
    path = write(tmp_path, """
model = ["TIMNET", "GMTCN"]
random_seed = [1, 2]
lr = 0.01
balance = true
[[corpus]]
data = "EMODB"
feature_path = "features/EMODB.npy"
[[corpus]]
data = "CASIA"
feature_path = "/data/CASIA.npy"
""")
    points = points_of(path, lr=0.5, epoch=7)
    got = sorted((p.settings.model, p.settings.data, p.settings.seed, p.settings.feature_path) for p in points)
    assert got == sorted((model, data, seed, feature) for model in ("TIMNET", "GMTCN") for seed in (1, 2)
                         for data, feature in (("EMODB", str(tmp_path / "features" / "EMODB.npy")),
                                               ("CASIA", "/data/CASIA.npy")))
    for point in points:  # the grid file wins over the command line, which fills in the rest
        assert (point.settings.lr, point.settings.epoch, point.settings.balance) == (0.01, 7, True)
        assert point.error == "" and point.settings.seeds == (point.settings.seed,)
    assert {p.label for p in points} >= {"TIMNET on EMODB, seed 1", "GMTCN on CASIA, seed 2"}


def test_a_fine_tuning_source_and_a_backbone_file_are_relative_to_the_grid_files_folder(tmp_path, monkeypatch):
    """init_from was read from the current folder: a run of the same name there was the source without a word."""
    (tmp_path / "runs" / "source").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "runs")  # elsewhere than the grid file's folder
    [point] = points_of(write(tmp_path, 'init_from = "runs/source"\n'))
    assert point.settings.init_from == str(tmp_path / "runs" / "source")
    assert grid_file._resolved(str(tmp_path / "g.toml"), "backbone_weights", "bb.weights.h5") == \
        str(tmp_path / "bb.weights.h5")
    assert grid_file._resolved(str(tmp_path / "g.toml"), "backbone_weights", "imagenet") == "imagenet"


def test_a_comma_list_of_seeds_is_an_axis_and_other_axes_name_the_run(tmp_path):
    points = points_of(write(tmp_path, 'random_seed = "46,47"\nlr = [0.1, 0.2]\n'))
    assert sorted(p.label for p in points) == ["TIMNET on EMODB, seed 46, lr=0.1", "TIMNET on EMODB, seed 46, lr=0.2",
                                               "TIMNET on EMODB, seed 47, lr=0.1", "TIMNET on EMODB, seed 47, lr=0.2"]


def test_a_typed_flag_the_file_sets_is_named_not_dropped_unsaid(tmp_path, capsys):
    path = write(tmp_path, 'random_seed = [1, 2]\nepoch = 3\n[[corpus]]\ndata = "EMODB"\nfeature_path = "E.npy"\n')
    points = points_of(path, epoch=1, random_seed="5", feature_path="other.npy", lr=0.01)
    assert [p.settings.epoch for p in points] == [3, 3] and [p.settings.lr for p in points] == [0.01, 0.01]
    assert capsys.readouterr().out == "".join(f"grid {path}: --{name} typed on the command line is not used: the file "
                                              f"sets {name}\n" for name in ("epoch", "feature_path", "random_seed"))


def test_a_setting_a_points_model_or_protocol_does_not_read_is_left_out_of_that_point(tmp_path, capsys):
    """A model axis beside TIM-Net's dropout, a protocol axis beside inner_val's share: the command line refuses such
    a flag, a grid leaves it out of the points that do not read it, so that those are one run, not two identical
    runs the report showed as two rows."""
    points = points_of(write(tmp_path, 'model = ["TIMNET", "GMTCN"]\ndropout = [0.1, 0.3]\n'
                                       'protocol = ["last_epoch", "inner_val"]\nval_fraction = 0.2\n'))
    settings = {(p.settings.model, p.settings.dropout, p.settings.protocol, p.settings.val_fraction, p.label)
                for p in points}
    assert {(model, protocol, fraction) for model, _, protocol, fraction, _ in settings} == {
        (model, protocol, 0.2 if protocol == "inner_val" else 0.1) for model in ("TIMNET", "GMTCN")
        for protocol in ("last_epoch", "inner_val")}
    assert {(dropout, label) for model, dropout, _, _, label in settings if model == "GMTCN"} == {
        (0.1, "GMTCN on EMODB, seed 46, protocol=last_epoch"), (0.1, "GMTCN on EMODB, seed 46, protocol=inner_val")}
    assert len({(m, d, p) for m, d, p, _, _ in settings if m == "TIMNET"}) == 4
    out = capsys.readouterr().out
    assert "GMTCN under inner_val reads no dropout; its points leave it out" in out
    assert "TIMNET under last_epoch reads no val_fraction; its points leave it out" in out


@pytest.mark.parametrize("text, message", [
    ("epochs = 3", "unknown key 'epochs' (did you mean epoch?)"),
    ("model = [", "not valid TOML"),
    ("mode = 'train'", "unknown key 'mode'"),
    ('data = "EMODB"\n[[corpus]]\ndata = "CASIA"', "data at the top level and in [[corpus]] tables"),
    ("[[corpus]]\nfeature_path = 'x.npy'", "[[corpus]] table 1 has no data key"),
    ("epoch = true", "epoch = true: --epoch takes a value"),
    ("balance = 1", "balance = 1: expected true or false"),
    ("lr = []", "lr = []: an axis needs at least one value"),
    ("lr = [[0.1]]", "expected a string, a number or a boolean"),
    ("random_seed = [1, 1]", "random_seed = [1, 1]: names 1 twice"),  # merged into one run without a word before
    # the same value in another spelling, as the flag reads it
    ('random_seed = [1, "1"]', 'random_seed = [1, "1"]: names 1 twice'),  # as the file writes it
    ('random_seed = ["1,2", 2]', 'random_seed = ["1,2", 2]: names 2 twice'),
    ('lr = [0.001, "1e-3"]', 'lr = [0.001, "1e-3"]: names 0.001 twice'),
    ("lr = 2024-01-01", "lr = 2024-01-01: expected a string, a number or a boolean here"),  # datetime.date(...)
    ('random_seed = "1,1"', 'random_seed = "1,1": names 1 twice'),  # it showed ['1,1']
])
def test_a_bad_grid_file_is_one_line_naming_it(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as error:
        points_of(path)
    assert str(error.value).startswith(f"--grid {path}: ") and message in str(error.value)


def test_a_point_whose_flags_are_refused_is_reported_and_the_others_stay(tmp_path):
    points = points_of(write(tmp_path, "dilation_size = [0, 2]"))
    [bad] = [p for p in points if p.settings is None]
    [good] = [p for p in points if p.settings is not None]
    assert "--dilation_size 0: must be between 1 and 31" in bad.error and good.settings.dilation_size == 2


@pytest.mark.parametrize("nodes, workers, gpus, expected", [
    ([{"CPU": 2}], None, 0, (1, 2)),  # the measured default: two threads per worker
    ([{"CPU": 2}], 2, 0, (2, 1)),
    ([{"CPU": 16}, {"CPU": 16}], None, 0, (16, 2)),
    ([{"CPU": 16}, {"CPU": 4}], 2, 0, (1, 10)),  # a worker of 10 threads fits on the larger node only
    ([{"CPU": 16, "GPU": 1.0}], None, 0.25, (4, 2)),  # four folds share the GPU
])
def test_the_pool_fits_the_nodes(nodes, workers, gpus, expected):
    assert pool.pool_size(nodes, workers, gpus) == expected


@pytest.mark.parametrize("nodes, workers, gpus, message", [
    ([{"CPU": 2}], 3, 0, "--workers 3: more than the 2 CPUs"),
    ([{"CPU": 8}], None, 0.5, "--gpus_per_task 0.5: no node"),
])
def test_a_pool_that_cannot_be_made_is_one_line(nodes, workers, gpus, message):
    with pytest.raises(UserError, match=message):
        pool.pool_size(nodes, workers, gpus)


def test_an_address_where_nothing_answers_is_one_line_within_seconds():
    """Ray retried such an address for over five minutes, ignoring SIGTERM."""
    port = free_port()
    started = time.monotonic()
    with pytest.raises(UserError, match=rf"^--address 127.0.0.1:{port}: cannot reach a Ray cluster there "
                                        r"\(Connection refused\); start one"):  # "nothing answered within 2 s" before
        pool.check_reachable(f"127.0.0.1:{port}", seconds=2)
    assert time.monotonic() - started < 5


def free_port() -> int:
    """A loopback port that was free a moment ago: nothing listens there."""
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_grid_whose_ray_cannot_be_reached_removes_the_run_folders_it_made(tmp_path):
    """Before, every point's new run folder stayed behind, untrained, after the error; a folder of an earlier grid
    command (here: seed 1's, trained) is kept."""
    toy_features(tmp_path / "TOY.npy")
    one_model = GRID.replace('model = ["TIMNET", "GMTCN"]', 'model = "TIMNET"')
    (tmp_path / "one.toml").write_text(one_model.replace("random_seed = [1, 2]", "random_seed = 1"))
    (tmp_path / "two.toml").write_text(one_model)
    assert run_grid(tmp_path, "g", "--address", "none", toml="one.toml")[0] == 0
    [trained] = glob.glob(str(tmp_path / "g-models" / "*"))
    status, err = run_grid(tmp_path, "g", "--address", f"127.0.0.1:{free_port()}", toml="two.toml")
    assert status == 2 and "grid: removed the 1 run folder it had made (nothing trained in them)" in err, err
    assert "cannot reach a Ray cluster there" in err.splitlines()[-1]
    assert glob.glob(str(tmp_path / "g-models" / "*")) == [trained]


def test_a_fold_locked_by_another_command_as_the_grid_removes_its_folder_never_leaves_a_run_without_run_json(
        tmp_path, monkeypatch):
    """Another command (a grid of another file with the same point) may find the new folder and start on a fold
    as this one, whose Ray cannot be reached, removes it. Before, its lock, taken between the look inside the folder
    and the removal, left the folder without run.json and a traceback (Directory not empty) in place of the error;
    now the folds are locked from the look to the removal: the other command is told the fold is busy."""
    import fcntl
    toy_features(tmp_path / "TOY.npy")
    one = GRID.replace('model = ["TIMNET", "GMTCN"]', 'model = "TIMNET"').replace("random_seed = [1, 2]",
                                                                                   "random_seed = 1")
    (tmp_path / "one.toml").write_text(one)
    listdir, other = os.listdir, []

    def looked_into(path="."):  # the other command locks fold 1 just after this one looked into the folder
        found = listdir(path)
        if sys._getframe(1).f_code.co_name == "remove_if_untrained":
            lock = os.open(os.path.join(path, ".3-fold_1.lock"), os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                other.append("locked")
            except BlockingIOError:
                other.append("told busy")
            finally:
                os.close(lock)
        return found
    monkeypatch.setattr(os, "listdir", looked_into)
    status, err = run_grid(tmp_path, "g", "--address", f"127.0.0.1:{free_port()}", toml="one.toml")
    monkeypatch.undo()
    assert status == 2 and "cannot reach a Ray cluster there" in err.splitlines()[-1], err
    assert other == ["told busy"] and "removed the 1 run folder" in err
    assert os.listdir(tmp_path / "g-models") == []


def test_a_missing_grid_file_names_itself(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        grid_file.read_grid(str(tmp_path / "none.toml"))


# --- running it -------------------------------------------------------------------------------------------------

def test_a_killed_worker_costs_one_fold_and_ray_equals_this_process(in_process, on_ray, folder):
    assert on_ray["killed"], "no worker was seen training a fold"
    assert "its worker process died" in on_ray["stderr"] and "trying it again" in on_ray["stderr"]
    assert "12/12 folds done, 0 running, 0 failed, 1 retried" in on_ray["stderr"]
    assert len(in_process) == 12
    assert on_ray["records"] == in_process  # every fold's predictions and losses, bit for bit
    assert len(weight_times(folder / "ray-models")) == 12
    report = (folder / "ray-results" / "report.md").read_text()
    assert "95% CI" in report and "TIMNET" in report and "GMTCN" in report
    assert len(glob.glob(str(folder / "ray-results" / "TOY_3fold_*_last_epoch.json"))) == 4


def test_a_repeated_grid_trains_nothing(on_ray, folder):
    before = weight_times(folder / "ray-models")
    runs = sorted(os.listdir(folder / "ray-models"))
    status, err = run_grid(folder, "ray")
    assert status == 0, err
    assert weight_times(folder / "ray-models") == before  # no weight file rewritten
    assert sorted(os.listdir(folder / "ray-models")) == runs  # the same run folders, none added
    assert "started" not in err


def test_failures_are_reported_and_the_other_runs_finish(folder, local_ray):
    (folder / "broken.npy").write_text("not a feature file")
    (folder / "bad.toml").write_text("""
model = "TIMNET"
random_seed = 3
split_fold = 3
epoch = 1
batch_size = 8
dilation_size = 2
filter_size = 8
protocol = ["last_epoch", "inner_val"]
val_fraction = 0.0   # inner_val cannot split off no rows: that point is refused, the others train
[[corpus]]
data = "TOY"
feature_path = "TOY.npy"
[[corpus]]
data = "TOY"
feature_path = "broken.npy"
""")
    status, err = run_grid(folder, "bad", "--workers", "2", toml="bad.toml")
    assert status == 2
    assert f"{folder / 'broken.npy'}: not a readable .npy feature file" in err  # the two points of that file
    failures = err[err.index("grid: "):]
    assert "--protocol inner_val" in failures and "--val_fraction 0: --protocol inner_val chooses" in failures
    assert "the other runs are done" in err
    [good] = [path for path in glob.glob(str(folder / "bad-models" / "*" / "run.json"))
              if json.load(open(path))["config"]["protocol"] == "last_epoch"]
    assert len(glob.glob(os.path.join(os.path.dirname(good), "*.hdf5"))) == 3
    assert glob.glob(str(folder / "bad-results" / "TOY_3fold_*_3_*_TIMNET_last_epoch.json"))
    assert "95% CI" in (folder / "bad-results" / "report.md").read_text()


def test_a_fold_another_process_trains_fails_in_the_grid_and_trains_once_it_is_free(tmp_path):
    """runs/run_folder.RunFolder.training in a grid's worker: a fold whose lock another process holds (a --resume
    of the run, a second grid) fails, named with that process, the other points finish; freed, it trains."""
    toy_features(tmp_path / "TOY.npy")
    (tmp_path / "grid.toml").write_text(GRID.replace('model = ["TIMNET", "GMTCN"]', 'model = "TIMNET"')
                                        .replace("random_seed = [1, 2]", "random_seed = 1"))
    assert run_grid(tmp_path, "lock", "--address", "none")[0] == 0
    [run] = glob.glob(str(tmp_path / "lock-models" / "*"))
    os.remove(os.path.join(run, "3-fold_weights_best_3.hdf5"))
    with another_process_holding(os.path.join(run, ".3-fold_3.lock"), "a resume elsewhere"):
        status, err = run_grid(tmp_path, "lock", "--address", "none")
        assert status == 2 and "fold 3/3 is being trained by a resume elsewhere; wait for it to end" in err, err
        assert not os.path.exists(os.path.join(run, "3-fold_weights_best_3.hdf5"))
    assert run_grid(tmp_path, "lock", "--address", "none")[0] == 0
    assert os.path.exists(os.path.join(run, "3-fold_weights_best_3.hdf5"))


def test_a_point_whose_fold_diverged_fails_at_once_when_the_grid_runs_again(tmp_path, capsys):
    """A fold whose weights diverge is named and not saved; the next run of the grid does not train it again with
    the same settings (to the same end), but names it in one line before anything trains."""
    toy_features(tmp_path / "TOY.npy")
    (tmp_path / "grid.toml").write_text(GRID.replace('model = ["TIMNET", "GMTCN"]', 'model = "TIMNET"')
                                        .replace("random_seed = [1, 2]", "random_seed = 1") + "lr = 1e30\n")
    status, err = run_grid(tmp_path, "nan", "--address", "none")
    assert status == 2 and "fold 1/3 diverged: its weights are not finite" in err, err
    [run] = glob.glob(str(tmp_path / "nan-models" / "*"))
    assert os.path.isfile(os.path.join(run, "3-fold_diverged_1.json"))
    capsys.readouterr()
    status, err = run_grid(tmp_path, "nan", "--address", "none")
    assert status == 2 and f"not run: {run}: fold 1/3 diverged in training (training loss nan at epoch 1)" in err, err
    assert "give it a lower lr in the grid file (this one's: 1e+30)" in err and "--resume" not in err, err
    assert "1 point, 0 runs, 0 folds" in capsys.readouterr().out  # nothing trained ("1 points" before)


def test_a_grid_plans_speaker_normalised_rows_apart(tmp_path):
    """--normalize speaker in a grid: the workers get the rows standardised by speaker (engine/normalization.py),
    stored apart from the same file's raw rows; a file without speakers: that point is reported, not run."""
    from timnet_ser.engine.normalization import by_speaker
    from timnet_ser.grid.plan import plan
    toy_features(tmp_path / "TOY.npy")
    data = np.load(tmp_path / "TOY.npy", allow_pickle=True).item()
    speakers = np.array([f"p{i % 3}" for i in range(len(data["x"]))])
    np.save(tmp_path / "SPK.npy", {**data, "speakers": speakers}, allow_pickle=True)
    path = write(tmp_path, f"""
normalize = ["none", "speaker"]
[[corpus]]
data = "SPK"
feature_path = "{tmp_path / 'SPK.npy'}"
[[corpus]]
data = "TOY"
feature_path = "{tmp_path / 'TOY.npy'}"
""")
    planned = plan(points_of(path, epoch=1, split_fold=2, model_path=str(tmp_path / "M"),
                             result_path=str(tmp_path / "R")))
    keys = {run.run.config.hyper.normalize: run.features for run in planned.runs if run.run.config.data == "SPK"}
    assert keys["speaker"].startswith(keys["none"] + "/speaker/")  # TOY's rows are SPK's: the speakers tell apart
    np.testing.assert_array_equal(planned.features[keys["none"]][0], data["x"])
    np.testing.assert_array_equal(planned.features[keys["speaker"]][0], by_speaker(data["x"], speakers, "SPK"))
    [(label, error)] = planned.failures
    assert "TOY" in label and "no speaker for every row" in error


def test_a_grid_point_on_several_corpora_finds_each_corpus_default_file(tmp_path, monkeypatch):
    """``data = "TA+TB"`` without a feature_path: MFCC/TA.npy and MFCC/TB.npy, as --mode train reads them (the plan
    looked for MFCC/TA+TB.npy and answered "feature file not found: MFCC/TA")."""
    from timnet_ser.grid.plan import plan
    monkeypatch.chdir(tmp_path)
    os.mkdir("MFCC")
    toy_features(tmp_path / "MFCC" / "TA.npy")
    toy_features(tmp_path / "MFCC" / "TB.npy", seed=1)
    path = write(tmp_path, 'data = "TA+TB"\n')
    planned = plan(points_of(path, epoch=1, split_fold=2, model_path=str(tmp_path / "M"),
                             result_path=str(tmp_path / "R")))
    assert planned.failures == []
    [run] = planned.runs
    assert run.run.config.feature_path == f"{tmp_path / 'MFCC' / 'TA.npy'}+{tmp_path / 'MFCC' / 'TB.npy'}"
    assert len(planned.features[run.features][0]) == 60  # both corpora's rows


# --- a driver's end ---------------------------------------------------------------------------------------------

def process_table() -> dict[int, tuple[int, str, str]]:
    """{pid: (parent pid, start time, title)} of the live processes (not zombies), from Linux's /proc."""
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        if fields[0] != "Z":
            found[int(name)] = (int(fields[1]), fields[19], title)
    return found


def descendants(table: dict, root: int) -> dict[int, tuple[int, str, str]]:
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, row in table.items():
            if row[0] == parent and pid not in found:
                found[pid] = row
                todo.append(pid)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
def test_a_sigkilled_driver_leaves_no_ray_process():
    """A process that started a local Ray is SIGKILLed: within 10 s none of the processes it started is left,
    Ray's dashboard and runtime-env agents included, which Ray alone keeps for some 60 s more (grid/fate_sharing.py).
    A process counts as the same one while its pid and start time are."""
    code = ("import time\nfrom timnet_ser.grid import pool\n"
            "pool.start_local_ray(cpus=1, gpus=0, object_store_bytes=128 * 2 ** 20)\nprint('up', flush=True)\n"
            "time.sleep(300)")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    started = {}
    try:
        assert select.select([driver.stdout], [], [], 120)[0], "the local Ray did not start within 120 s"
        assert driver.stdout.readline() == "up\n"
        agents, deadline = {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}, time.time() + 60
        while not agents <= {title for _, _, title in started.values()} and time.time() < deadline:
            time.sleep(0.2)
            started = descendants(process_table(), driver.pid)
        assert agents <= {title for _, _, title in started.values()}, f"no Ray agents: {sorted(started.values())}"
        driver.kill()
        driver.wait(timeout=30)

        def left() -> list[str]:
            now = process_table()
            return [title for pid, (_, start, title) in started.items() if now.get(pid, (0, None))[1] == start]

        deadline = time.time() + 10
        while left() and time.time() < deadline:
            time.sleep(0.1)
        assert not left(), f"{len(left())} of the driver's {len(started)} processes outlived it by 10 s: {left()}"
    finally:
        driver.kill()
        driver.wait(timeout=30)
        now = process_table()
        for pid, (_, start, _) in started.items():  # whatever the outcome, none outlives the test
            if now.get(pid, (0, None))[1] == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_sigterm_after_ray_starts_ends_the_driver_as_its_own_handler_says():
    """Ray's core worker installs absl's SIGTERM handler over the command line's: a scheduler's SIGTERM during a grid
    dumped a stack trace and aborted (exit status 134) instead of "interrupted: every finished fold is saved"."""
    code = ("import signal, sys, time\nfrom timnet_ser.grid import pool\n"
            "def stop(signum, frame):\n    raise KeyboardInterrupt\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "pool.start_local_ray(cpus=1, gpus=0, object_store_bytes=128 * 2 ** 20)\n"
            "try:\n    print('up', flush=True)\n    time.sleep(300)\nexcept KeyboardInterrupt:\n"
            "    print('stopped', flush=True)\n"
            "    import ray\n    ray.shutdown()\n    sys.exit(143)\n")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([driver.stdout], [], [], 120)[0], "the local Ray did not start within 120 s"
        assert driver.stdout.readline() == "up\n"
        driver.send_signal(signal.SIGTERM)
        out, err = driver.communicate(timeout=60)
        assert driver.returncode == 143 and out == "stopped\n", (driver.returncode, out, err[-2000:])
        assert "SIGTERM received" not in err
    finally:
        driver.kill()
        driver.wait(timeout=30)


def test_a_grid_of_too_many_points_is_refused_before_it_is_expanded(tmp_path):
    """Four axes of 100 values (10^8 points, a 1.3 kB file) expanded for minutes, memory growing, before a word."""
    axes = "\n".join(f"{key} = [{', '.join(str(v) for v in values)}]" for key, values in [
        ("random_seed", range(100)), ("lr", [i / 1e4 for i in range(1, 101)]), ("epoch", range(1, 101)),
        ("batch_size", range(1, 101))])
    path = write(tmp_path, axes)
    started = time.monotonic()
    with pytest.raises(UserError, match=r": 100,000,000 points \(the product of its axes' lengths\); a grid holds at "
                                        r"most 10,000: split it into several files$"):
        points_of(path)
    assert time.monotonic() - started < 5


def test_a_second_command_on_a_grid_file_that_runs_is_one_line(tmp_path, capsys):
    """The same grid started twice at once: the two split the folds, each reported the other's as failed, and
    neither wrote the results; the second is now refused while the first holds the file."""
    import fcntl
    grid = tmp_path / "g.toml"
    grid.write_text(f'data = "TOY"\nfeature_path = "{tmp_path / "TOY.npy"}"\nepoch = 1\n')
    with open(grid, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running grid command holds it
        assert main(["--mode", "grid", "--grid", str(grid), "--address", "none"]) == 2
    assert capsys.readouterr().err == (f"error: --grid {grid}: another grid command runs this file now; wait for it "
                                       "to end (run it again then, if folds are left)\n")
    assert main(["--mode", "grid", "--grid", str(grid), "--address", "none"]) == 2  # free: on to its own error
    assert "another grid command" not in capsys.readouterr().err


def test_a_grid_file_that_cannot_be_locked_runs_with_a_note(tmp_path, monkeypatch, capsys):
    """A file system without flock (some network or FUSE mounts) gave a traceback; the grid goes on, saying so."""
    import errno
    import fcntl

    def no_locks(*_):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    grid = tmp_path / "g.toml"
    grid.write_text("epoch = 1\n")
    with pool.only_grid_on(str(grid)):
        pass
    assert capsys.readouterr().out == (f"note: --grid {grid}: cannot be locked here (No locks available); do not "
                                       "start the same grid twice at once\n")


def test_a_file_where_the_private_ray_folder_goes_is_one_line(tmp_path, monkeypatch):
    """ray-<uid> in the temporary folder as a file or a link (anyone can make one in /tmp) was a traceback."""
    import tempfile

    from timnet_ser.grid import ray_security
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / f"ray-{os.getuid()}").write_text("")
    with pytest.raises(UserError, match=rf"^{tmp_path}/ray-{os.getuid()}: not a folder of this user's, where the "):
        ray_security.private_folder()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "elsewhere"))  # where a user pointed Ray: still there
    (tmp_path / "elsewhere").mkdir()
    assert ray_security.private_folder() == str(tmp_path / "elsewhere" / f"ray-{os.getuid()}" / "ray")


def test_the_workers_package_folder_is_not_one_another_user_can_make_first(tmp_path, monkeypatch):
    """The workers' PYTHONPATH began with /tmp/timnet_ser-<uid>-<hash>, a name anyone could make first, with a
    timnet_ser of their own that every worker imported; it was taken as it was. Now it lies in this user's 0700
    folder, and its timnet_ser is made again as the one link to this package."""
    import hashlib
    import tempfile

    from timnet_ser.core.paths import PACKAGE
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    digest = hashlib.sha1(PACKAGE.encode()).hexdigest()[:12]
    planted = tmp_path / f"timnet_ser-{os.getuid()}-{digest}" / "timnet_ser"  # the former name
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("raise SystemExit('planted')\n")
    os.chmod(planted.parent, 0o777)
    folder = pool.package_parent()
    assert folder == str(tmp_path / f"ray-{os.getuid()}" / f"timnet_ser-{digest}")
    assert os.stat(os.path.dirname(folder)).st_mode & 0o777 == 0o700
    assert os.readlink(os.path.join(folder, "timnet_ser")) == PACKAGE
    os.remove(os.path.join(folder, "timnet_ser"))  # another content at its name: made again
    shutil.copytree(planted, os.path.join(folder, "timnet_ser"))
    assert pool.package_parent() == folder and os.readlink(os.path.join(folder, "timnet_ser")) == PACKAGE
    assert sorted(os.listdir(folder)) == ["timnet_ser"]


def test_the_ended_ray_sessions_are_pruned_but_the_newest_and_the_running(tmp_path):
    """Ray leaves every session's folder behind: a user's grids piled them up in the private folder."""
    from timnet_ser.grid import ray_security
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a pid no process has now (reused at once only by chance)
    names = [f"session_2026-12-0{day}_10-00-00_000000_{ended.pid}" for day in range(1, 8)]
    names.append(f"session_2026-12-01_09-00-00_000000_{os.getpid()}")  # the oldest, of a running process
    names.append("session_2026-12-01_08-00-00_000000_99999999999")  # no pid is so large (an OverflowError)
    names.append(f"session_2026-12-01_07-00-00_000000_{ended.pid}")  # its log written now: another machine's?
    hour_ago = time.time() - ray_security.QUIET_SECONDS - 60
    for name in names:
        os.makedirs(tmp_path / name / "logs")
        (tmp_path / name / "logs" / "raylet.out").write_text("")
        if name != names[-1]:
            for path in (tmp_path / name / "logs" / "raylet.out", tmp_path / name / "logs", tmp_path / name):
                os.utime(path, (hour_ago, hour_ago))
    os.symlink(tmp_path / names[6], tmp_path / "session_latest")
    ray_security.prune_sessions(str(tmp_path), keep=2)
    assert sorted(os.listdir(tmp_path)) == sorted([names[5], names[6], names[7], names[9], "session_latest"])
    ray_security.prune_sessions(str(tmp_path / "none"))  # no Ray started there yet: nothing to do


def test_a_workers_package_folder_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def no_links(*args):
        raise OSError(1, "Operation not permitted")
    monkeypatch.setattr(os, "symlink", no_links)
    with pytest.raises(UserError, match=r"the Ray workers' link to the package cannot be made there \(Operation not "
                                        r"permitted\); free space there, or set RAY_TMPDIR"):
        pool.package_parent()


def test_a_grid_that_continues_runs_of_another_version_says_which_folds(tmp_path, capsys):
    """A grid run again continues its runs as a resume does, and as quietly: a fold another version of the program
    trained is named, as --resume names it."""
    toy_features(tmp_path / "TOY.npy")
    (tmp_path / "g.toml").write_text('data = "TOY"\nfeature_path = "TOY.npy"\nsplit_fold = 2\nepoch = 1\n'
                                     'batch_size = 8\ndilation_size = 2\nfilter_size = 8\n')
    status, err = run_grid(tmp_path, "v", "--address", "none", toml="g.toml")
    assert status == 0, err
    [run] = glob.glob(str(tmp_path / "v-models" / "*"))
    first, second = (os.path.join(run, f"2-fold_record_{i}.json") for i in (1, 2))
    with open(first) as f:
        record = json.load(f)
    record["program_source"] = "0" * 12  # another version's
    with open(first, "w") as f:
        json.dump(record, f)
    os.remove(second)
    capsys.readouterr()
    status, err = run_grid(tmp_path, "v", "--address", "none", toml="g.toml")
    assert status == 0, err
    assert "note: fold(s) 1 were trained by another version of this program" in capsys.readouterr().out


def test_a_grid_file_that_cannot_be_opened_for_writing_is_still_locked(tmp_path, monkeypatch, capsys):
    """The lock opens the file for writing where it may (NFS locks only so); a read-only file system (EROFS) or a
    read-only file must not end the grid in a traceback: it is opened for reading, and locked where that allows."""
    import builtins
    import errno
    grid = tmp_path / "g.toml"
    grid.write_text("epoch = 1\n")
    real_open = builtins.open

    def read_only(path, mode="r", *args, **kwargs):
        if mode == "r+b":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, mode, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", read_only)
    with pool.only_grid_on(str(grid)):
        pass
    assert capsys.readouterr().out == ""  # locked, on this file system, without a word
