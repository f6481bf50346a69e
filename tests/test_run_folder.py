"""A run folder describes itself: test, predict and resume take everything from its run.json and refuse flags that
contradict it; re-tests on another split or other features happen only when asked for by name, and say so.

Everything goes through the real command line (``main.main`` in this process, or ``main.py`` in a child process
where a signal or another working directory is part of the test)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import CODE, SPEECH_WAV
from test_engine import toy_data
from timnet_ser.core.config import RunConfig
from timnet_ser.main import main


def toy_feature_file(path, n=40, seed=0):
    x, y = toy_data(n, seed=seed)
    np.save(path, {"x": x, "y": y, "classes": np.array(["a", "b", "c"]), "signal_length": np.int64(23 * 512)})
    return str(path)


def only(folder, contains=""):
    [name] = [n for n in os.listdir(folder) if contains in n]
    return os.path.join(folder, name)


def results_json(folder, contains=""):
    [name] = [n for n in os.listdir(folder) if n.endswith(".json") and contains in n and not n.startswith("report")]
    with open(os.path.join(folder, name)) as f:
        return name, json.load(f)


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    return err[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-fold TIM-Net run of seed 46 on a toy corpus, and its paths."""
    tmp = tmp_path_factory.mktemp("run")
    features = toy_feature_file(tmp / "TOY.npy")
    models, results = str(tmp / "M"), str(tmp / "R")
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "4", "--epoch", "2",
                 "--batch_size", "8", "--dilation_size", "3", "--random_seed", "46", "--model_path", models,
                 "--result_path", results]) == 0
    return {"features": features, "folder": only(models), "results": results, "tmp": tmp}


def test_run_json_describes_the_run(trained):
    with open(os.path.join(trained["folder"], "run.json")) as f:
        run = json.load(f)
    config = run["config"]
    assert (config["model"], config["data"], config["random_seed"], config["split_fold"], config["cv"]) == \
           ("TIMNET", "TOY", 46, 4, "kfold")
    assert config["classes"] == ["a", "b", "c"] and config["hyper"]["dilation_size"] == 3
    assert config["feature_path"] == os.path.abspath(trained["features"])
    assert run["feature_file"]["size"] == os.path.getsize(trained["features"]) and len(run["feature_file"]["sha256"]) == 64
    assert run["corpus"] == {"signal_length": 23 * 512, "sample_rate": 22050, "features": "mfcc",
                             "input_shape": [24, 39], "synthetic": False}
    assert sorted(r for rows in run["test_rows"] for r in rows) == list(range(40))
    assert run["result_path"] == os.path.abspath(trained["results"]) and run["versions"]["tensorflow"]


@pytest.mark.parametrize("flags, named", [
    (["--random_seed", "47"], "--random_seed 47: the run in"),
    (["--random_seed", "47", "--split_fold", "4"], "--random_seed 47"),
    (["--split_fold", "5"], "--split_fold 5"),
    (["--cv", "speaker"], "--cv speaker"),
    (["--model", "GMTCN"], "--model GMTCN"),
    (["--data", "EMODB"], "--data EMODB"),
])
def test_a_flag_that_contradicts_the_run_is_refused(trained, tmp_path, capsys, flags, named):
    out = str(tmp_path / "R")
    assert main(["--mode", "test", "--test_path", trained["folder"], "--result_path", out, *flags]) == 2
    line = error_line(capsys)
    assert named in line and trained["folder"] in line
    assert not os.path.exists(out)


def test_the_run_alone_retests_to_the_training_figures(trained, tmp_path, capsys):
    out = str(tmp_path / "R")
    assert main(["--mode", "test", "--test_path", trained["folder"], "--result_path", out]) == 0
    printed = capsys.readouterr().out
    _, tested = results_json(out)
    _, trained_record = results_json(trained["results"], "last_epoch")
    assert tested["summary"] == trained_record["summary"]
    assert [f["y_pred"] for f in tested["folds"]] == [f["y_pred"] for f in trained_record["folds"]]
    assert tested["retest"]["split"] == "own" and "on its own split" in printed
    # what chose the weights is said as for a paper run (a re-test named no protocol but paper)
    assert "; each fold's weights are those of its last epoch (--protocol last_epoch)" in printed
    pooled = trained_record["summary"]
    assert f"pooled over folds: WAR {pooled['war_pooled'] * 100:.2f}%  UAR {pooled['uar_pooled'] * 100:.2f}%" in printed


