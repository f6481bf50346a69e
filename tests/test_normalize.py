"""Issue #22 item 4: --normalize utterance and corpus (the network's first layer) and speaker (the inputs
standardised by speaker before the network), applied alike by training, test, predict, the API and the exported
graph; refused where they cannot apply."""

import csv
import json
import os

import numpy as np
import pytest

from conftest import retest_toy_run, train_toy_run
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.main import main
from timnet_ser.Model import MODELS

FRAMES = 24


def padded_toy(n=36, seed=0):
    """Three learnable classes; the last 6 frames of every utterance are padding (only coefficient 0 set)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.normal(size=(n, FRAMES, 39)).astype("float32") + 2 * labels[:, None, None]
    x[:, -6:, 1:] = 0.0
    x[:, -6:, 0] = -700.0
    return x.astype("float32"), np.eye(3, dtype="float32")[labels]


def toy_run(root, normalize: str) -> dict:
    """A 3-fold, 2-epoch TIM-Net run on ``padded_toy`` trained with ``--normalize normalize`` under ``root``."""
    x, y = padded_toy()
    config = RunConfig(model="TIMNET", data="TOY", classes=["a", "b", "c"], feature_path="toy.npy", split_fold=3,
                       random_seed=7, epochs=2, batch_size=8, hyper=Hyper(dilation_size=3, normalize=normalize))
    return train_toy_run(MODELS["TIMNET"], config, x, y, str(root / "Models"), str(root / "Results"))


@pytest.fixture(scope="module")
def normalized_run(tmp_path_factory):
    return toy_run(tmp_path_factory.mktemp("normalized"), "utterance")


def test_the_layer_standardises_voiced_frames_and_zeroes_padding():
    from timnet_ser.nn.normalization import UtteranceNormalization
    x, _ = padded_toy(4)
    x = x * 3.0 + 7.0 * np.arange(39, dtype="float32")  # voiced frames: any scale and offset per coefficient
    x[:, -6:, 1:], x[:, -6:, 0] = 0.0, -700.0
    layer = UtteranceNormalization()
    out = np.asarray(layer(x))
    voiced = out[:, :-6]
    np.testing.assert_allclose(voiced.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(voiced.std(axis=1), 1.0, atol=1e-3)
    assert not out[:, -6:].any()
    again = UtteranceNormalization.from_config(layer.get_config())
    assert (again.flat, again.epsilon) == (1e-3, 1e-6)


def test_the_run_records_it_and_the_api_applies_it(normalized_run):
    import timnet_ser
    folder = normalized_run["record"]["weights_folder"]
    with open(os.path.join(folder, "run.json")) as f:
        assert json.load(f)["config"]["hyper"]["normalize"] == "utterance"
    run = timnet_ser.load_run(folder)
    assert run.model.layers[1].name == "utterance_normalization"
    x, _ = padded_toy(6, seed=3)
    _, before = run.fold_outputs(x)
    rescaled = x.copy()
    rescaled[:, :-6] = rescaled[:, :-6] * 2.5 - 4.0  # another gain and offset: the same normalised input
    _, after = run.fold_outputs(rescaled)
    np.testing.assert_allclose(after, before, atol=1e-5)

def test_test_mode_reproduces_the_training_run(normalized_run, tmp_path):
    from timnet_ser.runs.run_folder import require_run
    record = normalized_run["record"]
    run = require_run(record["weights_folder"], "--test_path")
    x, y = padded_toy()
    retested = retest_toy_run(MODELS["TIMNET"], run.config, x, y, run.path, str(tmp_path))["record"]
    assert [f["y_pred"] for f in retested["folds"]] == [f["y_pred"] for f in record["folds"]]


@pytest.mark.parametrize("mode", ["utterance", "corpus"])
def test_the_exported_graph_equals_the_api(mode, normalized_run, corpus_run, tmp_path):
    import onnxruntime

    import timnet_ser
    from timnet_ser.deploy import export
    trained = {"utterance": normalized_run, "corpus": corpus_run}[mode]
    run = timnet_ser.load_run(trained["record"]["weights_folder"])
    path = str(tmp_path / "model.onnx")
    run.export(path, "onnx")
    with open(path + ".json") as f:
        assert json.load(f)["input"]["normalize"]["mode"] == mode
    x, _ = padded_toy(5, seed=4)
    x = x * 1.5 + 3.0  # away from the training statistics: the corpus layer's weights matter
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    graph = session.run([export.OUTPUT_NAME], {export.INPUT_NAME: x})[0]
    _, probabilities = run.fold_outputs(x)
    np.testing.assert_allclose(graph, probabilities.mean(axis=0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("flags, message", [
    (["--mode", "train", "--model", "DCNN_BLSTMwA", "--normalize", "utterance"],
     "--normalize utterance: standardises MFCC coefficients; --model DCNN_BLSTMwA reads logmel3"),
    (["--mode", "train", "--training", "stacked", "--normalize", "utterance"],
     "--normalize utterance: the stacked path trains without a normalisation layer"),
    (["--mode", "train", "--model", "DCNN_BLSTMwA", "--normalize", "speaker"],
     "--normalize speaker: standardises MFCC coefficients; --model DCNN_BLSTMwA reads logmel3"),
    (["--mode", "train", "--model", "DCNN_BLSTMwA", "--normalize", "corpus"], "--normalize corpus: standardises"),
    (["--mode", "train", "--training", "stacked", "--normalize", "corpus"], "--normalize corpus: the stacked path"),
    (["--mode", "train", "--normalize", "speakers"],
     "--normalize 'speakers': choose one of none, utterance, speaker, corpus (did you mean speaker?)"),
])
def test_where_it_cannot_apply_is_one_line(flags, message, capsys):
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_the_authors_weights_refuse_it(shared, capsys):
    folder = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    assert main(["--mode", "test", "--test_path", folder, "--normalize", "utterance"]) == 2
    assert "the authors' weights were trained without normalisation" in capsys.readouterr().err


def test_a_typed_normalize_must_agree_with_the_run(normalized_run, capsys):
    folder = normalized_run["record"]["weights_folder"]
    assert main(["--mode", "test", "--test_path", folder, "--normalize", "none"]) == 2
    assert "--normalize none: the run in" in capsys.readouterr().err


# --- --normalize corpus ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    return toy_run(tmp_path_factory.mktemp("corpus"), "corpus")


def test_the_corpus_layer_standardises_with_its_weights():
    from timnet_ser.nn.normalization import CorpusNormalization
    x, _ = padded_toy(4)
    layer = CorpusNormalization(name="corpus_normalization")
    layer.build(x.shape)
    mean, variance = np.arange(39, dtype="float32") / 10, np.linspace(0.5, 4, 39, dtype="float32")
    layer.mean.assign(mean)
    layer.variance.assign(variance)
    out = np.asarray(layer(x))
    np.testing.assert_allclose(out[:, :-6], (x[:, :-6] - mean) / np.sqrt(variance + 1e-6), atol=1e-5)
    assert not out[:, -6:].any()  # padding stays 0
    assert [w.trainable for w in layer.weights] == [False, False]
    assert CorpusNormalization.from_config(layer.get_config()).flat == 1e-3


def test_the_kept_statistics_and_the_corpus_layer_take_the_same_voiced_frames():
    """run.json's statistics (``corpus_statistics``) are ``frame_moments`` (what --normalize corpus and speaker
    standardise with), over the voiced frames only: padded_toy's padding is in neither."""
    from timnet_ser.data.feature_statistics import corpus_statistics, frame_moments
    x, _ = padded_toy()
    voiced = x[:, :-6].astype(np.float64)  # (36, 18, 39): what is not padding
    stats = corpus_statistics(x, "mfcc")
    mean, variance = frame_moments(x)
    assert stats["frames"] == 36 * 18 and stats["utterances"] == 36
    np.testing.assert_allclose(stats["frame_mean"], voiced.reshape(-1, 39).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["frame_std"], voiced.reshape(-1, 39).std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["utterance_mean"], voiced.mean(axis=1).mean(axis=0), rtol=1e-12)
    assert stats["frame_mean"] == mean.tolist() and stats["frame_std"] == np.sqrt(variance).tolist()
    silent = np.zeros((2, FRAMES, 39), "float32")  # no voiced frame: the layer gets 0 and 1, run.json keeps nothing
    assert corpus_statistics(silent, "mfcc") is None and frame_moments(silent).tolist() == [[0.0] * 39, [1.0] * 39]


