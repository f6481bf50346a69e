"""Issue #22 item 3: fine-tuning (--init_from). The start weights of a fine-tuned fold are the source fold's exactly,
a new head where the classes differ (the fold seed's draw), --freeze_backbone leaves the backbone as it was, every
refusal is one line before a run folder exists, run.json records the start, and the result is an ordinary run."""

import glob
import hashlib
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from timnet_ser.Common_Model import build_trainer, train_and_save_fold
from timnet_ser.core.config import Hyper, RunConfig, TrainingData
from timnet_ser.core.errors import UserError
from timnet_ser.data import feature_files
from timnet_ser.data.feature_files import features_digest
from timnet_ser.engine import fine_tune
from timnet_ser.engine.cross_validation import start_run
from timnet_ser.engine.protocol import fold_seed
from timnet_ser.main import main
from timnet_ser.Model import MODELS, build_model, legacy_weight_groups
from timnet_ser.nn.legacy_weights import read_weight_arrays

CLASSES = ["angry", "happy", "neutral"]
FRAMES = 24
HYPER = Hyper(dilation_size=2, filter_size=8)


def toy(n, seed, classes=3):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    x = rng.normal(size=(n, FRAMES, 39)).astype("float32") + 2 * labels[:, None, None]
    return x.astype("float32"), np.eye(classes, dtype="float32")[labels]


def info(x, y, files=None, features="mfcc"):
    return TrainingData(signal_length=(FRAMES - 1) * 512, features=features, input_shape=x.shape[1:], size=0,
                        sha256=features_digest(x, y), files=files)


def config(**changes):
    values = dict(model="TIMNET", data="SRC", classes=CLASSES, feature_path="src.npy", split_fold=2, random_seed=7,
                  epochs=1, batch_size=8, hyper=HYPER)
    return RunConfig(**{**values, **changes})


def train(conf, x, y, root, files=None):
    """A run folder with every fold trained (no results files: not needed here)."""
    run = start_run(conf, info(x, y, files), x, None, str(root / "Models"), str(root / "Results"))
    trainer = build_trainer(MODELS["TIMNET"], conf, x.shape[1:], y.shape[1])
    for fold in range(run.k):
        train_and_save_fold(MODELS["TIMNET"], run, trainer, x, y, fold)
    return run


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("source")
    x, y = toy(30, 0)
    return train(config(), x, y, root, files=[f"src_{i:02d}.wav" for i in range(30)])


def target(n=24, seed=1, classes=3):
    x, y = toy(n, seed, classes)
    return x, y, [f"tgt_{i:02d}.wav" for i in range(n)]


def arrays(groups):
    return [np.asarray(v) for _, variables in groups for v in variables]


def start_weights(conf, fold, num_classes, trainer=None):
    """A fold's weights as train_fold has them before its first step: the fold seed's draw, then start_fold."""
    trainer = trainer or build_trainer(MODELS["TIMNET"], conf, (FRAMES, 39), num_classes)
    trainer.reset(fold_seed(conf, fold))
    fresh = arrays(legacy_weight_groups(trainer.model))
    started = fine_tune.start_fold(trainer.model, conf, fold)
    return fresh, arrays(legacy_weight_groups(trainer.model)), started


def test_a_fine_tuned_fold_starts_from_the_source_folds_weights_exactly(source):
    conf = config(data="TGT", init_from=source.path)
    trainer = build_trainer(MODELS["TIMNET"], conf, (FRAMES, 39), 3)
    for fold in range(2):
        _, started, record = start_weights(conf, fold, 3, trainer)
        expected = [a for _, layer in read_weight_arrays(source.weights_file(fold)) for a in layer]
        assert len(started) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(started, expected))
        assert record == {"folder": source.path, "source_fold": fold + 1, "head": "kept"}