def test_another_split_only_by_name_and_labelled(trained, tmp_path, capsys):
    out = str(tmp_path / "R")
    assert main(["--mode", "test", "--test_path", trained["folder"], "--random_seed", "47", "--retest_other_split",
                 "--result_path", out]) == 0
    printed = capsys.readouterr().out
    name, record = results_json(out)
    assert record["retest"]["split"] == "other" and "OTHER SPLIT (seed 47" in printed
    assert "other-split" in name and "OTHER SPLIT" in record["title"]
    with open(os.path.join(trained["folder"], "run.json")) as f:
        own_rows = json.load(f)["test_rows"]
    assert [f["test_rows"] for f in record["folds"]] != own_rows


def test_other_features_only_by_name_and_labelled(trained, tmp_path, capsys):
    copy = str(tmp_path / "copy.npy")
    shutil.copy(trained["features"], copy)  # the same content elsewhere: the run's own features
    assert main(["--mode", "test", "--test_path", trained["folder"], "--feature_path", copy, "--result_path",
                 str(tmp_path / "R1")]) == 0
    assert results_json(str(tmp_path / "R1"))[1]["retest"] == {"split": "own", "features": "own", "label": ""}
    other = toy_feature_file(tmp_path / "other.npy", seed=3)
    assert main(["--mode", "test", "--test_path", trained["folder"], "--feature_path", other, "--result_path",
                 str(tmp_path / "R2")]) == 2
    assert "--retest_other_features" in error_line(capsys) and not os.path.exists(tmp_path / "R2")
    assert main(["--mode", "test", "--test_path", trained["folder"], "--feature_path", other,
                 "--retest_other_features", "--result_path", str(tmp_path / "R2")]) == 0
    printed = capsys.readouterr().out
    # the run's seed and folds over other features: the split cannot be checked, and is not said to be another
    assert "OTHER FEATURES" in printed and "SPLIT NOT CHECKED (the run's seed" in printed
    assert "OTHER SPLIT" not in printed
    [path, record] = results_json(str(tmp_path / "R2"))
    assert record["retest"]["features"] == "other" and record["retest"]["split"] == "unchecked"
    assert path.endswith("_test_unchecked-split_other-features.json"), path
    from timnet_ser.runs.report_rows import protocol_label
    assert protocol_label(record).startswith(f"test of {os.path.basename(trained['folder'])} (SPLIT NOT CHECKED (")
    x, y = toy_data(40, seed=4)  # other classes: the line blamed --data, which was the run's own
    two = str(tmp_path / "two.npy")
    np.save(two, {"x": x, "y": y[:, :2] + y[:, 2:] * [1, 0], "classes": np.array(["a", "d"]),
                  "signal_length": np.int64(23 * 512)})
    assert main(["--mode", "test", "--test_path", trained["folder"], "--feature_path", two,
                 "--retest_other_features", "--result_path", str(tmp_path / "R3")]) == 2
    assert error_line(capsys) == (f"error: --feature_path {two}: holds the classes a, d, the run in "
                                  f"{trained['folder']} classifies a, b, c; a re-test scores the run's classes "
                                  "(another corpus: --cross_corpus)")


def tone(path, pitch, seconds=0.6):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(seconds * 22050)) / 22050
    sf.write(path, 0.3 * np.sin(2 * np.pi * pitch * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)), 22050)


