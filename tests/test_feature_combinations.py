"""Issue #22's features together: several corpora (--data A+B) with --normalize speaker|corpus, fine-tuning
(--init_from) from and into a run on several corpora, --init_from with --normalize, timnet_ser.train with all three,
and a grid whose data is A+B. Tiny runs (2 folds, 1 epoch, 8 filters)."""

import json
import os

import numpy as np
import pytest

import timnet_ser
from test_several_corpora import TINY, toy_file
from timnet_ser.data import feature_files
from timnet_ser.data.feature_statistics import frame_moments
from timnet_ser.main import main

CLASSES_A = ["angry", "happy", "neutral", "sad"]
CLASSES_B = ["Angry", "calm", "Happy", "neutral"]
FLAGS = ["--split_fold", "2", *TINY]
GRID_FLAGS = "split_fold = 2\nepoch = 1\nfilter_size = 8\ndilation_size = 3\nbatch_size = 16\n"  # FLAGS, in a grid file


def corpus_file(path, classes, n, seed, offset=0.0):
    """test_several_corpora's toy file, its recordings named after the file (``a3.wav``: corpora name their own
    recordings differently, or the leak check would take A's u3.wav and B's for one) and shifted by ``offset``."""
    toy_file(path, classes, n, seed)
    stored = dict(feature_files.load_features(str(path)))
    tag = os.path.basename(str(path))[0]
    stored["files"] = np.array([f"{tag}{i}.wav" for i in range(n)])
    stored["x"] = (stored["x"] + offset).astype("float32")
    feature_files.save_features(str(path), stored)
    return str(path)


def train(root, name, *argv):
    """``--mode train`` with ``argv`` into ``root/name``; its run folder and results JSON."""
    models, results = os.path.join(root, name, "Models"), os.path.join(root, name, "Results")
    assert main(["--mode", "train", *argv, *FLAGS, "--model_path", models, "--result_path", results]) == 0
    [folder] = [os.path.join(models, n) for n in os.listdir(models)]
    [result] = [os.path.join(results, n) for n in os.listdir(results) if n.endswith(".json")]
    with open(result) as f:
        return folder, json.load(f)


def run_json(folder):
    with open(os.path.join(folder, "run.json")) as f:
        return json.load(f)


def retest_reproduces(folder, record, out):
    assert main(["--mode", "test", "--test_path", folder, "--result_path", out]) == 0
    [result] = [os.path.join(out, n) for n in os.listdir(out) if n.endswith(".json")]
    with open(result) as f:
        retest = json.load(f)["summary"]
    for key in ("war_pooled", "uar_pooled", "war_mean_of_folds", "per_corpus", "confusion_pooled"):
        assert retest[key] == record["summary"][key], key


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("combos")
    a = corpus_file(root / "a.npy", CLASSES_A, 32, 0)
    b = corpus_file(root / "b.npy", CLASSES_B, 24, 1, offset=3.0)  # another recording setup: shifted MFCCs
    c = corpus_file(root / "c.npy", ["angry", "happy", "neutral"], 24, 3)
    return str(root), a, b, c


@pytest.fixture(scope="module")
def speaker_run(corpora):
    """A run on TA+TB standardised by speaker: the source of the fine-tuning below."""
    root, a, b, c = corpora
    return train(root, "ab_speaker", "--data", "TA+TB", "--feature_path", f"{a}+{b}", "--normalize", "speaker")


def test_speaker_statistics_are_each_namespaced_speakers(corpora):
    from timnet_ser.data.resolve import load_data
    from timnet_ser.engine.normalization import network_inputs
    root, a, b, c = corpora
    features = load_data("TA+TB", "mfcc", f"{a}+{b}", "TIMNET", False, None)
    x = network_inputs(features.x, features.speakers, "speaker", "TA+TB")
    speakers = np.asarray(features.speakers)
    assert "TA/00" in speakers and "TB/00" in speakers  # the same id in both files: two speakers
    for speaker in ("TA/00", "TB/00"):  # TB is shifted by 3: pooled with TA's 00 its mean would be far from 0
        assert np.abs(x[speakers == speaker].mean(axis=(0, 1))).max() < 1e-4


def test_several_corpora_standardised_by_speaker_retest_the_same(speaker_run, corpora, tmp_path):
    folder, record = speaker_run
    run = run_json(folder)
    assert run["config"]["hyper"]["normalize"] == "speaker" and [p["data"] for p in run["corpora"]] == ["TA", "TB"]
    assert list(record["summary"]["per_corpus"]) == ["TA", "TB"]
    retest_reproduces(folder, record, str(tmp_path))