def test_the_same_classes_in_another_order_keep_the_head_in_the_new_order(source):
    conf = config(data="TGT", init_from=source.path, classes=["Neutral", "ANGRY", "happy"])  # names: any case
    opened = fine_tune.open_source(source.path, "TIMNET")
    assert opened.same_classes(conf.classes) and not opened.same_classes(["angry", "happy", "sad"])
    assert not opened.same_classes(["angry", "happy"]) and not opened.same_classes([*CLASSES, "sad"])
    _, started, _ = start_weights(conf, 0, 3)
    (_, (kernel, bias)) = read_weight_arrays(source.weights_file(0))[-1]
    np.testing.assert_array_equal(started[-2], kernel[:, [2, 0, 1]])
    np.testing.assert_array_equal(started[-1], bias[[2, 0, 1]])


def test_other_classes_get_a_new_head_drawn_from_the_fold_seed(source):
    conf = config(data="TGT", init_from=source.path, classes=["angry", "happy", "sad", "fear"])
    fresh, started, record = start_weights(conf, 1, 4)
    expected = [a for _, layer in read_weight_arrays(source.weights_file(1)) for a in layer]
    assert all(np.array_equal(a, b) for a, b in zip(started[:-2], expected[:-2]))  # the backbone: the source's
    assert started[-2].shape == (8, 4) and np.array_equal(started[-2], fresh[-2])  # the head: the fold seed's draw
    assert np.array_equal(started[-1], fresh[-1]) and record["head"] == "new"


def refused(conf, x, y, root, files=None):
    with pytest.raises(UserError) as error:
        start_run(conf, info(x, y, files), x, None, str(root / "Models"), str(root / "Results"))
    assert "\n" not in str(error.value) and not glob.glob(str(root / "Models" / "*"))  # nothing written
    return str(error.value)


def test_each_refusal_is_one_line_before_a_run_folder_exists(source, tmp_path):
    x, y, files = target()
    tuned = config(data="TGT", init_from=source.path)
    assert "holds TIMNET weights; the new run trains GMTCN" in refused(replace(tuned, model="GMTCN"), x, y, tmp_path)
    short = toy(24, 1)[0][:, :20]
    assert "features of shape (24, 39); the new run's are mfcc of shape (20, 39)" in refused(tuned, short, y, tmp_path)
    wider = replace(tuned, hyper=replace(HYPER, filter_size=16))
    assert "another network: filter_size 8 (new run 16); give the new run the source's: --filter_size 8" in \
        refused(wider, x, y, tmp_path)
    assert "folds 3 to 3 have no fold to start from; give --init_fold" in refused(replace(tuned, split_fold=3), x, y,
                                                                                 tmp_path)
    assert "--init_fold 5: " in refused(replace(tuned, split_fold=3, init_fold=5), x, y, tmp_path)
    # a leak: the source's own utterances (by their features), or the same names through another channel
    sx, sy = toy(30, 0)  # another split of the source's own rows: a test fold holds rows its source fold trained on
    assert "a leak" in refused(replace(tuned, random_seed=8), sx, sy, tmp_path)
    assert "(e.g. src_" in refused(tuned, x[:24], y[:24], tmp_path, [f"src_{i:02d}.wav" for i in range(24)])
    assert ": holds no <k>-fold_weights_best" in refused(replace(tuned, init_from=str(tmp_path)), x, y, tmp_path)


def test_fine_tuning_flags_next_to_a_resume_and_a_new_run_inside_its_source_are_one_line(source, tmp_path, capsys):
    """--resume R --freeze_backbone said "give --init_from too", and then that a run keeps its own init_from; a new
    run went into a folder inside its source run's."""
    assert main(["--mode", "train", "--resume", source.path, "--freeze_backbone"]) == 2
    err = capsys.readouterr().err
    assert "--freeze_backbone" in err and "give --init_from" not in err and "leave the flag out" in err, err
    assert main(["--mode", "train", "--data", "SRC", "--init_from", source.path, "--model_path",
                 os.path.join(source.path, "nested")]) == 2
    assert f"inside the run it fine-tunes from ({source.path}); the new run goes into a folder of its own" in \
        capsys.readouterr().err