def test_gmtcn_run_of_your_own_predicts_from_its_folder_alone(tmp_path, capsys):
    """Acceptance: a GM-TCNet run on a 4-class folder dataset predicts with only --test_path and --wav, after its
    feature file was deleted; a file of its training corpus is said to be one."""
    wavs = tmp_path / "mine"
    for c, label in enumerate(("calm", "glad", "sad", "tense")):
        for i in range(4):
            tone(str(wavs / label / f"{label}{i}.wav"), 150 + 90 * c + 7 * i)
    features = str(tmp_path / "MYSET.npy")
    assert main(["--mode", "extract", "--data", "MYSET", "--wav_path", str(wavs), "--feature_path", features,
                 "--workers", "1"]) == 0
    assert main(["--mode", "train", "--data", "MYSET", "--model", "GMTCN", "--feature_path", features,
                 "--split_fold", "2", "--epoch", "1", "--batch_size", "8", "--model_path", str(tmp_path / "M"),
                 "--result_path", str(tmp_path / "R")]) == 0
    os.remove(features)
    folder = only(str(tmp_path / "M"))
    capsys.readouterr()
    assert main(["--mode", "predict", "--test_path", folder, "--wav", str(wavs / "sad" / "sad2.wav")]) == 0
    printed = capsys.readouterr().out
    assert "GMTCN MYSET" in printed and "sad2.wav: " in printed
    assert "in the run's training corpus: 1 of 2 fold models trained on it" in printed
    held = int(printed.split("fold ")[-1].split(",")[0])  # "...; fold H, which held it out, predicts ..."
    for fold in (held, 3 - held):  # scored by the fold that held it out alone: a held-out score (said otherwise before)
        assert main(["--mode", "predict", "--test_path", folder, "--wav", str(wavs / "sad" / "sad2.wav"),
                     "--fold", str(fold)]) == 0
        printed = capsys.readouterr().out
        assert (f"fold {held}, which scored it, held it out, so this is a held-out score" in printed) == (fold == held)
        assert ("1 of 1 fold models trained on it, so this is no held-out score" in printed) == (fold != held)
    new = str(tmp_path / "new.wav")
    tone(new, 505)
    assert main(["--mode", "predict", "--test_path", folder, "--wav", new]) == 0
    printed = capsys.readouterr().out
    assert "new.wav: " in printed and "training corpus" not in printed
    assert main(["--mode", "predict", "--test_path", folder, "--wav", new, "--model", "TIMNET"]) == 2
    assert "--model TIMNET: the run in" in error_line(capsys)
    assert main(["--mode", "test", "--test_path", folder]) == 2
    assert "MYSET.npy: the feature file of the run in" in error_line(capsys)


def run_main(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, os.path.join(CODE, "main.py"), *args], capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}, cwd=cwd, timeout=timeout)