def test_each_fold_keeps_its_training_rows_statistics(corpus_run):
    """Fold i's first layer holds the mean and variance of its training rows' voiced frames, never the test
    fold's; a re-test reproduces the training run's predictions."""
    import timnet_ser
    from timnet_ser.data.feature_statistics import frame_moments
    from timnet_ser.runs.run_folder import require_run
    record = corpus_run["record"]
    run = timnet_ser.load_run(record["weights_folder"])
    x, y = padded_toy()
    everything = frame_moments(x)
    for index, fold in enumerate(record["folds"]):
        train = np.setdiff1d(np.arange(len(x)), fold["test_rows"])
        arrays = dict(run.folds[index][2])["corpus_normalization"]
        np.testing.assert_allclose(np.stack(arrays), frame_moments(x[train]), rtol=1e-5, atol=1e-6)
        assert np.abs(np.stack(arrays) - everything).max() > 1e-3  # not the statistics of every row
    folder = require_run(record["weights_folder"], "--test_path")
    retested = retest_toy_run(MODELS["TIMNET"], folder.config, x, y, folder.path, str(folder.path) + "_retest")
    assert [f["y_pred"] for f in retested["record"]["folds"]] == [f["y_pred"] for f in record["folds"]]


# --- --normalize speaker -----------------------------------------------------------------------------------------