def test_the_same_split_of_the_same_corpus_is_no_leak_and_init_fold_fills_the_missing_folds(source):
    sx, sy = toy(30, 0)
    files = [f"src_{i:02d}.wav" for i in range(30)]  # fold k tests on what source fold k held out: no leak
    conf = config(data="SRC", init_from=source.path, epochs=1)
    assert fine_tune.plan(conf, info(sx, sy, files), sx, source.test_rows)["head"] == "kept"
    x, y, files = target()
    record = fine_tune.plan(replace(conf, split_fold=3, init_fold=2), info(x, y, files), x,
                            [np.arange(i, 24, 3) for i in range(3)])
    assert [f["source_fold"] for f in record["folds"]] == [1, 2, 2]


def test_the_command_line_fine_tunes_the_head_only_records_it_and_tests_and_predicts_the_result(source, tmp_path,
                                                                                                 capsys):
    x, y, files = target()
    path = str(tmp_path / "TGT.npy")
    feature_files.save_features(path, {"x": x, "y": y, "classes": np.array(CLASSES), "files": np.array(files),
                                       "signal_length": np.int64((FRAMES - 1) * 512)})
    common = ["--model_path", str(tmp_path / "Models"), "--result_path", str(tmp_path / "Results")]
    assert main(["--mode", "train", "--data", "TGT", "--feature_path", path, "--split_fold", "2", "--epoch", "2",
                 "--batch_size", "8", "--filter_size", "8", "--dilation_size", "2", "--init_from", source.path,
                 "--freeze_backbone", *common]) == 0
    out = capsys.readouterr().out
    assert f"fine-tuning from {source.path}" in out and "fold 2 <- its fold 2" in out and "backbone: frozen" in out
    assert "fold 2: starts from" in out and "(backbone and head)" in out
    [run] = glob.glob(str(tmp_path / "Models" / "TGT_*"))
    for fold in range(2):  # the backbone (BatchNorm statistics included) as the source's; the head trained
        before, after = (read_weight_arrays(os.path.join(folder, f"2-fold_weights_best_{fold + 1}.hdf5"))
                         for folder in (source.path, run))
        assert all(np.array_equal(a, b) for (_, la), (_, lb) in zip(before[:-1], after[:-1]) for a, b in zip(la, lb))
        assert not np.array_equal(before[-1][1][0], after[-1][1][0])
    with open(os.path.join(run, "run.json")) as f:
        recorded = json.load(f)
    assert recorded["config"]["init_from"] == source.path and recorded["config"]["freeze_backbone"] is True
    start = recorded["init_from"]
    assert start["folder"] == source.path and start["head"] == "kept" and start["data"] == "SRC"
    for fold, entry in enumerate(start["folds"]):
        with open(source.weights_file(fold), "rb") as f:
            assert entry == {"fold": fold + 1, "source_fold": fold + 1,
                             "weights_sha256": hashlib.sha256(f.read()).hexdigest()}
    with open(os.path.join(run, "2-fold_record_1.json")) as f:
        assert json.load(f)["started_from"]["source_fold"] == 1
    assert main(["--mode", "test", "--test_path", run]) == 0
    assert "re-test of the run" in capsys.readouterr().out
    import soundfile
    wav = str(tmp_path / "clip.wav")
    soundfile.write(wav, np.random.default_rng(0).normal(0, 0.1, (FRAMES - 1) * 512), 22050)
    assert main(["--mode", "predict", "--test_path", run, "--wav", wav]) == 0
    assert "clip.wav: " in capsys.readouterr().out
    # a "cross-corpus" test on what the source trained on: its weights saw those utterances (it was accepted, and
    # scored above the source's own held-out figure)
    theirs = str(tmp_path / "OTHER.npy")
    xs, ys = toy(30, 0)
    feature_files.save_features(theirs, {"x": xs, "y": ys, "classes": np.array(CLASSES),
                                         "signal_length": np.int64((FRAMES - 1) * 512)})
    # a resume of a fine-tuned run whose source is gone named --init_from, a flag the user never typed
    import shutil
    stopped = shutil.copytree(run, tmp_path / "stopped")
    for name in ("2-fold_record_2.json", "2-fold_weights_best_2.hdf5"):
        os.remove(stopped / name)
    with open(stopped / "run.json") as f:
        description = json.load(f)
    description["config"]["init_from"] = description["init_from"]["folder"] = str(tmp_path / "gone")
    with open(stopped / "run.json", "w") as f:
        json.dump(description, f)
    assert main(["--mode", "train", "--resume", str(stopped)]) == 2
    assert capsys.readouterr().err == (f"error: --resume {stopped}: the run was fine-tuned from {tmp_path / 'gone'}, "
                                       "which is gone; its folds not trained yet start from that folder's weights: "
                                       "put it (or a copy) back there to resume\n")
    # a resume whose source fold was replaced since the run began: it started from other weights than run.json says
    source_copy = shutil.copytree(source.path, tmp_path / "source_copy")
    for name in ("2-fold_weights_best_{}.hdf5", "2-fold_record_{}.json"):  # fold 1's, whose training held fold 2
        shutil.copy(source_copy / name.format(1), source_copy / name.format(2))
    changed = shutil.copytree(run, tmp_path / "changed")
    for name in ("2-fold_record_2.json", "2-fold_weights_best_2.hdf5"):
        os.remove(changed / name)
    description["config"]["init_from"] = description["init_from"]["folder"] = str(source_copy)
    with open(changed / "run.json", "w") as f:
        json.dump(description, f)
    assert main(["--mode", "train", "--resume", str(changed)]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"--init_from {source_copy}: its fold 2 weights changed since this run began (2-fold_weights_best_2.hdf5 is "
        "not the file its run.json recorded); put that file back, or train a new run from the folder as it is now")
    for data in ("OTHER", "SRC"):
        assert main(["--mode", "test", "--test_path", run, "--cross_corpus", "--data", data, "--feature_path",
                     theirs, "--result_path", str(tmp_path / "X")]) == 2
        err = capsys.readouterr().err
        assert (f"which the weights this run was fine-tuned from, in {source.path} trained on; a cross-corpus figure "
                "needs utterances no fold model saw") in err and err.count("\n") == 1
        assert ("30 of its 30 utterances are audio," if data == "OTHER" else "SRC, the corpus,") in err
    for argv, message in ((["--init_fold", "2"], "--init_fold 2: belongs to fine-tuning; give --init_from"),
                          (["--init_from", source.path, "--training", "stacked"], "--init_from: a fine-tuned run "
                                                                                    "trains with --training seq")):
        assert main(["--mode", "train", "--data", "TGT", "--feature_path", path, *argv, *common]) == 2
        assert message in capsys.readouterr().err


