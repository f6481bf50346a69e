"""Issue #22 items 1 and 5: the cross-corpus test (label maps, dropped classes, labels everywhere, the report's own
table) and the domain-shift warning of predict (statistics in run.json, firing and not firing, older runs)."""

import csv
import glob
import json
import os
import shutil

import numpy as np
import pytest

from conftest import train_toy_run
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.data import feature_files
from timnet_ser.data.feature_statistics import corpus_statistics, domain_shift, threshold, unpadded_frames
from timnet_ser.data.label_map import build_label_map
from timnet_ser.deploy.api import load_run
from timnet_ser.main import main
from timnet_ser.Model import MODELS

OURS = ["angry", "happy", "neutral"]
FRAMES = 24  # signal length (24 - 1) * 512 samples


def toy(n, seed, shift=0.0):
    """Three classes whose frames differ in mean (learnable in a few epochs), plus ``shift``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, FRAMES, 39)).astype("float32") + 2 * labels[:, None, None] + shift
    return x.astype("float32"), np.eye(3, dtype="float32")[labels]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross")
    x, y = toy(36, 0)
    config = RunConfig(model="TIMNET", data="TOY", classes=OURS, feature_path="toy.npy", split_fold=3, random_seed=7,
                       epochs=3, batch_size=8, hyper=Hyper(dilation_size=3))
    record = train_toy_run(MODELS["TIMNET"], config, x, y, str(root / "Models"), str(root / "Results"))["record"]
    return record["weights_folder"], x


def other_corpus(path, classes=("Angry", "HAPPY", "calm"), n=30, shift=0.0):
    """A dataset of its own: toy features, classes of other spellings, one of them not ours."""
    x, y = toy(n, 1, shift)
    feature_files.save_features(str(path), {"x": x, "y": y, "classes": np.array(classes),
                                            "signal_length": np.int64((FRAMES - 1) * 512)})
    return str(path)


# --- label maps ------------------------------------------------------------------------------------------------

def test_classes_match_by_name_case_insensitively():
    label_map = build_label_map(OURS, ["Angry", "HAPPY", "calm"], None, "A", "B")
    assert label_map.pairs == {"Angry": "angry", "HAPPY": "happy"}
    assert label_map.dropped == ["calm"] and label_map.unmapped_ours == ["neutral"]
    lines = label_map.describe("A", "B")
    assert "  Angry -> angry" in lines and any("calm" in line and "not scored" in line for line in lines)


@pytest.mark.parametrize("name, text", [("map.toml", 'calm = "Neutral"\nangry = "angry"\nhappy = ""\n'),
                                        ("map.csv", "# theirs,ours\ncalm,Neutral\nangry,angry\nhappy,\n")])
def test_a_label_map_file_maps_and_drops(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    label_map = build_label_map(OURS, ["angry", "happy", "calm"], str(path), "A", "B")
    assert label_map.pairs == {"angry": "angry", "calm": "neutral"}
    assert label_map.dropped == ["happy"] and label_map.unmapped_ours == ["happy"]
    assert label_map.source == str(path)


def test_a_map_for_every_corpus_passes_over_a_class_of_the_run_that_the_tested_corpus_lacks(tmp_path):
    """``happy = "neutral"`` outside a table serves corpora that have happy; one without it was refused ("'happy' is
    not a class of B"), though the file was written for several corpora. In B's own table it is still refused."""
    path = tmp_path / "map.toml"
    path.write_text('happy = "neutral"\ncalm = "neutral"\n')
    assert build_label_map(OURS, ["angry", "calm"], str(path), "A", "B").pairs == {"calm": "neutral"}
    path.write_text('calm = "neutral"\n[B]\nhappy = "neutral"\n')
    with pytest.raises(UserError, match=r"'happy' is not a class of B \(angry, calm\)$"):
        build_label_map(OURS, ["angry", "calm"], str(path), "A", "B")


@pytest.mark.parametrize("text, message", [
    ('sleepy = "neutral"\n', r"'sleepy' is not a class of B \(angry, calm\) nor of the run trained on A"),
    ('calm = "relaxed"\n', r"maps 'calm' to 'relaxed', which is not a class of the run trained on A"),
    ('calm = ""\nangry = ""\n', "no class of B .* maps onto a class of the run"),
    ("calm = 3\n", "'calm' must map to a class name"),
    ("calm = \n", "cannot be read"),
    # the later entry won without a word; an empty map matched by name, the output saying it matched by the file
    ('Calm = "neutral"\ncalm = "angry"\n', "'calm' is mapped twice \\(also as 'Calm'\\); keep one entry"),
    ("", "holds no entries \\(their class = our class\\); leave the flag out to match the classes by name"),
    ("calm,neutral\ncalm,angry\n", "'calm' is mapped twice"),
    ("B,calm,neutral\nB,CALM,angry\n", "\\[B\\] 'CALM' is mapped twice"),
    ("\n", "holds no entries"),
])
def test_a_bad_label_map_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / ("map.csv" if "," in text or text == "\n" else "map.toml")
    path.write_text(text)
    with pytest.raises(UserError, match=f"--label_map {path}: {message}"):
        build_label_map(OURS, ["angry", "calm"], str(path), "A", "B")


def test_corpora_without_a_class_in_common_and_other_files_are_refused(tmp_path):
    with pytest.raises(UserError, match=r"--data B: no class of B \(calm, bored\) maps .*give --label_map FILE"):
        build_label_map(OURS, ["calm", "bored"], None, "A", "B")
    with pytest.raises(UserError, match="--label_map .*missing.toml: no such file"):
        build_label_map(OURS, ["calm"], str(tmp_path / "missing.toml"), "A", "B")
    (tmp_path / "map.txt").write_text("calm neutral")
    with pytest.raises(UserError, match="expected a .toml or .csv file"):
        build_label_map(OURS, ["calm"], str(tmp_path / "map.txt"), "A", "B")


# --- the cross-corpus test --------------------------------------------------------------------------------------

def test_the_api_scores_mapped_utterances_by_the_fold_mean(trained):
    import timnet_ser
    folder, _ = trained
    run = timnet_ser.load_run(folder)
    x, y = toy(30, 1)
    record = run.evaluate((x, y, ["Angry", "HAPPY", "calm"]), data="OTHER")
    cross = record["cross_corpus"]
    assert cross["label"] == "CROSS-CORPUS (trained on TOY, tested on OTHER)"
    assert record["title"].startswith("CROSS-CORPUS (trained on TOY, tested on OTHER)")
    assert (cross["utterances"], cross["scored"], cross["fold_models"]) == (30, 20, 3)
    assert cross["label_map"]["dropped"] == ["calm"] and cross["label_map"]["unmapped_ours"] == ["neutral"]
    scored = y.argmax(1) < 2  # Angry, HAPPY: our classes 0 and 1
    _, probabilities = run.fold_outputs(x[scored])
    expected = probabilities.mean(axis=0).argmax(axis=1)
    assert record["folds"][0]["y_pred"] == expected.tolist()
    assert record["folds"][0]["y_true"] == y.argmax(1)[scored].tolist()
    truth = np.array(record["folds"][0]["y_true"])
    assert cross["per_class_recall"]["angry"] == pytest.approx(np.mean(expected[truth == 0] == 0))
    assert record["summary"]["war_pooled"] == pytest.approx(np.mean(expected == truth))


def test_the_apis_label_map_errors_name_its_arguments_not_flags(trained, tmp_path):
    import timnet_ser
    folder, _ = trained
    run = timnet_ser.load_run(folder)
    x, y = toy(30, 1)
    with pytest.raises(UserError, match=r"^label_map \(the dict given\): 'bored' is not a class of OTHER"):
        run.evaluate((x, y, ["Angry", "HAPPY", "calm"]), label_map={"bored": "angry"}, data="OTHER")
    with pytest.raises(UserError, match=r"^data= OTHER: no class of OTHER .*; give label_map= FILE"):
        run.evaluate((x, y, ["calm", "bored", "tired"]), data="OTHER")
    with pytest.raises(UserError, match=r"^label_map= .*missing\.toml: no such file$"):
        run.evaluate((x, y, ["Angry", "HAPPY", "calm"]), label_map=str(tmp_path / "missing.toml"), data="OTHER")


def test_the_command_prints_the_map_first_and_labels_files_json_and_report(trained, tmp_path, capsys):
    folder, _ = trained
    features = other_corpus(tmp_path / "OTHER.npy")
    label_map = tmp_path / "map.csv"
    label_map.write_text("calm,neutral\nAngry,angry\n")
    results = tmp_path / "Results"
    assert main(["--mode", "test", "--test_path", folder, "--data", "OTHER", "--feature_path", features,
                 "--cross_corpus", "--label_map", str(label_map), "--result_path", str(results)]) == 0
    out = capsys.readouterr().out
    assert out.index("calm -> neutral") < out.index("unmapped OTHER classes") < out.index("WAR")
    assert "unmapped OTHER classes (their utterances are not scored): HAPPY" in out
    assert "CROSS-CORPUS (trained on TOY, tested on OTHER): WAR" in out
    assert "(20 of 30 utterances scored, 2 classes; one class always: UAR 50.00%)" in out
    [json_file] = glob.glob(str(results / "*.json"))
    assert os.path.basename(json_file).startswith("CROSS-CORPUS_trained-on-TOY_tested-on-OTHER_")
    assert len(glob.glob(str(results / "CROSS-CORPUS_trained-on-TOY_tested-on-OTHER_*"))) == 3  # xlsx, png, json
    with open(json_file) as f:
        record = json.load(f)
    assert record["mode"] == "cross_corpus" and record["cross_corpus"]["label_map"]["source"] == str(label_map)
    assert main(["--mode", "report", "--result_path", str(results)]) == 0
    report = (results / "report.md").read_text()
    assert report.startswith("No within-corpus results.")
    assert "## CROSS-CORPUS tests" in report and "| TIMNET | TOY |" in report
    assert "tested on OTHER" in (results / "report_cross_corpus.csv").read_text()


def test_the_report_keeps_cross_corpus_tests_out_of_the_within_corpus_rows(trained, tmp_path, capsys):
    from timnet_ser.runs.report import build_cross_corpus_table, build_table, write_report
    from timnet_ser.runs.results_records import load_records
    folder, _ = trained
    with open(os.path.join(folder, "run.json")) as f:
        results = json.load(f)["result_path"]
    features = other_corpus(tmp_path / "OTHER.npy")
    assert main(["--mode", "test", "--test_path", folder, "--data", "OTHER", "--feature_path", features,
                 "--cross_corpus", "--result_path", results]) == 0
    write_report(results)
    records = load_records(results)
    within = build_table([r for r in records if not r.get("cross_corpus")])
    assert within["runs"].tolist() == [1] and within["corpus"].str.contains("TOY").all()
    crossed = build_cross_corpus_table([r for r in records if r.get("cross_corpus")])
    # the run's batch of 8 is not TIM-Net's recipe (64): a lone row names it
    assert crossed.columns.tolist() == ["model", "trained on", "features", "protocol", "settings",
                                        "tested on OTHER: UAR / WAR %"]
    assert crossed["settings"].tolist() == ["batch_size=8"] and within["settings"].tolist() == ["batch_size=8"]
    report = open(os.path.join(results, "report.md")).read()
    assert report.index("## CROSS-CORPUS tests") > report.index("## Paired comparisons")
    copy = shutil.copytree(results, tmp_path / "R")  # a damaged cross-corpus record beside the others: one line
    [crossed_file] = [r["path"] for r in records if r.get("cross_corpus")]
    with open(crossed_file) as f:
        damaged = json.load(f)
    del damaged["cross_corpus"]["test_corpus"]
    with open(copy / "damaged.json", "w") as f:
        json.dump(damaged, f)
    with pytest.raises(UserError, match=r"damaged.json: damaged results file \('cross_corpus.test_corpus' must be "
                                        r"a JSON string, it is missing\)"):
        load_records(str(copy))


@pytest.mark.parametrize("flags, message", [
    (["--mode", "test", "--cross_corpus"], "--cross_corpus: name the other corpus"),
    (["--mode", "predict", "--cross_corpus", "--data", "X"], "--cross_corpus: tests a run on another corpus"),
    (["--mode", "test", "--label_map", "m.toml"], "--label_map m.toml: maps another corpus' classes for"),
    (["--mode", "test", "--cross_corpus", "--data", "X", "--retest_other_split"], "--retest_other_split: a cross"),
])
def test_bad_flags_are_one_line(flags, message, capsys):
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_bad_inputs_of_the_test_are_one_line(trained, tmp_path, capsys):
    folder, x = trained
    disjoint = other_corpus(tmp_path / "OTHER.npy", classes=("calm", "bored", "sleepy"))
    assert main(["--mode", "test", "--test_path", folder, "--data", "OTHER", "--feature_path", disjoint,
                 "--cross_corpus"]) == 2
    assert "error: --data OTHER: no class of OTHER (calm, bored, sleepy) maps onto" in capsys.readouterr().err
    own = tmp_path / "OWN.npy"
    _, y = toy(36, 0)
    feature_files.save_features(str(own), {"x": x, "y": y, "classes": np.array(OURS),
                                           "signal_length": np.int64((FRAMES - 1) * 512)})
    assert main(["--mode", "test", "--test_path", folder, "--data", "OWN", "--feature_path", str(own),
                 "--cross_corpus"]) == 2
    assert "the features the run in" in capsys.readouterr().err
    # another file, but 12 of its 30 utterances are the run's training audio: it was scored as a cross-corpus figure
    part = tmp_path / "PART.npy"
    mixed = np.concatenate([x[:12], toy(18, 5)[0]])
    feature_files.save_features(str(part), {"x": mixed, "y": np.eye(3, dtype="float32")[np.arange(30) % 3],
                                            "classes": np.array(OURS), "signal_length": np.int64((FRAMES - 1) * 512)})
    assert main(["--mode", "test", "--test_path", folder, "--data", "PART", "--feature_path", str(part),
                 "--cross_corpus"]) == 2
    assert f"{part}: 12 of its 30 utterances are audio the run in {folder} trained on" in capsys.readouterr().err
    with pytest.raises(UserError, match="^features: 12 of its 30 utterances are audio the run in"):
        load_run(folder).evaluate((mixed, np.eye(3, dtype="float32")[np.arange(30) % 3], OURS))
    longer = tmp_path / "LONG.npy"
    feature_files.save_features(str(longer), {"x": np.zeros((3, 30, 39), "float32"), "y": np.eye(3, dtype="float32"),
                                              "classes": np.array(OURS), "signal_length": np.int64(29 * 512)})
    assert main(["--mode", "test", "--test_path", folder, "--data", "LONG", "--feature_path", str(longer),
                 "--cross_corpus"]) == 2
    assert "utterances of shape (30, 39), but the run trained on TOY reads (24, 39)" in capsys.readouterr().err
    assert main(["--mode", "test", "--test_path", folder, "--data", "OTHER", "--feature_path", disjoint,
                 "--cross_corpus", "--dropout", "0.3"]) == 2  # ignored before: the run's own network scored
    assert capsys.readouterr().err == ("error: --dropout 0.3: a cross-corpus test takes every setting from the run's "
                                       "run.json; leave it out\n")


# --- the domain-shift warning -----------------------------------------------------------------------------------

def test_padded_frames_are_left_out_of_the_statistics(shared):
    from timnet_ser.data.audio import load_audio
    from timnet_ser.data.features import signal_features
    signal = load_audio(os.path.join(shared, "data", "emodb_2s", "03a01Wa.wav"))
    features = signal_features(signal, 96000)  # 2 s of speech centred in 4.35 s: padding on both sides
    voiced = unpadded_frames(features)
    assert 0.3 < voiced.mean() < 0.6 and not voiced[0] and not voiced[-1]
    stats = corpus_statistics(features[None], "mfcc")
    assert stats["frames"] == voiced.sum()
    np.testing.assert_allclose(stats["frame_mean"], features[voiced].mean(axis=0), rtol=1e-4, atol=1e-3)
    assert corpus_statistics(np.zeros((2, 3, 64, 64, 3)), "logmel3") is None
    assert corpus_statistics(np.zeros((2, 16, 39)), "mfcc") is None  # only padding: no statistics, no NaN in run.json
    assert threshold(1) == 2.0 and threshold(4) == 1.0 and threshold(50) == 1.0


def test_another_channel_is_flagged_and_the_same_setup_is_not(shared):
    from timnet_ser.data.audio import load_audio
    from timnet_ser.data.channel import Channel
    from timnet_ser.data.features import signal_features
    wavs = sorted(glob.glob(os.path.join(shared, "data", "emodb_2s", "*.wav")))
    signals = {w: load_audio(w) for w in wavs[::6]}  # 90 clips of every speaker
    train = [w for w in signals if os.path.basename(w)[:2] in ("03", "08", "09", "10", "11")]
    held_out = [w for w in signals if w not in train][:10]
    stats = corpus_statistics(np.stack([signal_features(signals[w], 96000) for w in train]), "mfcc")
    same = domain_shift(np.stack([signal_features(signals[w], 96000) for w in held_out]), stats, "A")
    other = domain_shift(np.stack([signal_features(Channel().apply(signals[w]), 96000) for w in held_out]), stats,
                         "A")
    assert same["warning"] is None and same["distance"] < 1.0 == same["threshold"]
    assert other["distance"] > 1.0 and "another recording setup" in other["warning"]


def test_predict_warns_once_when_far_and_stays_quiet_otherwise(trained, shared, tmp_path, capsys):
    import timnet_ser
    folder, _ = trained
    wavs = [os.path.join(shared, "data", "emodb_2s", name) for name in ("03a01Wa.wav", "03a02Ta.wav")]
    with open(os.path.join(folder, "run.json")) as f:
        description = json.load(f)
    assert description["feature_statistics"]["frames"] == 36 * FRAMES  # toy features: every frame voiced
    run = timnet_ser.load_run(folder)
    rows = run.predict(wavs)  # real speech against toy statistics: far away
    assert {id(row["domain_shift"]) for row in rows} == {id(rows[0]["domain_shift"])}
    assert rows[0]["domain_shift"]["inputs"] == 2 and rows[0]["domain_shift"]["threshold"] == pytest.approx(2 ** 0.5)
    assert "these 2 inputs' MFCC statistics lie" in rows[0]["domain_shift"]["warning"]
    table = str(tmp_path / "p.csv")
    assert main(["--mode", "predict", "--test_path", folder, "--wav", wavs[0], "--output", table]) == 0
    with open(table) as f:
        [written] = list(csv.DictReader(f))
    assert float(written["domain_shift_of_inputs"]) > 2.0 == float(written["domain_shift_threshold"])
    err = capsys.readouterr().err
    assert err.count("warning: this input's MFCC statistics lie") == 1 and "TOY, the training corpus" in err
    # statistics of the inputs themselves: distance 0, no warning
    from timnet_ser.deploy.predict import read_clips
    features = np.stack([c.features for c in read_clips(wavs, run.signal_length, "mfcc")])
    run.feature_statistics = corpus_statistics(features, "mfcc")
    [quiet, _] = run.predict(wavs)
    assert quiet["domain_shift"]["distance"] < 1e-6 and quiet["domain_shift"]["warning"] is None
    # a run folder written before the statistics were kept: no warning, no error
    older = str(tmp_path / "older")
    shutil.copytree(folder, older)
    description.pop("feature_statistics")
    with open(os.path.join(older, "run.json"), "w") as f:
        json.dump(description, f)
    [old] = timnet_ser.load_run(older).predict(wavs[:1])
    assert "domain_shift" not in old and old["label"] in OURS
    assert main(["--mode", "predict", "--test_path", older, "--wav", wavs[0]]) == 0
    assert "MFCC statistics" not in capsys.readouterr().err


def test_the_api_reads_a_feature_file_and_an_unnamed_weights_folder_is_refused(trained, tmp_path, capsys):
    import timnet_ser
    folder, _ = trained
    features = other_corpus(tmp_path / "OTHER.npy")
    record = timnet_ser.load_run(folder).evaluate(features)  # the corpus named after its file
    assert record["cross_corpus"]["test_corpus"] == "OTHER" and record["cross_corpus"]["scored"] == 20
    assert record["cross_corpus"]["test_feature_file"] == features
    unnamed = tmp_path / "weights"
    unnamed.mkdir()
    assert main(["--mode", "test", "--test_path", str(unnamed), "--data", "OTHER", "--feature_path", features,
                 "--cross_corpus"]) == 2
    assert "has no run.json, and its name is not <KEY>_<seed>" in capsys.readouterr().err


def test_the_cross_corpus_table_never_averages_runs_of_other_settings():
    """Nor of other protocols (a paper run selected its epochs on its test folds), and a run tested twice on the
    same file is one test: the repeat moved the mean and shrank the std."""
    from timnet_ser.runs.report import build_cross_corpus_table

    def record(normalize, uar, run, protocol="last_epoch"):
        return {"model": "TIMNET", "mode": "cross_corpus", "weights_folder": f"M/A_{run}",
                "config": {"hyper": {"normalize": normalize}, "protocol": protocol, "feature_path": "/x/A.npy"},
                "cross_corpus": {"train_corpus": "A", "test_corpus": "B", "test_sha256": "b1", "fold_models": 2},
                "summary": {"uar_pooled": uar, "war_pooled": uar}}
    table = build_cross_corpus_table([record("none", 0.2, 1), record("utterance", 0.4, 2), record("none", 0.3, 3),
                                      record("none", 0.3, 3), record("none", 0.9, 4, "paper")])
    assert table["protocol"].tolist() == ["last_epoch", "last_epoch", "paper (SELECTED ON THE TEST FOLD)"]
    assert table["settings"].tolist() == ["–", "normalize=utterance", "–"]  # what is not the recipe's
    assert table["features"].tolist() == ["A.npy"] * 3
    assert table["tested on B: UAR / WAR %"].tolist() == ["25.00 ± 5.00 / 25.00 ± 5.00 (2)", "40.00 / 40.00",
                                                         "90.00 / 90.00"]


def test_a_dcnn_run_at_its_recipe_shows_no_settings_in_the_cross_corpus_table():
    """The row's name holds the variant ("DCNN_BLSTMwA (mobilenetv2 alpha 1, ImageNet init)"), which is no recipe's
    name: its recipe's batch, learning rate and betas were shown as settings changed from TIM-Net's."""
    from timnet_ser.core.config import RECIPES
    from timnet_ser.runs.report import build_cross_corpus_table
    recipe = RECIPES["DCNN_BLSTMwA"]
    record = {"model": "DCNN_BLSTMwA", "variant": "mobilenetv2 alpha 1, ImageNet init", "mode": "cross_corpus",
              "weights_folder": "M/A_1", "config": {
                  "protocol": "last_epoch", "feature_path": "/x/A_logmel3.npy", "epochs": 50,
                  "batch_size": recipe.batch_size, "lr": recipe.lr, "beta1": recipe.beta1, "beta2": recipe.beta2,
                  "epsilon": recipe.epsilon, "label_smoothing": recipe.label_smoothing},
              "cross_corpus": {"train_corpus": "EMODB", "test_corpus": "B", "test_sha256": "b1", "fold_models": 10},
              "summary": {"uar_pooled": 0.3, "war_pooled": 0.3}}
    assert "settings" not in build_cross_corpus_table([record]).columns
    record["config"]["lr"] = 0.001  # off its recipe: said
    assert build_cross_corpus_table([record])["settings"].tolist() == ["lr=0.001"]


def test_a_run_tested_under_a_label_map_is_its_own_column_not_a_repeat():
    """The same run tested on one file by name and under four.toml: the second scores other utterances (classes
    mapped or dropped), and the table showed only the first, without a word."""
    from timnet_ser.runs.report import build_cross_corpus_table

    def record(uar, source, pairs):
        return {"model": "TIMNET", "mode": "cross_corpus", "weights_folder": "M/B_1",
                "config": {"protocol": "last_epoch", "feature_path": "/x/B.npy"},
                "cross_corpus": {"train_corpus": "B", "test_corpus": "A", "test_sha256": "a1", "fold_models": 5,
                                 "label_map": {"pairs": pairs, "dropped": [], "unmapped_ours": [], "source": source}},
                "summary": {"uar_pooled": uar, "war_pooled": uar}}
    by_name = record(0.2469, "class names, case-insensitive", {"angry": "angry", "sad": "sad"})
    table = build_cross_corpus_table([by_name, record(0.25, "/maps/four.toml", {"angry": "angry"}), by_name])
    assert table["tested on A: UAR / WAR %"].tolist() == ["24.69 / 24.69"]  # the repeat counted once
    assert table["tested on A (map four.toml): UAR / WAR %"].tolist() == ["25.00 / 25.00"]
    # another map.toml than the first (another folder's, or the file edited): never averaged with it
    table = build_cross_corpus_table([record(0.25, "/maps/map.toml", {"angry": "angry"}),
                                      record(0.5, "/other/map.toml", {"angry": "angry", "sad": "sad"})])
    columns = [c for c in table.columns if c.startswith("tested on A (map map.toml ")]
    assert len(columns) == 2 and sorted(table[c].iloc[0] for c in columns) == ["25.00 / 25.00", "50.00 / 50.00"]


def test_cross_corpus_rows_that_differ_in_their_epochs_alone_say_so():
    """The cross-corpus table has no epochs column: two runs at 50 and 500 epochs read as one row's twin."""
    from timnet_ser.runs.report import build_cross_corpus_table

    def record(epochs, uar):
        return {"model": "TIMNET", "mode": "cross_corpus", "weights_folder": f"M/A_{epochs}",
                "config": {"protocol": "last_epoch", "feature_path": "/x/EMODB.npy", "epochs": epochs},
                "cross_corpus": {"train_corpus": "EMODB", "test_corpus": "B", "test_sha256": "b1", "fold_models": 10},
                "summary": {"uar_pooled": uar, "war_pooled": uar}}
    table = build_cross_corpus_table([record(50, 0.2), record(500, 0.6)])
    assert sorted(table["settings"]) == ["epochs=50", "epochs=500"]


def test_a_test_under_another_name_or_other_settings_is_no_repeat():
    """The same weights on the same content under another corpus name, or a folder without run.json tested under
    other settings (--normalize was taken for the authors' weights then): the later one was dropped without a word."""
    from timnet_ser.runs.report import build_cross_corpus_table

    def record(test_corpus, uar, normalize="none"):
        return {"model": "TIMNET", "mode": "cross_corpus", "weights_folder": "Test_Models/EMODB_46",
                "config": {"protocol": "paper", "feature_path": "/x/EMODB.npy", "hyper": {"normalize": normalize}},
                "cross_corpus": {"train_corpus": "EMODB", "test_corpus": test_corpus, "test_sha256": "s1",
                                 "fold_models": 10},
                "summary": {"uar_pooled": uar, "war_pooled": uar}}
    table = build_cross_corpus_table([record("SPK", 0.8889), record("NOFILES", 0.8889), record("SPK", 0.25,
                                                                                              "utterance")])
    assert table["tested on SPK: UAR / WAR %"].tolist() == ["88.89 / 88.89", "25.00 / 25.00"]
    assert table["tested on NOFILES: UAR / WAR %"].tolist() == ["88.89 / 88.89", "–"]
    assert table["settings"].tolist() == ["–", "normalize=utterance"]


def test_a_shared_entry_overridden_in_the_corpus_table_is_refused_without_a_false_reason(tmp_path):
    """boredom (a class of the run's) in the shared entries and in CASIA's table: the refusal said boredom was
    "not a class of ... nor of the run", which it is."""
    path = tmp_path / "map.toml"
    path.write_text('happy = "neutral"\n[B]\nhappy = "angry"\n')
    with pytest.raises(UserError, match=r"'happy' is not a class of B \(angry, calm\)$"):
        build_label_map(OURS, ["angry", "calm"], str(path), "A", "B")