SPEAKERS = ["s1", "s2", "s3", "s4"]


def speaker_toy(tmp_path):
    """padded_toy with a gain and an offset per speaker, as a feature file with speakers (24 frames: 11776 samples)."""
    from timnet_ser.data.feature_files import save_features
    x, y = padded_toy(48, seed=5)
    speakers = np.array([SPEAKERS[i % 4] for i in range(len(x))])
    for k, speaker in enumerate(SPEAKERS):
        rows = speakers == speaker
        x[rows, :-6] = x[rows, :-6] * (1 + k) + 5.0 * k
    path = str(tmp_path / "TOYSPK.npy")
    save_features(path, {"x": x, "y": y, "classes": np.array(["a", "b", "c"]), "signal_length": 23 * 512,
                         "speakers": speakers, "features": "mfcc"})
    return path, x, y, speakers


@pytest.fixture(scope="module")
def speaker_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("speaker")
    path, x, y, speakers = speaker_toy(root)
    assert main(["--mode", "train", "--data", "TOYSPK", "--feature_path", path, "--normalize", "speaker",
                 "--split_fold", "2", "--epoch", "2", "--batch_size", "8", "--dilation_size", "3",
                 "--random_seed", "3", "--model_path", str(root / "Models"), "--result_path",
                 str(root / "Results")]) == 0
    [folder] = [os.path.join(root, "Models", d) for d in os.listdir(root / "Models")]
    return {"folder": folder, "path": path, "x": x, "speakers": speakers, "root": root}


def test_by_speaker_standardises_each_speakers_frames():
    from timnet_ser.core.errors import UserError
    from timnet_ser.engine.normalization import by_speaker
    x, _ = padded_toy(12)
    speakers = np.array(["p", "q", "r"] * 4)
    x[speakers == "q", :-6] = x[speakers == "q", :-6] * 3 - 2  # another gain and offset for one speaker
    out = by_speaker(x, list(speakers), "toy.npy")
    for speaker in "pqr":
        frames = out[speakers == speaker][:, :-6].reshape(-1, 39)
        np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(frames.var(axis=0), 1.0, atol=1e-3)
    assert not out[:, -6:].any()
    with pytest.raises(UserError, match=r"^toy.npy: no speaker for every row .* --normalize speaker needs"):
        by_speaker(x, None, "toy.npy")


def test_a_speaker_run_records_it_and_test_mode_reproduces_it(speaker_run):
    from timnet_ser.cli import command_line, modes
    from timnet_ser.runs.run_folder import require_run
    folder = speaker_run["folder"]
    with open(os.path.join(folder, "run.json")) as f:
        assert json.load(f)["config"]["hyper"]["normalize"] == "speaker"
    args = command_line.validate(command_line.parse(["--mode", "test", "--test_path", folder, "--result_path",
                                             str(speaker_run["root"] / "R2")]))
    tested = modes.run_test(args)["record"]["folds"]
    trained = require_run(folder, "--test_path").fold_records()
    assert [f["y_pred"] for f in tested] == [f["y_pred"] for f in trained]