def test_a_leak_in_any_seed_is_refused_before_the_first_seed_trains(source, tmp_path, capsys):
    """Seed 7 splits as the source did (no leak), seed 8 does not: the command refused seed 8 only after seed 7 had
    trained and written its results, leaving half of what it was asked for."""
    sx, sy = toy(30, 0)
    path = str(tmp_path / "SRC.npy")
    feature_files.save_features(path, {"x": sx, "y": sy, "classes": np.array(CLASSES),
                                       "files": np.array([f"src_{i:02d}.wav" for i in range(30)]),
                                       "signal_length": np.int64((FRAMES - 1) * 512)})
    models = tmp_path / "Models"
    assert main(["--mode", "train", "--data", "SRC", "--feature_path", path, "--split_fold", "2", "--epoch", "1",
                 "--batch_size", "8", "--filter_size", "8", "--dilation_size", "2", "--init_from", source.path,
                 "--random_seed", "7,8", "--model_path", str(models), "--result_path", str(tmp_path / "R")]) == 2
    assert f"--init_from {source.path}: its fold 1 trained on" in capsys.readouterr().err
    assert not models.exists() or not os.listdir(models)


def test_the_authors_folder_is_a_source_and_their_corpus_names_are_a_leak(shared, tmp_path):
    authors = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    emodb = ["angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"]
    x, y = toy(8, 1, classes=7)
    conf = RunConfig(model="TIMNET", data="TGT", classes=emodb, feature_path="tgt.npy", split_fold=2, random_seed=7,
                     epochs=1, batch_size=8, init_from=authors)
    test_rows = [np.arange(0, 8, 2), np.arange(1, 8, 2)]
    record = fine_tune.plan(conf, info(x, y, [f"tgt_{i:02d}.wav" for i in range(8)]), x, test_rows)
    assert record["data"] == "EMODB" and record["head"] == "kept" and record["folds"][1]["source_fold"] == 2
    model = build_model(MODELS["TIMNET"], (FRAMES, 39), 7, conf.hyper)
    fine_tune.start_fold(model, conf, 1)
    expected = [a for _, layer in read_weight_arrays(os.path.join(authors, "10-fold_weights_best_2.hdf5"))
                for a in layer]
    assert all(np.array_equal(a, b) for a, b in zip(arrays(legacy_weight_groups(model)), expected))
    named = [f"12a01F{chr(97 + i)}.wav" for i in range(8)]  # named as EMO-DB names its recordings
    assert "are named as its recordings are (e.g. 12a01F" in refused(conf, x, y, tmp_path, named)