def test_resume_from_anywhere_into_its_own_results_and_refusing_contradictions(trained, tmp_path, capsys):
    folder = str(tmp_path / "run")
    shutil.copytree(trained["folder"], folder)
    for i in (3, 4):  # as if the run had been stopped after its second fold
        os.remove(os.path.join(folder, f"4-fold_record_{i}.json"))
    results = os.path.join(str(tmp_path), "own_results")
    with open(os.path.join(folder, "run.json")) as f:
        description = json.load(f)
    description["result_path"] = results  # the copy's own results folder
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(description, f)
    for flags, named in ((["--epoch", "5"], "--epoch 5: the run in"), (["--data", "MYSET"], "--data MYSET"),
                         (["--result_path", str(tmp_path / "elsewhere")], "--result_path"),
                         (["--model_path", str(tmp_path / "elsewhere")], "--model_path"),
                         *([(["--fused_kernels", "off"], "--fused_kernels off: the run in")]
                           if description["config"]["fused_kernels"] else [])):  # where setup.sh built them
        assert main(["--mode", "train", "--resume", folder, *flags]) == 2
        assert named in error_line(capsys)
    # a results folder that does not exist is never made where a run's run.json says (a run from elsewhere)
    assert main(["--mode", "train", "--resume", folder]) == 2
    assert error_line(capsys).endswith(f"its run.json sends results to {results}, which does not exist (a run made "
                                       "elsewhere?); make that folder to resume the run there")
    assert main(["--mode", "test", "--test_path", folder]) == 2
    assert error_line(capsys).endswith("which does not exist (a run made elsewhere?); give --result_path")
    os.makedirs(results)
    done = run_main("--mode", "train", "--resume", folder, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("trained before this command") == 2
    _, resumed = results_json(results)
    _, straight = results_json(trained["results"], "last_epoch")
    assert [f["y_pred"] for f in resumed["folds"]] == [f["y_pred"] for f in straight["folds"]]


def test_resume_removes_the_temporaries_of_its_own_results_only(trained, tmp_path, capsys):
    """A run killed while it wrote its results leaves a temporary in the results folder, which other runs share:
    resuming removes that run's temporaries there, and no other run's."""
    folder = str(tmp_path / "run")
    shutil.copytree(trained["folder"], folder)
    results = tmp_path / "shared_results"
    with open(os.path.join(folder, "run.json")) as f:
        description = json.load(f)
    description["result_path"] = str(results)
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(description, f)
    stem = results_json(trained["results"], "last_epoch")[0][:-len(".json")]  # TOY_4fold_<acc>_46_<created>_...
    other_run = stem.replace(description["created"], "2020-01-01_00-00-00")
    results.mkdir()
    own = [f".{stem}.xlsx.partial-a1b2c3.xlsx", f".{stem}_confusion.png.partial-d4e5f6.png"]
    others = [f".{other_run}.json.partial-g7h8i9.json", f".{stem.replace('_46_', '_47_')}.json.partial-j1k2.json",
              "notes.partial-x.txt"]
    for name in own + others:
        (results / name).write_bytes(b"half")
    assert main(["--mode", "train", "--resume", folder]) == 0
    assert "removed 2 partial file(s) left by an interrupted write in" in capsys.readouterr().out
    left = os.listdir(results)
    assert not set(own) & set(left) and set(others) <= set(left)
    assert any(name.startswith(stem) and name.endswith(".json") for name in left)  # the results, now written


@pytest.mark.parametrize("stop, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])  # Ctrl-C; a scheduler's stop
def test_ctrl_c_during_training_prints_the_exact_resume_command(tmp_path, stop, status):
    features = toy_feature_file(tmp_path / "TOY.npy")
    models = str(tmp_path / "M")
    child = subprocess.Popen([sys.executable, os.path.join(CODE, "main.py"), "--mode", "train", "--data", "TOY",
                              "--feature_path", features, "--split_fold", "4", "--epoch", "300", "--batch_size", "8",
                              "--dilation_size", "2", "--model_path", models, "--result_path", str(tmp_path / "R")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"})
    deadline = time.time() + 240
    while time.time() < deadline and child.poll() is None:
        time.sleep(0.1)
        if os.path.isdir(models) and os.listdir(models) and \
                os.path.isfile(os.path.join(only(models), "run.json")):
            time.sleep(2)  # inside the first fold's epochs
            child.send_signal(stop)
            break
    _, err = child.communicate(timeout=120)
    assert child.returncode == status, err
    folder = only(models)
    assert f"main.py --mode train --resume {folder}" in err and "continue with" in err


def test_an_interrupt_that_tensorflow_reports_as_another_error_stops_as_ctrl_c(monkeypatch, tmp_path, capsys):
    """A SIGTERM that struck while TensorFlow bound a step's NumPy inputs came out as a TypeError ("... returned a
    result with an exception set", the interrupt its cause): a traceback and exit status 1, the kept folds unsaid."""
    from timnet_ser import Common_Model
    from timnet_ser.cli import modes as cli
    from timnet_ser.core.errors import interrupt_behind
    original, calls = Common_Model.Trainer.train_epoch, []

    def train_epoch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the second fold's first epoch
            try:
                try:
                    try:
                        raise KeyboardInterrupt
                    except KeyboardInterrupt as interrupt:
                        raise SystemError("<built-in method __array__ of numpy.ndarray object> returned a result "
                                          "with an exception set") from interrupt
                except SystemError as error:  # tensorflow's function_type_utils.bind_function_inputs
                    raise TypeError(f"Binding inputs to tf.function failed due to `{error}`") from error
            except TypeError as wrapped:  # tensorflow's traceback_utils.error_handler: `from None`, the cause cleared
                raise wrapped.with_traceback(None) from None
        return original(self, *args, **kwargs)
    monkeypatch.setattr(Common_Model.Trainer, "train_epoch", train_epoch)
    features = toy_feature_file(tmp_path / "TOY.npy")
    assert cli.main(["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "2", "--epoch",
                     "2", "--batch_size", "8", "--dilation_size", "2", "--model_path", str(tmp_path / "M"),
                     "--result_path", str(tmp_path / "R")]) == 130
    err = capsys.readouterr().err
    assert f"--mode train --resume {only(str(tmp_path / 'M'))}" in err and "continue with" in err, err
    assert not interrupt_behind(TypeError("no interrupt behind this one"))


@pytest.mark.parametrize("mode, message", [("extract", "interrupted: no feature file was written"),
                                           ("predict", "interrupted: nothing was written")])
def test_ctrl_c_message_fits_the_mode(monkeypatch, tmp_path, capsys, mode, message):
    from timnet_ser.cli import modes as cli
    from timnet_ser.data import extraction
    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(extraction, "extract_corpus", stop)
    monkeypatch.setattr(cli, "load_weights", stop)
    args = ["--wav_path", str(tmp_path), "--feature_path", str(tmp_path / "f.npy")] if mode == "extract" else \
        ["--wav", SPEECH_WAV]
    assert cli.main(["--mode", mode, "--data", "SYNTH", *args]) == 130
    assert capsys.readouterr().err.strip() == message


def test_ctrl_c_in_the_demo_does_not_say_that_nothing_was_written(monkeypatch, tmp_path, capsys):
    """The demo writes wavs, features, a run and its results one after the other: a stop keeps them."""
    from timnet_ser.cli import modes as cli
    from timnet_ser.data import synthetic_corpus
    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(synthetic_corpus, "generate", stop)
    assert cli.main(["--mode", "demo", "--wav_path", str(tmp_path / "wav")]) == 130
    assert capsys.readouterr().err.strip() == ("interrupted: what the demo wrote so far is kept; run the same command "
                                               "again to start it over")


def test_outputs_are_checked_before_the_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    wavs = tmp_path / "wav"
    for label in ("angry", "happy", "neutral", "sad"):
        tone(str(wavs / label / f"{label}.wav"), 200)
    assert main(["--mode", "extract", "--data", "SYNTH", "--wav_path", str(wavs), "--workers", "1",
                 "--feature_path", str(blocker / "F.npy")]) == 2
    err = capsys.readouterr().err
    assert "--feature_path" in err and "cannot be written" in err and "extract SYNTH" not in err
    assert main(["--mode", "predict", "--data", "EMODB", "--wav", str(wavs / "sad" / "sad.wav"),
                 "--output", str(blocker / "p.csv")]) == 2
    captured = capsys.readouterr()
    assert "--output" in captured.err and "cannot be written" in captured.err and "sad.wav" not in captured.out


def test_runs_made_in_one_second_never_share_a_results_file(tmp_path, capsys, monkeypatch):
    """A grid's points start in the same second; two with the same seed and the same mean WAR (near chance, or a
    setting that changes nothing) named the same results files, and the second replaced the first's. Now a run
    folder's suffix is part of its time, and a results set is never replaced by another record's."""
    features = toy_feature_file(tmp_path / "TOY.npy", n=24)
    monkeypatch.setattr("time.strftime", lambda *args: "2026-01-01_00-00-00")  # results.time_stamp
    flags = ["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "2", "--epoch", "1",
             "--batch_size", "8", "--filter_size", "8", "--dilation_size", "2", "--model_path", str(tmp_path / "M"),
             "--result_path", str(tmp_path / "R")]
    assert main(flags) == 0 and main(flags) == 0  # the same settings: the same training, the same WAR
    jsons = sorted(name for name in os.listdir(tmp_path / "R") if name.endswith(".json"))
    assert len(jsons) == 2 and any("_2026-01-01_00-00-00_2_TIMNET_" in name for name in jsons), jsons
    records = [json.load(open(tmp_path / "R" / name)) for name in jsons]
    assert sorted(record["weights_folder"] for record in records) == sorted(
        str(path) for path in (tmp_path / "M").iterdir())
    assert len([name for name in os.listdir(tmp_path / "R") if name.endswith("_curves.png")]) == 2
    from timnet_ser.runs import results
    stem = jsons[0][:-len(".json")]
    again = results.write_results(str(tmp_path / "R"), stem, records[0], records[0]["config"]["classes"])
    assert again["json"].endswith(f"{stem}_2.json")  # a re-test in the same second: a set of its own


def test_other_features_of_another_signal_length_say_so():
    """Features cut to another length re-tested a run labelled only OTHER FEATURES."""
    from timnet_ser.engine.retest import retest_label
    config = RunConfig(model="TIMNET", data="MY", classes=["a", "b"], feature_path="/x/my_30k.npy")
    assert retest_label(True, False, config, (30000, 44100))["label"] == (
        "OTHER FEATURES (my_30k.npy, not the run's; utterances of 30000 samples, the run's 44100)")
    assert retest_label(True, False, config, (44100, 44100))["label"] == "OTHER FEATURES (my_30k.npy, not the run's)"


def test_the_resume_command_works_from_any_folder(trained, monkeypatch):
    """From the folder holding Models/ it named Models/<run>, which failed from anywhere else."""
    from timnet_ser import main as entry
    from timnet_ser.runs.run_folder import require_run
    monkeypatch.chdir(os.path.dirname(os.path.dirname(trained["folder"])))
    command = require_run(trained["folder"], "--test_path").resume_command
    assert command == (f"{sys.executable} {os.path.abspath(entry.__file__)} --mode train --resume "
                       f"{os.path.abspath(trained['folder'])}")


def test_training_on_features_that_repeat_a_row_warns(tmp_path, capsys):
    """A corpus pooled with a part of itself (--data EA+E3) or a file with copied rows trained without a word, while
    a fifth of a fold's test utterances were training rows too."""
    x, y = toy_data(40)
    x[7], y[7] = x[2], y[2]
    path = str(tmp_path / "TOY.npy")
    np.save(path, {"x": x, "y": y, "classes": np.array(["a", "b", "c"]), "signal_length": np.int64(23 * 512),
                   "files": np.array([f"u{i}.wav" for i in range(40)])})
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", path, "--split_fold", "2", "--epoch", "1",
                 "--batch_size", "8", "--dilation_size", "2", "--model_path", str(tmp_path / "M"), "--result_path",
                 str(tmp_path / "R")]) == 0
    assert ("warning: --data TOY: 1 row(s) hold the same features as another row, so one recording can be in a "
            "training fold and a test fold at once, which inflates the figures: u7.wav = u2.wav; remove the copies"
            ) in capsys.readouterr().err


def test_a_results_folder_gone_after_training_says_the_folds_are_saved_and_how_to_write_them(tmp_path, monkeypatch,
                                                                                            capsys):
    """It ended in '<folder>: results folder is not writable', no word of the trained folds nor of the way on."""
    import shutil

    from timnet_ser.runs import results
    write = results.write_run_results

    def folder_replaced_by_a_file(record, result_dir, *args, **kwargs):
        shutil.rmtree(result_dir)
        open(result_dir, "w").close()
        return write(record, result_dir, *args, **kwargs)
    monkeypatch.setattr(results, "write_run_results", folder_replaced_by_a_file)
    features = toy_feature_file(tmp_path / "TOY.npy")
    models, out = tmp_path / "M", tmp_path / "R"
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "2", "--epoch", "1",
                 "--batch_size", "8", "--dilation_size", "2", "--model_path", str(models), "--result_path",
                 str(out)]) == 2
    run = only(str(models))
    assert capsys.readouterr().err.strip().endswith(
        f"results folder is not writable (File exists); every fold is trained and saved in {run}: make {out} a "
        f"writable folder and write the results with: {sys.executable} {os.path.join(CODE, 'main.py')} --mode train "
        f"--resume {run}")
    monkeypatch.setattr(results, "write_run_results", write)
    os.remove(out)
    os.makedirs(out)  # "make it a writable folder"
    assert main(["--mode", "train", "--resume", run]) == 0
    assert any(name.endswith(".json") for name in os.listdir(out))