def test_speaker_predictions_equal_through_the_api_and_the_exported_graph(speaker_run, tmp_path, capsys):
    """The API standardises one call's inputs as one speaker's (or with given statistics); the exported graph
    takes inputs standardised by the sidecar's rule, implemented here from its text: the same probabilities."""
    import onnxruntime
    import soundfile as sf

    import timnet_ser
    from timnet_ser.core.errors import UserError
    from timnet_ser.data.features import signal_features
    from timnet_ser.deploy import export
    run = timnet_ser.load_run(speaker_run["folder"])
    rng = np.random.default_rng(0)
    wav = tmp_path / "speaker"
    wav.mkdir()
    signals = [0.1 * (k + 1) * rng.normal(size=23 * 512).astype("float32") for k in range(4)]
    for k, signal in enumerate(signals):
        sf.write(str(wav / f"u{k}.wav"), signal, 22050, subtype="FLOAT")  # read back exactly
    rows = run.predict(str(wav))
    statistics = run.speaker_statistics(str(wav))
    assert rows == run.predict(str(wav), speaker_statistics=statistics)
    # NaN or a negative variance gave NaN probabilities labelled "angry"; a short list, embeddings of the first
    # inputs only; a wrong shape, a ValueError from numpy
    for given in (np.full((2, 39), np.nan), statistics * [[1], [-1]], np.zeros((3, 39)), "abc", [statistics]):
        for call in (run.predict, run.embed):
            with pytest.raises(UserError, match=r"^speaker_statistics: "):
                call(str(wav), speaker_statistics=given)
    assert run.embed(str(wav), speaker_statistics=[statistics] * 4).shape[1] == 4
    alone = run.predict(str(wav / "u0.wav"))[0]["probabilities"]  # u0 alone: its own statistics, another input
    assert alone != rows[0]["probabilities"]
    path = str(tmp_path / "model.onnx")
    run.export(path, "onnx")
    with open(path + ".json") as f:
        rule = json.load(f)["input"]["normalize"]
    assert rule["mode"] == "speaker" and "STANDARDISED BY SPEAKER" in rule["rule"]
    x = np.stack([signal_features(s, run.signal_length) for s in signals]).astype(np.float64)  # (4, 24, 39)
    voiced = np.abs(x[..., 1:]).max(axis=-1) > 1e-3  # the sidecar's rule
    frames = x[voiced]
    standardised = ((x - frames.mean(axis=0)) / np.sqrt(frames.var(axis=0) + 1e-6) * voiced[..., None])
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    graph = session.run([export.OUTPUT_NAME], {export.INPUT_NAME: standardised.astype("float32")})[0]
    np.testing.assert_allclose(graph, [[r["probabilities"][c] for c in run.classes] for r in rows], atol=1e-5, rtol=0)
    table = str(tmp_path / "p.csv")  # --mode predict: the same rows
    assert main(["--mode", "predict", "--test_path", speaker_run["folder"], "--wav", str(wav), "--output", table]) == 0
    assert "--normalize speaker: every input of --wav taken as one speaker" in capsys.readouterr().out
    with open(table, newline="") as f:
        written = list(csv.DictReader(f))
    assert [(r["label"], float(r[run.classes[0]])) for r in written] == \
        [(r["label"], pytest.approx(r["probabilities"][run.classes[0]], abs=1e-6)) for r in rows]