def test_a_leak_through_a_run_fine_tuned_in_between_is_refused(source, tmp_path, capsys):
    """A run fine-tuned from the source holds what the source trained on (a frozen backbone is the source's, bit
    for bit): fine-tuning from it onto the source's own utterances passed the check, which looked one run back."""
    def features(name, n, seed, prefix):
        x, y = toy(n, seed)
        path = str(tmp_path / f"{name}.npy")
        feature_files.save_features(path, {"x": x, "y": y, "classes": np.array(CLASSES),
                                           "files": np.array([f"{prefix}_{i:02d}.wav" for i in range(n)]),
                                           "signal_length": np.int64((FRAMES - 1) * 512)})
        return path
    common = ["--mode", "train", "--split_fold", "2", "--epoch", "1", "--batch_size", "8", "--filter_size", "8",
              "--dilation_size", "2", "--freeze_backbone", "--result_path", str(tmp_path / "R")]
    between = tmp_path / "between"
    assert main([*common, "--data", "TGT", "--feature_path", features("TGT", 24, 1, "tgt"), "--init_from",
                 source.path, "--model_path", str(between)]) == 0
    [middle] = glob.glob(str(between / "*"))
    capsys.readouterr()
    models = tmp_path / "Models"
    assert main([*common, "--data", "SRC", "--feature_path", features("SRC", 30, 0, "src"), "--init_from", middle,
                 "--random_seed", "8", "--model_path", str(models)]) == 2
    err = capsys.readouterr().err
    assert f"--init_from {middle}: it goes back by fine-tuning to {source.path}, and its fold " in err, err
    assert "test fold 1 of the new run holds (e.g. src_" in err or "test fold 2 of the new run holds (e.g. src_" in err
    assert not models.exists() or not os.listdir(models)
    # a "cross-corpus" test of a run two fine-tunings away from the source, on the source's training audio: its
    # weights go back to it (the check looked one run back)
    third = tmp_path / "third"
    assert main([*common, "--data", "TGT3", "--feature_path", features("TGT3", 24, 3, "t3"), "--init_from", middle,
                 "--model_path", str(third)]) == 0
    [grandchild] = glob.glob(str(third / "*"))
    capsys.readouterr()
    for data in ("OTHER", "SRC"):
        assert main(["--mode", "test", "--test_path", grandchild, "--cross_corpus", "--data", data,
                     "--feature_path", str(tmp_path / "SRC.npy"), "--result_path", str(tmp_path / "X")]) == 2
        err = capsys.readouterr().err
        assert (f"which the weights this run goes back to by fine-tuning, in {source.path} trained on; a "
                "cross-corpus figure needs utterances no fold model saw") in err and err.count("\n") == 1, err
        assert ("30 of its 30 utterances are audio," if data == "OTHER" else "SRC, the corpus,") in err
    # the run in between's training recordings through another channel (their names, other features): said, as
    # names are no proof (the test was a CROSS-CORPUS figure without a word)
    assert main(["--mode", "test", "--test_path", middle, "--cross_corpus", "--data", "CHANNEL", "--feature_path",
                 features("CHANNEL", 24, 11, "tgt"), "--result_path", str(tmp_path / "X")]) == 0
    out = capsys.readouterr().out
    assert (f"note: {tmp_path / 'CHANNEL.npy'}: 24 of its 24 utterances are named as recordings that the weights in "
            f"{middle} trained on (e.g. tgt_00.wav): if they are those recordings (through another channel, cut "
            "again), this is no cross-corpus figure") in out, out
    # the API's arrays are checked as a file's are: they were accepted (UAR 0.47 on the source's own audio)
    from timnet_ser import load_run
    src = feature_files.load_features(str(tmp_path / "SRC.npy"))
    for data in ("OTHER", "src"):
        with pytest.raises(UserError, match="which the weights this run goes back to by fine-tuning, in"):
            load_run(grandchild).evaluate((src["x"], src["y"], list(src["classes"])), data=data)

    def edited_copy(name, **record):  # the grandchild, its run.json's record of where it started edited
        folder = shutil.copytree(grandchild, tmp_path / name)
        with open(folder / "run.json") as f:
            description = json.load(f)
        description["init_from"].update(record)
        description["config"]["init_from"] = description["init_from"]["folder"]
        with open(folder / "run.json", "w") as f:
            json.dump(description, f)
        return str(folder)
    fresh = features("FRESH", 24, 7, "fresh")
    test = ["--mode", "test", "--cross_corpus", "--data", "FRESH", "--feature_path", fresh, "--result_path",
            str(tmp_path / "X")]
    # a hand-edited corpus of the run it started from: one line, never a TypeError
    assert main([*test, "--test_path", edited_copy("edited_data", data=["TGT"])]) == 2
    assert "damaged run file ('init_from' must name the folder it started from, its corpus" in \
        capsys.readouterr().err
    # a run of the chain that cannot be read: why it was opened is said, and no --init_from the user never typed
    (tmp_path / "a_file").write_text("")
    assert main([*test, "--test_path", edited_copy("to_file", folder=str(tmp_path / "a_file"))]) == 2
    err = capsys.readouterr().err
    assert (f"goes back by fine-tuning to {tmp_path / 'a_file'}, which cannot be read (" in err
            and "run.json: init_from " in err and "--init_from" not in err and err.count("\n") == 1), err
    # a chain cut short: the test says what it could not compare (it said nothing)
    assert main([*test, "--test_path", edited_copy("to_gone", folder=str(tmp_path / "gone"))]) == 0
    assert f"note: {tmp_path / 'to_gone'}: {tmp_path / 'gone'}, which it goes back to by fine-tuning, is gone: " \
           "not compared" in capsys.readouterr().out
    # a hand-edited record that goes round in a loop is named so (it was followed 16 times, "further than 17 runs")
    assert main([*test, "--test_path", edited_copy("loop", folder=str(tmp_path / "loop"))]) == 0
    assert (f"note: {tmp_path / 'loop'}: {tmp_path / 'loop' / 'run.json'} names {tmp_path / 'loop'}, a run already "
            "on the chain, as its init_from: the records go round in a loop") in capsys.readouterr().out
    # the source there, its weights not whole: still compared (only its record and training rows are read)
    weights = glob.glob(os.path.join(source.path, "*weights_best_2.hdf5"))[0]
    os.rename(weights, weights + ".aside")
    try:
        assert main([*common, "--data", "SRC", "--feature_path", str(tmp_path / "SRC.npy"), "--init_from", middle,
                     "--random_seed", "8", "--model_path", str(models)]) == 2
        assert f"it goes back by fine-tuning to {source.path}, and its fold " in capsys.readouterr().err
    finally:
        os.rename(weights + ".aside", weights)
    # a hand-edited record of where the run in between started: one line, never a TypeError
    description = json.loads(open(os.path.join(middle, "run.json")).read())
    edited = str(tmp_path / "edited")
    shutil.copytree(middle, edited)
    description["init_from"]["folds"] = 3
    with open(os.path.join(edited, "run.json"), "w") as f:
        json.dump(description, f)
    x, y = toy(24, 5)
    with pytest.raises(UserError, match=r"edited/run.json: damaged run file \('init_from' must name the folder"):
        fine_tune.check_leak(fine_tune.open_source(edited, "TIMNET"), config(data="TGT2", init_from=edited), info(
            x, y, [f"new_{i:02d}.wav" for i in range(24)]), x, [np.arange(0, 24, 2), np.arange(1, 24, 2)])
    os.rename(source.path, source.path + "_moved")  # a chain whose start is gone: said, and not compared
    try:
        x, y = toy(24, 5)
        files = [f"new_{i:02d}.wav" for i in range(24)]
        conf = config(data="TGT2", feature_path="tgt2.npy", init_from=middle, random_seed=9)
        said = fine_tune.check_leak(fine_tune.open_source(middle, "TIMNET"), conf, info(x, y, files), x,
                                    [np.arange(0, 24, 2), np.arange(1, 24, 2)])
        assert said.endswith(f"; {source.path}, which it goes back to by fine-tuning, is gone: not compared"), said
    finally:
        os.rename(source.path + "_moved", source.path)