def test_stacked_seeds_summaries_are_told_apart(tmp_path, capsys):
    """Their summaries followed one another with no title or seed: only the file names told them apart."""
    features = toy_feature_file(tmp_path / "TOY.npy")
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "2", "--epoch", "1",
                 "--batch_size", "8", "--dilation_size", "2", "--random_seed", "3,4", "--training", "stacked",
                 "--model_path", str(tmp_path / "M"), "--result_path", str(tmp_path / "R")]) == 0
    out = capsys.readouterr().out
    first, second = (out.index(f"results of TIMNET on TOY, 2-fold, seed {seed}, train:") for seed in (3, 4))
    assert first < out.index("pooled over folds", first) < second < out.index("pooled over folds", second)


def test_a_run_folder_holding_links_is_refused_and_nothing_outside_is_written(trained, tmp_path, capsys):
    """A downloaded unfinished run whose lock, weights or record file was a link: the resume wrote the lock's text,
    the weights and the record over the user's files the links pointed to."""
    import shutil
    folder = shutil.copytree(trained["folder"], tmp_path / "run")
    k = len([n for n in os.listdir(folder) if n.endswith(".hdf5")])
    for name in (f"{k}-fold_weights_best_{k}.hdf5", f"{k}-fold_record_{k}.json"):
        os.remove(folder / name)
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's")
    os.symlink(victim, folder / f".{k}-fold_{k}.lock")
    os.symlink(victim, folder / f"{k}-fold_weights_best_{k}.hdf5")
    for argv in (["--mode", "train", "--resume", str(folder)], ["--mode", "test", "--test_path", str(folder)]):
        assert main(argv) == 2
        assert capsys.readouterr().err == (
            f"error: {folder}: holds symbolic links (.{k}-fold_{k}.lock, {k}-fold_weights_best_{k}.hdf5); a run "
            "folder holds its own files, and a link would have the run read or write elsewhere: replace each by the "
            "file it points to, or remove it\n")
    assert victim.read_text() == "the user's"