def test_a_list_of_files_with_speakers_standardises_each_speaker_with_their_own_files(speaker_run, tmp_path,
                                                                                         capsys, monkeypatch):
    """predict --wav list.csv (path,speaker): each input standardised with its speaker's statistics, rows in the
    list's order; the same probabilities as predicting each speaker's files alone; a missing file is its own row.
    The list is read once per call (counted, its speakers, its audio: one listing)."""
    import soundfile as sf

    import timnet_ser
    from timnet_ser.core.errors import UserError
    from timnet_ser.deploy import predict
    reads = []
    read_file_list = predict.read_file_list
    monkeypatch.setattr(predict, "read_file_list", lambda path: reads.append(path) or read_file_list(path))
    run = timnet_ser.load_run(speaker_run["folder"])
    rng = np.random.default_rng(1)
    folder = tmp_path / "two_speakers"
    folder.mkdir()
    for k in range(4):  # speaker A quiet, speaker B loud: pooled statistics would suit neither
        gain = 0.05 if k % 2 == 0 else 0.8
        sf.write(str(folder / f"u{k}.wav"), gain * rng.normal(size=23 * 512).astype("float32"), 22050, subtype="FLOAT")
    listing = folder / "list.csv"
    listing.write_text("path,label,speaker\nu0.wav,x,A\nu1.wav,x,B\n# a comment\nu2.wav,x,A\nu3.wav,x,B\n"
                       "gone.wav,x,B\n")
    rows = run.predict(str(listing))
    assert reads == [str(listing)]
    assert [os.path.basename(r["file"]) for r in rows] == ["u0.wav", "u1.wav", "u2.wav", "u3.wav", "gone.wav"]
    assert rows[4]["label"] is None and rows[4]["error"]
    a = run.predict([str(folder / "u0.wav"), str(folder / "u2.wav")])
    b = run.predict([str(folder / "u1.wav"), str(folder / "u3.wav")])
    for row, alone in zip([rows[0], rows[2], rows[1], rows[3]], a + b):
        assert row["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-6)
    pooled = run.predict([str(folder / f"u{k}.wav") for k in range(4)])  # one speaker: other inputs
    assert pooled[0]["probabilities"] != pytest.approx(rows[0]["probabilities"], abs=1e-6)
    readable = folder / "readable.csv"  # Run.embed: every input must decode; the same standardisation
    readable.write_text("path,speaker\nu0.wav,A\nu1.wav,B\nu2.wav,A\n")
    together = run.embed(str(readable), fold=1)  # (3, D)
    np.testing.assert_allclose(together[[0, 2]], run.embed([str(folder / "u0.wav"), str(folder / "u2.wav")], fold=1),
                               atol=1e-5)
    reads.clear()
    assert main(["--mode", "predict", "--test_path", speaker_run["folder"], "--wav", str(listing)]) == 0
    assert reads == [str(listing)]
    assert "each input standardised with the statistics of its speaker's files (2 speakers in" in capsys.readouterr().out
    no_header = folder / "bare.csv"
    no_header.write_text("u0.wav,A\n")
    assert main(["--mode", "predict", "--test_path", speaker_run["folder"], "--wav", str(no_header)]) == 2
    assert "bare.csv: its first line must name the columns, 'path' and optionally 'speaker'" in capsys.readouterr().err
    blank = folder / "blank.csv"
    blank.write_text("path,speaker\nu0.wav,\n")
    with pytest.raises(UserError, match="blank.csv: line 2 lacks its speaker"):
        run.predict(str(blank))


def test_speaker_statistics_belong_to_speaker_runs(normalized_run):
    import timnet_ser
    from timnet_ser.core.errors import UserError
    run = timnet_ser.load_run(normalized_run["record"]["weights_folder"])
    with pytest.raises(UserError, match="^speaker_statistics: the run in .* --normalize utterance, not by speaker"):
        run.model_inputs(padded_toy(2)[0], np.zeros((2, 39)))


def test_a_feature_file_without_speakers_is_one_line(tmp_path, capsys):
    from timnet_ser.data.feature_files import save_features
    x, y = padded_toy(12)
    path = str(tmp_path / "NOSPK.npy")
    save_features(path, {"x": x, "y": y, "classes": np.array(["a", "b", "c"]), "signal_length": 23 * 512,
                         "features": "mfcc"})
    assert main(["--mode", "train", "--data", "NOSPK", "--feature_path", path, "--normalize", "speaker",
                 "--epoch", "1", "--split_fold", "2", "--model_path", str(tmp_path / "M")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: no speaker for every row (key 'speakers'), which --normalize speaker needs; " \
                  "re-extract it with --mode extract (speakers come from a known corpus' file names (in any layout), " \
                  "or from the speaker column of a manifest (path,label,speaker); class folders of a dataset of " \
                  "your own give none)\n"
    assert not os.path.exists(tmp_path / "M")  # refused before a run folder is made


def test_evaluating_a_speaker_run_without_speakers_asks_for_them(speaker_run, tmp_path):
    """It advised re-extracting a feature file, for arrays given in memory."""
    import timnet_ser
    from timnet_ser.core.errors import UserError
    run = timnet_ser.load_run(speaker_run["folder"])
    x, classes = speaker_run["x"], run.classes
    y = np.eye(len(classes), dtype="float32")[np.arange(len(x)) % len(classes)]
    with pytest.raises(UserError, match=r"^features: the run in .* was trained with --normalize speaker; give "
                                        r"\(x, y, classes, speakers\)"):
        run.evaluate((x, y, classes))
    with pytest.raises(UserError, match=r"^folder nope: no such folder"):  # it named --test_path
        timnet_ser.load_run("nope")