def test_fine_tune_into_several_corpora_with_corpus_statistics(corpora, tmp_path, capsys):
    """From a run on TC into TA+TB, both --normalize corpus: each fold keeps its own training rows' statistics,
    not the source's; the re-test reproduces the run; another --normalize is refused in one line."""
    from timnet_ser.data.resolve import load_data
    root, a, b, c = corpora
    source, _ = train(str(tmp_path), "c_corpus", "--data", "TC", "--feature_path", c, "--normalize", "corpus")
    folder, record = train(str(tmp_path), "ft", "--data", "TA+TB", "--feature_path", f"{a}+{b}",
                           "--normalize", "corpus", "--init_from", source)
    description = run_json(folder)
    assert description["config"]["init_from"] == source and len(description["corpora"]) == 2
    x = load_data("TA+TB", "mfcc", f"{a}+{b}", "TIMNET", False, None).x
    loaded = timnet_ser.load_run(folder)
    for index, test in enumerate(description["test_rows"]):
        train_rows = np.setdiff1d(np.arange(len(x)), test)
        with loaded.weights.loaded(index) as model:
            layer = model.get_layer("corpus_normalization")
        mean, variance = frame_moments(x[train_rows])
        np.testing.assert_allclose(np.asarray(layer.mean), mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(layer.variance), variance, rtol=1e-5, atol=1e-5)
    retest_reproduces(folder, record, str(tmp_path / "retest"))
    capsys.readouterr()
    assert main(["--mode", "train", "--data", "TA+TB", "--feature_path", f"{a}+{b}", "--normalize", "speaker",
                 "--init_from", source, *FLAGS, "--model_path", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith(
        "trained with --normalize corpus, the new run has --normalize speaker: another network; fine-tune with "
        "--normalize corpus")
    assert not os.path.exists(tmp_path / "refused")


def test_the_leak_check_sees_every_corpus_of_the_source(speaker_run, corpora, tmp_path, capsys):
    """Fine-tuning TA+TB from the run on TA+TB with another split: its folds trained on the new test folds' rows."""
    folder, _ = speaker_run
    root, a, b, c = corpora
    capsys.readouterr()
    assert main(["--mode", "train", "--data", "TA+TB", "--feature_path", f"{a}+{b}", "--normalize", "speaker",
                 "--init_from", folder, "--random_seed", "47", *FLAGS, "--model_path", str(tmp_path / "M")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "that test fold 1 of the new run holds" in err and err.endswith(
        "a leak; fine-tune on other utterances than the source trained on")
    assert not os.path.exists(tmp_path / "M")


def test_the_api_fine_tunes_a_run_on_several_corpora_by_speaker(speaker_run, corpora, tmp_path):
    """timnet_ser.train from the TA+TB run into TC, by speaker: an ordinary Run that predicts."""
    folder, _ = speaker_run
    root, a, b, c = corpora
    run = timnet_ser.train(data="TC", feature_path=c, init_from=folder, normalize="speaker", epoch=1, split_fold=2,
                           batch_size=16, filter_size=8, dilation_size=3, model_path=str(tmp_path / "M"),
                           result_path=str(tmp_path / "R"))
    assert run.normalize == "speaker" and run.classes == ["angry", "happy", "neutral"]
    assert run_json(run.folder)["init_from"]["data"] == "TA+TB"
    [row] = run.predict((np.random.default_rng(0).normal(size=23 * 512).astype("float32"), 22050))
    assert row["label"] in run.classes and abs(sum(row["probabilities"].values()) - 1) < 1e-5


def test_the_api_fine_tunes_several_corpora_on_the_sources_own_split(speaker_run, corpora, tmp_path):
    """timnet_ser.train(data="TA+TB", init_from=<the TA+TB run>, normalize="speaker"), the same seed: fold k tests
    what the source's fold k held out of both corpora, so no leak; the Run predicts."""
    folder, _ = speaker_run
    root, a, b, c = corpora
    run = timnet_ser.train(data="TA+TB", feature_path=f"{a}+{b}", init_from=folder, normalize="speaker", epoch=1,
                           split_fold=2, batch_size=16, filter_size=8, dilation_size=3,
                           model_path=str(tmp_path / "M"), result_path=str(tmp_path / "R"))
    description = run_json(run.folder)
    assert description["test_rows"] == run_json(folder)["test_rows"] and len(description["corpora"]) == 2
    assert [f["source_fold"] for f in description["init_from"]["folds"]] == [1, 2]
    [row] = run.predict((np.random.default_rng(1).normal(size=23 * 512).astype("float32"), 22050))
    assert row["label"] in run.classes == ["angry", "happy", "neutral"]


def test_a_grid_on_several_corpora_is_the_run_train_makes(speaker_run, corpora, tmp_path):
    """A grid point with data = "TA+TB" (its files relative to the grid file) draws the folds --mode train draws and
    records its corpora."""
    folder, record = speaker_run
    root, a, b, c = corpora
    grid = os.path.join(root, "grid.toml")
    with open(grid, "w") as f:
        f.write('data = "TA+TB"\nfeature_path = "a.npy+b.npy"\nnormalize = "speaker"\n' + GRID_FLAGS)
    assert main(["--mode", "grid", "--grid", grid, "--address", "none", "--model_path", str(tmp_path / "M"),
                 "--result_path", str(tmp_path / "R")]) == 0
    [made] = [os.path.join(tmp_path / "M", n) for n in os.listdir(tmp_path / "M")]
    ours, theirs = run_json(made), run_json(folder)
    assert ours["test_rows"] == theirs["test_rows"] and ours["corpora"] == theirs["corpora"]


def test_a_grid_pools_corpora_by_its_label_maps_and_the_report_keeps_them_apart(corpora, tmp_path, capsys):
    """label_map is a grid key (a file relative to the grid file): a point with a map is the run --mode train makes
    with it. Runs pooled by different maps learn different classes: the report gives each map its own row and
    names the classes each map renamed or dropped. By name, TA's sad and TB's calm have no partner and are dropped;
    dropping TB's Happy drops TA's happy too."""
    from timnet_ser.runs.report import build_table
    from timnet_ser.runs.results_records import load_records
    root, a, b, c = corpora
    grid_folder = tmp_path / "grid"
    (grid_folder / "maps").mkdir(parents=True)
    (grid_folder / "maps" / "sad.toml").write_text('[TB]\ncalm = "sad"\n')
    (grid_folder / "maps" / "drop.toml").write_text('[TB]\ncalm = ""\nHappy = ""\n')
    grid = grid_folder / "grid.toml"
    grid.write_text(f'data = "TA+TB"\nfeature_path = "{a}+{b}"\nlabel_map = ["maps/sad.toml", "maps/drop.toml"]\n'
                    + GRID_FLAGS)
    results = str(tmp_path / "R")
    assert main(["--mode", "grid", "--grid", str(grid), "--address", "none", "--model_path", str(tmp_path / "M"),
                 "--result_path", results]) == 0
    progress = capsys.readouterr().err  # the points named by the maps as the file wrote them
    assert "TIMNET on TA+TB, seed 46, label_map=maps/sad.toml" in progress and "label_map=maps/drop.toml" in progress
    made = {tuple(run_json(folder)["config"]["classes"]): folder
            for folder in (os.path.join(tmp_path / "M", n) for n in os.listdir(tmp_path / "M"))}
    assert set(made) == {("angry", "happy", "neutral", "sad"), ("angry", "neutral")}
    folder, _ = train(str(tmp_path), "train", "--data", "TA+TB", "--feature_path", f"{a}+{b}", "--label_map",
                      str(grid_folder / "maps" / "sad.toml"))
    ours, theirs = run_json(made[("angry", "happy", "neutral", "sad")]), run_json(folder)
    assert ours["test_rows"] == theirs["test_rows"] and ours["corpora"] == theirs["corpora"]
    assert ours["corpora"][1]["mapping"]["calm"] == "sad"
    _, by_name = train(str(tmp_path), "by_name", "--data", "TA+TB", "--feature_path", f"{a}+{b}")
    table = build_table(load_records(results) + [by_name])
    ours = "filter_size=8, batch_size=16, "  # not TIM-Net's recipe: every row says so
    assert sorted(table["settings"]) == [
        f"{ours}label_map=TA happy->dropped sad->dropped; TB calm->dropped Happy->dropped",
        f"{ours}label_map=TA sad->dropped; TB calm->dropped", f"{ours}label_map=TB calm->sad"]
    assert list(table["runs"]) == [1, 1, 1]


@pytest.mark.parametrize("normalize", ["speaker", "corpus"])
def test_the_authors_weights_are_unnormalised_so_normalize_is_another_network(shared, corpora, tmp_path, capsys,
                                                                            normalize):
    """The authors' folders were trained on raw MFCCs: --normalize speaker would fine-tune them on inputs of another
    scale without a word, corpus met a layer count; both are one line before anything is written."""
    root, a, b, c = corpora
    authors = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    capsys.readouterr()
    assert main(["--mode", "train", "--data", "TC", "--feature_path", c, "--init_from", authors,
                 "--normalize", normalize, *FLAGS, "--model_path", str(tmp_path / "M")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith(f"trained with --normalize none, the new run has --normalize "
                                            f"{normalize}: another network; fine-tune with --normalize none")
    assert not os.path.exists(tmp_path / "M")
