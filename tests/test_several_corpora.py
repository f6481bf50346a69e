"""Issue #22 item 2: several corpora in one run (--data A+B): per-corpus folds, --cv corpus, speakers namespaced by
corpus, classes matched or mapped onto a common set (dropped ones printed), run.json's record of every corpus and
its hash, a re-test that reproduces the run, the API on such a run, and one clear line for each bad input."""

import json
import os

import numpy as np
import pytest

from timnet_ser.core.errors import UserError
from timnet_ser.data import feature_files
from timnet_ser.data.corpus_set import Source, common_classes, corpus_rows, pool
from timnet_ser.engine.protocol import make_folds, split_folds
from timnet_ser.main import main

FRAMES = 24  # signal length (24 - 1) * 512 samples
TINY = ["--epoch", "1", "--filter_size", "8", "--dilation_size", "3", "--batch_size", "16"]


def toy_file(path, classes, n, seed, speakers=3, frames=FRAMES):
    """A dataset of its own: classes whose frames differ in mean, speakers 00, 01 ... (the same ids in every file)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(classes)
    x = (rng.normal(size=(n, frames, 39)) + 2 * labels[:, None, None]).astype("float32")
    feature_files.save_features(str(path), {
        "x": x, "y": np.eye(len(classes), dtype="float32")[labels], "classes": np.array(classes),
        "signal_length": np.int64((frames - 1) * 512), "speakers": np.array([f"{i % speakers:02d}" for i in range(n)]),
        "files": np.array([f"u{i}.wav" for i in range(n)])})
    return str(path)


def source(key, classes, n, speakers=3):
    labels = np.arange(n) % len(classes)
    return Source(key, f"{key}.npy", np.zeros((n, FRAMES, 39), "float32"), np.eye(len(classes), dtype="float32")[labels],
                  list(classes), [f"{i % speakers:02d}" for i in range(n)], None, (FRAMES - 1) * 512, 0, "0")


# --- folds -------------------------------------------------------------------------------------------------------

def test_folds_hold_each_corpus_share():
    index = np.repeat([0, 1], [50, 23])
    folds = make_folds(73, 5, 46, corpora=index)
    tests = [test for _, test in folds]
    assert sorted(np.concatenate(tests).tolist()) == list(range(73))  # every row tested once
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 73
        assert (index[test] == 0).sum() == 10  # 50 / 5
        assert (index[test] == 1).sum() in (4, 5)  # 23 / 5
    # corpus 0's folds are those of its rows split on their own, as one corpus is split
    alone = make_folds(50, 5, 46)
    assert [test[index[test] == 0].tolist() for test in tests] == [t.tolist() for _, t in alone]


def test_cv_corpus_folds_are_exactly_the_corpora():
    index = np.repeat([0, 1, 2], [7, 5, 4])
    folds = split_folds(16, 3, 46, "corpus", "A+B+C", corpora=index)
    assert [test.tolist() for _, test in folds] == [list(range(7)), list(range(7, 12)), list(range(12, 16))]
    assert [train.tolist() for train, _ in folds][1] == list(range(7)) + list(range(12, 16))
    with pytest.raises(UserError, match="--cv corpus: leaves one corpus out per fold, and --data A is one corpus"):
        split_folds(16, 3, 46, "corpus", "A")


def test_speakers_are_namespaced_by_corpus_and_held_out_whole():
    pooled = pool([source("A", ["angry", "sad"], 12, speakers=4), source("B", ["angry", "sad"], 9, speakers=3)],
                  None, "A+B")
    assert pooled.speakers[:2] == ["A/00", "A/01"] and pooled.speakers[12:14] == ["B/00", "B/01"]
    assert len(set(pooled.speakers)) == 7  # A's speaker 00 and B's 00 are two speakers
    index = corpus_rows(pooled.parts, len(pooled.x))
    for train, test in make_folds(21, 3, 46, pooled.speakers, index):
        assert not {pooled.speakers[r] for r in train} & {pooled.speakers[r] for r in test}
        assert set(index[test]) == {0, 1}  # each corpus in every fold


# --- classes -----------------------------------------------------------------------------------------------------

def test_classes_match_by_name_and_the_others_are_dropped():
    common, mapping = common_classes({"A": ["angry", "happy", "sad"], "B": ["Angry", "calm", "HAPPY"]}, None, "A+B")
    assert common == ["angry", "happy"]
    assert mapping["B"] == {"Angry": "angry", "calm": None, "HAPPY": "happy"} and mapping["A"]["sad"] is None


@pytest.mark.parametrize("name, text", [
    ("map.toml", '[B]\ncalm = "sad"\nHAPPY = ""\n'),
    ("map.csv", "# corpus,their class,common class\nB,calm,sad\nB,HAPPY,\n"),
])
def test_a_label_map_with_a_table_per_corpus(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    sources = [source("A", ["angry", "happy", "sad"], 6), source("B", ["Angry", "calm", "HAPPY"], 6)]
    pooled = pool(sources, str(path), "A+B")
    assert pooled.classes == ["angry", "sad"]
    assert pooled.parts[1].mapping == {"Angry": "angry", "calm": "sad", "HAPPY": None}
    assert pooled.parts[0].dropped == ["happy"] and pooled.parts[1].dropped == ["HAPPY"]
    assert (pooled.parts[0].rows, pooled.parts[1].rows) == (4, 4) and pooled.y.shape == (8, 2)
    # B's calm rows (1, 4 of B) are now sad (column 1)
    assert pooled.y[4:].argmax(1).tolist() == [0, 1, 0, 1]


def test_the_single_corpus_map_still_reads_and_reads_its_table(tmp_path):
    from timnet_ser.data.label_map import build_label_map
    path = tmp_path / "map.toml"
    path.write_text('angry = "angry"\n[OTHER]\ncalm = "neutral"\n[ELSE]\ncalm = "angry"\n')
    label_map = build_label_map(["angry", "neutral"], ["angry", "calm"], str(path), "TOY", "OTHER")
    assert label_map.pairs == {"angry": "angry", "calm": "neutral"}


# --- a run on two corpora from the command line ----------------------------------------------------------------

@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("several")
    a = toy_file(root / "a.npy", ["angry", "happy", "neutral", "sad"], 32, 0, speakers=4)
    b = toy_file(root / "b.npy", ["Angry", "calm", "Happy", "neutral"], 24, 1)
    assert main(["--mode", "train", "--data", "TA+TB", "--feature_path", f"{a}+{b}", "--split_fold", "3",
                 "--model_path", str(root / "Models"), "--result_path", str(root / "Results"), *TINY]) == 0
    [folder] = [os.path.join(root / "Models", name) for name in os.listdir(root / "Models")]
    [result] = [os.path.join(root / "Results", n) for n in os.listdir(root / "Results") if n.endswith(".json")]
    with open(result) as f:
        record = json.load(f)
    return root, a, b, folder, record


def test_run_json_records_every_corpus_and_its_hash(two_corpora):
    root, a, b, folder, record = two_corpora
    with open(os.path.join(folder, "run.json")) as f:
        run = json.load(f)
    assert run["config"]["data"] == "TA+TB" and run["config"]["classes"] == ["angry", "happy", "neutral"]
    assert run["config"]["feature_path"] == f"{a}+{b}"
    ta, tb = run["corpora"]
    for part, path in ((ta, a), (tb, b)):
        stored = feature_files.load_features(path)
        assert part["feature_file"]["path"] == path
        assert part["feature_file"]["sha256"] == feature_files.features_digest(stored["x"], stored["y"])
    assert (ta["rows"], ta["utterances"], tb["rows"], tb["utterances"], tb["start"]) == (24, 32, 18, 24, 24)
    assert tb["mapping"]["calm"] is None and tb["mapping"]["Angry"] == "angry"
    # every fold tests a share of each corpus; the results JSON has each corpus' figures next to the pooled ones
    for rows in run["test_rows"]:
        assert {r < 24 for r in rows} == {True, False}
    per_corpus = record["summary"]["per_corpus"]
    assert list(per_corpus) == ["TA", "TB"] and (per_corpus["TA"]["n"], per_corpus["TB"]["n"]) == (24, 18)
    assert [c["data"] for c in record["corpora"]] == ["TA", "TB"]


def test_a_retest_reproduces_the_run_and_checks_each_corpus_hash(two_corpora, capsys, tmp_path):
    root, a, b, folder, record = two_corpora
    capsys.readouterr()
    assert main(["--mode", "test", "--test_path", folder, "--result_path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "TB <- " in out and "dropped classes: calm" in out and "of which TB: WAR" in out
    [result] = [os.path.join(tmp_path, n) for n in os.listdir(tmp_path) if n.endswith(".json")]
    with open(result) as f:
        retest = json.load(f)
    for key in ("war_pooled", "uar_pooled", "war_mean_of_folds", "per_corpus", "confusion_pooled"):
        assert retest["summary"][key] == record["summary"][key], key
    changed = toy_file(tmp_path / "b2.npy", ["Angry", "calm", "Happy", "neutral"], 24, 2)
    assert main(["--mode", "test", "--test_path", folder, "--feature_path", f"{a}+{changed}"]) == 2
    err = capsys.readouterr().err
    assert f"error: --feature_path {changed}: its content differs from the features the run" in err
    assert err.strip().endswith("to re-test on other features add --retest_other_features (labelled OTHER FEATURES "
                                "everywhere)")


def test_resume_reloads_every_corpus_and_ends_as_the_run(two_corpora, capsys, tmp_path):
    import shutil
    root, a, b, folder, record = two_corpora
    copy = str(tmp_path / os.path.basename(folder))
    shutil.copytree(folder, copy)
    for name in ("3-fold_weights_best_3.hdf5", "3-fold_record_3.json"):
        os.remove(os.path.join(copy, name))
    changed = toy_file(tmp_path / "b2.npy", ["Angry", "calm", "Happy", "neutral"], 24, 2)
    capsys.readouterr()
    assert main(["--mode", "train", "--resume", copy, "--feature_path", f"{a}+{changed}"]) == 2
    err = capsys.readouterr().err  # it advised --retest_other_features, which train then refused
    assert err.strip().endswith("a resumed run trains on its own: pass them (a copy of that file)")
    assert main(["--mode", "train", "--resume", copy]) == 0
    out = capsys.readouterr().out
    assert "TA <- " in out and "TB <- " in out and "fold 3/3: WAR" in out
    with open(os.path.join(copy, "3-fold_record_3.json")) as f:
        assert json.load(f)["y_pred"] == record["folds"][2]["y_pred"]  # the same fold, trained again from its seed


def test_the_api_predicts_and_evaluates_a_run_on_two_corpora(two_corpora):
    import timnet_ser
    root, a, b, folder, record = two_corpora
    run = timnet_ser.load_run(folder)
    assert run.classes == ["angry", "happy", "neutral"] and run.data == "TA+TB"
    [row] = run.predict((np.random.default_rng(0).normal(size=(FRAMES - 1) * 512).astype("float32"), 22050))
    assert row["label"] in run.classes and abs(sum(row["probabilities"].values()) - 1) < 1e-5
    other = toy_file(root / "c.npy", ["angry", "happy", "neutral"], 12, 3)
    # its files are named as TA's (u0.wav ...): said, as names are no proof that they are the same recordings
    with pytest.warns(UserWarning, match=r"12 of its 12 utterances are named as recordings that the weights in"):
        result = run.evaluate(other, data="TC")
    assert result["cross_corpus"]["train_corpus"] == "TA+TB" and result["summary"]["n_pooled"] == 12
    with pytest.raises(UserError, match="the features the run in"):
        run.evaluate(b, data="TB")  # one of its own corpora is no other corpus


# --- bad input: one line each ------------------------------------------------------------------------------------

def check_one_line(capsys, fragment):
    err = capsys.readouterr().err.strip()
    assert err.count("error: ") == 1 and err.splitlines()[-1].startswith("error: ") and "Traceback" not in err, err
    assert fragment in err, (fragment, err)


@pytest.mark.parametrize("case, fragment", [
    ("no_common", "--data TA+TX: the corpora have no class in common by name (TA: angry, happy; TX: calm, bored)"),
    ("unknown_class", "--label_map {map}: [TX] 'sleepy' is not a class of TX (calm, bored)"),
    ("unknown_target", "--label_map {map}: maps 'calm' to 'nuetral', which is not a class of any corpus"),
    ("unknown_corpus", "--label_map {map}: [RAVDE] is not one of the corpora of --data TA+TX"),
    ("one_corpus", "--cv corpus: leaves one corpus out per fold, and --data TA is one corpus"),
    ("split_fold", "--split_fold 3: --cv corpus makes one fold per corpus of --data TA+TX (2)"),
    ("count", "--feature_path {a}: 1 feature file(s) for the 2 corpora of --data TA+TX"),
    # the empty one was the corpus' default file (MFCC/TX.npy), unsaid
    ("empty", "--feature_path {a}+: an empty feature file name between the '+'; give one per corpus of --data TA+TX"),
    ("length", "rows of shape (30, 39) (signal length 14848), but {a} has (24, 39) (11776): the corpora of one run need"),
    ("map_alone", "--label_map {map}: maps another corpus' classes for --cross_corpus, or the corpora of a new run"),
])
def test_bad_input_is_one_line(tmp_path, capsys, case, fragment):
    a = toy_file(tmp_path / "a.npy", ["angry", "happy"], 6, 0)
    x = toy_file(tmp_path / "x.npy", ["calm", "bored"], 6, 1, frames=30 if case == "length" else FRAMES)
    label_map = tmp_path / "map.toml"
    label_map.write_text({"unknown_class": '[TX]\nsleepy = "angry"\n', "unknown_target": '[TX]\ncalm = "nuetral"\n',
                          "unknown_corpus": '[RAVDE]\ncalm = "angry"\n'}.get(case, 'calm = "angry"\n'))
    argv = ["--mode", "train", "--data", "TA+TX", "--feature_path", f"{a}+{x}", "--model_path", str(tmp_path),
            "--result_path", str(tmp_path), *TINY]
    argv += {"unknown_class": ["--label_map", str(label_map)], "unknown_target": ["--label_map", str(label_map)],
             "unknown_corpus": ["--label_map", str(label_map)], "split_fold": ["--cv", "corpus", "--split_fold", "3"],
             "one_corpus": ["--cv", "corpus", "--data", "TA", "--feature_path", a],
             "count": ["--feature_path", a], "empty": ["--feature_path", f"{a}+"]}.get(case, [])
    if case == "map_alone":
        argv += ["--data", "TA", "--feature_path", a, "--label_map", str(label_map)]
    assert main(argv) == 2
    check_one_line(capsys, fragment.format(a=a, map=label_map))