def test_a_cross_corpus_test_of_a_child_of_the_authors_weights_says_what_it_could_not_compare(shared, tmp_path,
                                                                                                capsys):
    """Fine-tuned from EMODB_46, whose folder records no training rows: a test corpus whose file names are not
    known cannot be compared with what EMODB_46 trained on, and was accepted without a word."""
    authors = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    emodb = ["angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"]
    x, y = toy(16, 1, classes=7)
    target = str(tmp_path / "TGT.npy")
    feature_files.save_features(target, {"x": x, "y": y, "classes": np.array(emodb),
                                         "files": np.array([f"tgt_{i:02d}.wav" for i in range(16)]),
                                         "signal_length": np.int64((FRAMES - 1) * 512)})
    assert main(["--mode", "train", "--data", "TGT", "--feature_path", target, "--init_from", authors,
                 "--split_fold", "2", "--epoch", "1", "--batch_size", "8", "--model_path", str(tmp_path / "M"),
                 "--result_path", str(tmp_path / "R")]) == 0
    [child] = glob.glob(str(tmp_path / "M" / "*"))
    unnamed = str(tmp_path / "HALF.npy")
    hx, hy = toy(14, 5, classes=7)
    feature_files.save_features(unnamed, {"x": hx, "y": hy, "classes": np.array(emodb),
                                          "signal_length": np.int64((FRAMES - 1) * 512)})
    capsys.readouterr()
    assert main(["--mode", "test", "--test_path", child, "--cross_corpus", "--data", "HALF", "--feature_path",
                 unnamed, "--result_path", str(tmp_path / "R")]) == 0
    assert (f"goes back by fine-tuning to {os.path.abspath(authors)}, which records no training rows, and {unnamed} "
            "names no files: "
            "that it holds none of EMODB's recordings is taken on trust") in capsys.readouterr().out
