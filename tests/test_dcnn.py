"""DCNN-BLSTMwA: log-Mel segments, the network per backbone, its weights, the feature-kind check, balancing and
augmentation, and train -> test -> predict -> report through the real command line on a tiny generated corpus."""

import json
import os
import shutil
from dataclasses import replace

import keras
import librosa
import numpy as np
import pytest
import soundfile as sf

from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.core.paths import feature_path
from timnet_ser.data import feature_files
from timnet_ser.data import features as feature_kinds
from timnet_ser.data.corpora import CORPORA
from timnet_ser.data.synthetic_corpus import utterance
from timnet_ser.DCNN import AttentionPooling, DCNNBLSTMwA, UtteranceStandardization, build_backbone
from timnet_ser.engine import augment
from timnet_ser.engine.protocol import training_set
from timnet_ser.main import main
from timnet_ser.Model import MODELS, build_model, legacy_weight_groups, without_pretrained
from timnet_ser.nn import legacy_weights
from timnet_ser.runs import report

SPEC = MODELS["DCNN_BLSTMwA"]
TINY = Hyper(backbone_alpha=0.35, backbone_weights="none")  # the smallest MobileNetV2: fast on a CPU


def values(model):
    return [v.numpy() for v in model.weights]


def one_line(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


# --- features ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus, segments", [("EMODB", 12), ("IEMOCAP", 43), ("SYNTH", 3)])
def test_segment_count_per_corpus(corpus, segments):
    length = CORPORA[corpus].signal_length
    assert feature_kinds.feature_shape("logmel3", length) == (segments, 64, 64, 3)
    frames = 1 + length // 220  # librosa's centred frames at a 10 ms hop
    assert 64 + 32 * (segments - 1) <= frames < 64 + 32 * segments  # every segment full, no room for another


def test_logmel3_of_a_tone(tmp_path):
    path = str(tmp_path / "tone.wav")
    t = np.arange(22050) / 22050
    sf.write(path, 0.3 * np.sin(2 * np.pi * 1000 * t), 22050)
    x = feature_kinds.extract_file(path, 22050, "logmel3")  # (S, 64, 64, 3)
    assert x.shape == feature_kinds.feature_shape("logmel3", 22050) == (2, 64, 64, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, 32:], x[1, :32])  # 50 % overlap: the same frames in both segments
    static = np.concatenate([x[0], x[1, 32:]])[..., 0].T  # (64 bands, 96 frames) of the utterance
    edges = librosa.mel_frequencies(64 + 2, fmin=20, fmax=8000)
    loudest = int(static.mean(axis=1).argmax())
    assert edges[loudest] < 1000 < edges[loudest + 2]  # the 1 kHz tone is loudest in the band around 1 kHz
    # the second and third channels are the delta and delta-delta of the first (away from the cut edges)
    frames = np.concatenate([x[0], x[1, 32:]])  # (96, 64, 3)
    np.testing.assert_allclose(frames[8:-8, :, 1].T, librosa.feature.delta(static)[:, 8:-8], atol=1e-3)
    np.testing.assert_allclose(frames[8:-8, :, 2].T, librosa.feature.delta(static, order=2)[:, 8:-8], atol=1e-3)


def test_too_short_for_one_segment():
    with pytest.raises(UserError, match="logmel3: utterances of 10000 samples give 46 frames"):
        feature_kinds.feature_shape("logmel3", 10000)


def test_default_feature_files_do_not_collide():
    paths = {kind: feature_path("EMODB", kind, None)
             for kind in ("mfcc", "logmel3")}
    assert paths["mfcc"].endswith(os.path.join("MFCC", "EMODB.npy"))
    assert paths["logmel3"].endswith(os.path.join("MFCC", "EMODB_logmel3.npy"))


def feature_file(path, kind="logmel3", n=8, segments=2):
    x = np.random.default_rng(0).normal(size=(n, segments, 64, 64, 3) if kind == "logmel3" else (n, 30, 39))
    data = {"x": x.astype("float32"), "y": np.eye(4, dtype="float32")[np.arange(n) % 4],
            "classes": np.array(CORPORA["SYNTH"].classes), "signal_length": np.int64(33075)}
    if kind:
        data["features"] = kind
    np.save(path, data, allow_pickle=True)
    return str(path)


@pytest.mark.parametrize("kind, model, message", [
    (None, "DCNN_BLSTMwA", "holds mfcc features; --model DCNN_BLSTMwA needs logmel3: extract them with --mode "
                           "extract --features logmel3"),  # the authors' files have no 'features' key
    ("mfcc", "DCNN_BLSTMwA", "holds mfcc features; --model DCNN_BLSTMwA needs logmel3"),
    ("logmel3", "TIMNET", "holds logmel3 features; --model TIMNET needs mfcc: extract them with --mode extract "
                          "--features mfcc"),
    ("logmel3", "GMTCN", "holds logmel3 features; --model GMTCN needs mfcc"),
])
def test_a_model_is_never_fed_the_wrong_kind(tmp_path, capsys, kind, model, message):
    path = feature_file(tmp_path / "f.npy", kind)
    out = str(tmp_path / "out")
    offline = ["--backbone_weights", "none"] if model == "DCNN_BLSTMwA" else []  # TIM-Net's network has none
    assert main(["--mode", "train", "--model", model, "--data", "SYNTH", "--feature_path", path, *offline,
                 "--model_path", out, "--result_path", out]) == 2
    one_line(capsys, "f.npy: " + message)
    assert not os.path.exists(out)


def test_the_shape_check_follows_the_kind():
    data = {"x": np.zeros((4, 30, 39), "float32"), "y": np.eye(4, dtype="float32"), "features": "logmel3"}
    with pytest.raises(UserError, match=r"x has shape \(4, 30, 39\), expected \(N, S, 64, 64, 3\) log-Mel"):
        feature_files.validate_features(data, "f.npy", CORPORA["SYNTH"], "logmel3")
    data["features"] = "spectrogram"
    with pytest.raises(UserError, match="'features' is 'spectrogram', not one of mfcc, logmel3"):
        feature_files.validate_features(data, "f.npy", CORPORA["SYNTH"], "logmel3")


# --- the network ---------------------------------------------------------------------------------------

# backbone, alpha -> (parameters of the Keras Applications CNN, its feature size, total for 7 classes)
BACKBONE_SIZES = {("mobilenetv2", 1.0): (2_257_984, 1280, 3_833_415),
                  ("mobilenetv2", 0.35): (410_208, 1280, 1_985_639),
                  ("resnet50v2", 1.0): (23_564_800, 2048, 25_926_663)}


@pytest.mark.parametrize("backbone, alpha", list(BACKBONE_SIZES))
def test_shapes_and_parameter_counts(backbone, alpha):
    cnn_params, width, total = BACKBONE_SIZES[(backbone, alpha)]
    model = build_model(SPEC, (12, 64, 64, 3), 7, Hyper(backbone=backbone, backbone_alpha=alpha,
                                                          backbone_weights="none"))
    assert model.input_shape == (None, 12, 64, 64, 3) and model.output_shape == (None, 7)
    assert model.count_params() == total
    lstm = 2 * (4 * 128 * (width + 128) + 4 * 128)  # BiLSTM, 128 units per direction
    head = (256 * 128 + 2 * 128) + (256 * 256 + 256) + (256 * 128 + 128) + (128 * 7 + 7)  # attention, dense x2, softmax
    assert total == cnn_params + lstm + head
    network = model.get_layer("dcnn_blstmwa")
    norms = [la for la in network.segment_cnn.backbone.layers if isinstance(la, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    x = np.random.default_rng(1).normal(size=(2, 12, 64, 64, 3)).astype("float32")
    assert tuple(network.segment_cnn(network.standardize(x)).shape) == (2, 12, width)
    assert tuple(network.sequence(x).shape) == (2, 12, 256)
    probs = np.asarray(model(x))
    assert probs.shape == (2, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_segment_cnn_is_time_distributed():
    keras.utils.set_random_seed(3)
    network = DCNNBLSTMwA(alpha=0.35, weights=None)
    x = np.random.default_rng(2).normal(size=(2, 3, 64, 64, 3)).astype("float32")
    ours = network.segment_cnn(x, training=False)
    theirs = keras.layers.TimeDistributed(network.segment_cnn.backbone)(x, training=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_attention_weights_sum_to_one_and_pool_the_segments():
    layer = AttentionPooling(8)
    h = np.random.default_rng(4).normal(size=(3, 5, 6)).astype("float32")
    pooled = np.asarray(layer(h))  # (3, 6)
    scores = np.asarray(layer.scores(h))  # (3, 5)
    assert scores.shape == (3, 5) and np.allclose(scores.sum(1), 1, atol=1e-6) and (scores > 0).all()
    np.testing.assert_allclose(pooled, np.einsum("bs,bsc->bc", scores, h), atol=1e-5)
    same = np.repeat(h[:, :1], 5, axis=1)  # every segment alike: the pooled vector is that segment
    np.testing.assert_allclose(layer(same), h[:, 0], atol=1e-5)


def test_standardisation_per_utterance_and_channel():
    x = np.random.default_rng(5).normal(3.0, 7.0, size=(2, 3, 64, 64, 3)).astype("float32")
    x[1, ..., 2] = -40.0  # a constant (silent) channel
    y = np.asarray(UtteranceStandardization()(x))
    np.testing.assert_allclose(y[0].mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(y[0].std(axis=(0, 1, 2)), 0.5, atol=1e-4)
    assert np.all(y[1, ..., 2] == 0)


@pytest.mark.parametrize("args, message", [
    (dict(backbone="vgg16"), "backbone must be one of mobilenetv2, resnet50v2, received backbone='vgg16'"),
    (dict(backbone="resnet50v2", alpha=0.5), "alpha must be 1.0 (resnet50v2 has no width multiplier), received alpha=0.5"),
    (dict(alpha=0.6, weights="imagenet"), "alpha must be one of 0.35 0.5 0.75 1 1.3 1.4 to load ImageNet weights"),
    (dict(image_size=16), "image_size must be an integer of at least 32"),
    (dict(lstm_units=0), "lstm_units must be a positive integer, received lstm_units=0"),
    (dict(dropout_rate=1.0), "dropout_rate must be in [0, 1), received dropout_rate=1.0"),
])
def test_layer_arguments_are_checked(args, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        DCNNBLSTMwA(**{"weights": None, **args})


def test_legacy_weights_round_trip_and_serialisation(tmp_path):
    keras.utils.set_random_seed(6)
    model = build_model(SPEC, (3, 64, 64, 3), 4, TINY)
    groups = legacy_weight_groups(model)
    assert sum(len(v) for _, v in groups) == len(model.weights)  # every weight in exactly one group
    assert len({name for name, _ in groups}) == len(groups)
    path = str(tmp_path / "w.hdf5")
    legacy_weights.save_legacy_weights(path, groups)
    keras.utils.set_random_seed(7)
    other = build_model(SPEC, (3, 64, 64, 3), 4, TINY)
    for variable in other.weights:  # moving statistics too: a loaded file must set every weight
        variable.assign(np.asarray(variable) + 0.5)
    legacy_weights.load_legacy_weights(path, legacy_weight_groups(other))
    assert all(np.array_equal(a, b) for a, b in zip(values(model), values(other)))
    x = np.random.default_rng(8).normal(size=(2, 3, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(model(x), other(x))
    layer = model.get_layer("dcnn_blstmwa")
    assert DCNNBLSTMwA.from_config(layer.get_config()).get_config() == layer.get_config()


# --- backbone weights ----------------------------------------------------------------------------------

def test_imagenet_download_failure_is_one_line(tmp_path, capsys, monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    out = str(tmp_path / "out")
    assert main(["--mode", "train", "--model", "DCNN_BLSTMwA", "--data", "SYNTH", "--epoch", "1", "--split_fold", "2",
                 "--feature_path", feature_file(tmp_path / "f.npy"), "--model_path", out, "--result_path", out]) == 2
    one_line(capsys, "--backbone_weights imagenet: cannot download the ImageNet weights of mobilenetv2 (URL fetch "
                     "failure on https://storage.googleapis.com/", "Name or service not known",
             "pass it with --backbone_weights <file>", "--backbone_weights none")
    assert not os.path.exists(out), "no run folder for a run that cannot start"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside Keras' save_weights
@pytest.mark.parametrize("name", ["mobilenet.weights.h5", "mobilenet_no_top.h5"])
def test_backbone_weights_from_a_local_file(tmp_path, name):
    keras.utils.set_random_seed(9)
    saved = build_backbone("mobilenetv2", 0.35, None)
    path = str(tmp_path / name)
    if name.endswith(".weights.h5"):  # Keras 3's format
        saved.save_weights(path)
    else:  # the Keras-2 layout of the files Keras downloads
        import h5py
        from keras.src.legacy.saving import legacy_h5_format
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, saved)
    keras.utils.set_random_seed(10)
    model = build_model(SPEC, (3, 64, 64, 3), 4, Hyper(backbone_alpha=0.35, backbone_weights=path))
    loaded = model.get_layer("dcnn_blstmwa").segment_cnn.backbone
    assert all(np.array_equal(a, b) for a, b in zip(values(saved), values(loaded)))
    assert not all(np.array_equal(a, b) for a, b in zip(values(saved), values(build_backbone(
        "mobilenetv2", 0.35, None)))), "a fresh backbone differs: the file was really loaded"
    with pytest.raises(UserError, match=f"--backbone_weights {path}: does not fit the mobilenetv2 backbone"):
        build_model(SPEC, (3, 64, 64, 3), 4, Hyper(backbone_alpha=0.5, backbone_weights=path))
    assert without_pretrained(Hyper(backbone_weights=path)).backbone_weights == "none"


@pytest.mark.parametrize("args, message", [
    (["--backbone", "alexnet"], "--backbone 'alexnet': must be one of mobilenetv2, resnet50v2"),
    (["--backbone", "resnet50v2", "--backbone_alpha", "0.5"], "--backbone_alpha 0.5: must be 1.0 (resnet50v2 has no width"),
    (["--backbone_alpha", "0.6"], "--backbone_alpha 0.6: must be one of 0.35 0.5 0.75 1 1.3 1.4 to load ImageNet "
                                  "weights (or --backbone_weights none)"),
    (["--backbone_weights", "nowhere.h5"], "--backbone_weights nowhere.h5: not imagenet, none or an existing"),
    (["--image_size", "16"], "--image_size 16: must be an integer of at least 32"),
    (["--augment", "-1"], "--augment -1: must be 0 or more"),
    (["--features", "mfcc"], "--features mfcc: --model DCNN_BLSTMwA reads logmel3 features"),
    (["--model", "TIMNET", "--augment", "1"], "--augment 1: masks log-Mel segments; --model TIMNET reads mfcc"),
])
def test_impossible_dcnn_flags_name_themselves(capsys, args, message):
    assert main(["--mode", "train", "--model", "DCNN_BLSTMwA", *args]) == 2
    one_line(capsys, message)


# --- balancing and augmentation ------------------------------------------------------------------------

def test_oversampling_equalises_the_training_classes():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 5 + [0] * 4)  # rows 18-21 (class 0) are not training rows
    rows = np.arange(18)
    balanced = augment.oversample(rows, labels, np.random.default_rng(0))
    assert np.array_equal(balanced[:18], rows) and set(balanced) <= set(rows)
    assert np.bincount(labels[balanced]).tolist() == [10, 10, 10]
    extra_of_1 = balanced[18:][labels[balanced[18:]] == 1]
    assert np.bincount(extra_of_1).tolist()[10:] == [2, 2, 3]  # two whole copies, then one more of one row


def test_masked_copies_mask_one_band_and_one_stretch():
    x = np.random.default_rng(1).normal(size=(3, 4, 64, 64, 3)).astype("float32")
    original = x.copy()
    out = augment.masked_copies(x, 2, np.random.default_rng(2), max_bands=8, max_frames=16)
    assert out.shape == (6, 4, 64, 64, 3) and np.array_equal(x, original)
    for k in range(2):
        for i in range(3):
            copy, source = out[k * 3 + i], x[i]
            changed = (copy != source).any(axis=-1)  # (S, frames, bands)
            bands = np.flatnonzero(changed.all(axis=(0, 1)))  # masked in every segment and frame
            assert len(bands) <= 8 and np.all(np.diff(bands) == 1)
            rest = np.delete(changed, bands, axis=2)  # outside the band: only the time stretch
            timeline = np.zeros(32 * 3 + 64, bool)  # the utterance's frames
            for s in range(4):
                timeline[32 * s:32 * s + 64] |= rest[s].any(axis=1)
                np.testing.assert_array_equal(rest[s].any(axis=1), rest[s].all(axis=1))  # whole frames
            assert timeline.sum() <= 16 and np.all(np.diff(np.flatnonzero(timeline)) == 1)
            for s in range(3):  # a frame shared by two segments is masked in both or neither
                np.testing.assert_array_equal(rest[s, 32:].any(axis=1), rest[s + 1, :32].any(axis=1))
            np.testing.assert_allclose(copy[changed], np.broadcast_to(source.mean(axis=(0, 1, 2)),
                                                                      copy.shape)[changed], rtol=1e-6)


def test_training_set_uses_training_rows_only():
    x = np.random.default_rng(3).normal(size=(10, 2, 64, 64, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[[0, 0, 0, 0, 1, 0, 0, 1, 1, 1]]
    fit = np.array([0, 1, 2, 3, 4, 5])  # rows 6-9 are the test fold
    config = RunConfig(model="DCNN_BLSTMwA", data="T", classes=["a", "b"], feature_path="t.npy")
    same_x, same_y, rows = training_set(config, x, y, fit, np.random.default_rng(4))
    assert same_x is x and same_y is y and rows is fit  # off by default: no copy, no draw
    config = replace(config, augment=2, balance=True)
    aug_x, aug_y, rows = training_set(config, x, y, fit, np.random.default_rng(4))
    assert len(aug_x) == 18 and np.array_equal(aug_x[:6], x[fit]) and np.array_equal(aug_y[:6], y[fit])
    for copy, source in zip(aug_x[6:], np.concatenate([x[fit]] * 2)):  # each copy is a training row, masked
        assert np.mean(copy == source) > 0.5
    assert np.bincount(aug_y[rows].argmax(1)).tolist() == [15, 15]


# --- train, re-test, predict and report through the command line ----------------------------------------

def test_train_retest_predict_report(tmp_path, capsys):
    wavs = tmp_path / "wav"
    for c, label in enumerate(CORPORA["SYNTH"].classes):
        os.makedirs(wavs / label)
        for i in range(3):
            sf.write(str(wavs / label / f"{label}_{i}.wav"), utterance(label, np.random.default_rng([0, c, i])), 22050)
    features = str(tmp_path / "SYNTH_logmel3.npy")
    assert main(["--mode", "extract", "--data", "SYNTH", "--features", "logmel3", "--wav_path", str(wavs),
                 "--feature_path", features, "--workers", "1"]) == 0
    data = feature_files.load_features(features)
    assert data["features"] == "logmel3" and data["x"].shape == (12, 3, 64, 64, 3)
    common = ["--model", "DCNN_BLSTMwA", "--data", "SYNTH", "--feature_path", features, "--backbone_alpha", "0.35",
              "--split_fold", "2", "--result_path", str(tmp_path / "R")]
    assert main(["--mode", "train", *common, "--backbone_weights", "none", "--epoch", "1", "--batch_size", "4",
                 "--balance", "--augment", "1", "--model_path", str(tmp_path / "M")]) == 0
    out = capsys.readouterr().out
    assert "model DCNN_BLSTMwA (mobilenetv2 alpha 0.35, random init): 1,985,252 parameters" in out
    [folder] = [str(p) for p in (tmp_path / "M").iterdir()]
    [trained_json] = [p for p in (tmp_path / "R").iterdir() if p.name.endswith("DCNN_BLSTMwA_last_epoch.json")]
    trained = json.loads(trained_json.read_text())
    assert trained["config"]["balance"] is True and trained["config"]["augment"] == 1
    assert trained["config"]["lr"] == 1e-4 and trained["config"]["beta2"] == 0.999  # the model's recipe

    # test mode rebuilds the backbone without ImageNet (default --backbone_weights imagenet): no download
    assert main(["--mode", "test", *common, "--test_path", folder]) == 0
    [tested_json] = [p for p in (tmp_path / "R").iterdir() if p.name.endswith("DCNN_BLSTMwA_test.json")]
    tested = json.loads(tested_json.read_text())
    assert [f["y_pred"] for f in tested["folds"]] == [f["y_pred"] for f in trained["folds"]]
    assert tested["variant"] == "mobilenetv2 alpha 0.35"

    wav = str(wavs / "sad" / "sad_1.wav")
    # the same pipeline as extraction; the extraction workers use one BLAS thread each, this process several,
    # so the sums inside the mel projection may round differently (float32)
    np.testing.assert_allclose(feature_kinds.extract_file(wav, CORPORA["SYNTH"].signal_length, "logmel3"),
                               data["x"][list(data["files"]).index(os.path.join("sad", "sad_1.wav"))],
                               rtol=1e-5, atol=1e-5)
    assert main(["--mode", "predict", "--model", "DCNN_BLSTMwA", "--data", "SYNTH", "--backbone_alpha", "0.35",
                 "--test_path", folder, "--wav", wav, "--output", str(tmp_path / "p.json")]) == 0
    [row] = json.loads((tmp_path / "p.json").read_text())
    assert set(row["probabilities"]) == set(CORPORA["SYNTH"].classes)
    assert sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert "DCNN_BLSTMwA SYNTH weights" in capsys.readouterr().out
    import timnet_ser  # a speaker's statistics are of MFCCs: "no decodable MFCC input" of a file that decoded
    with pytest.raises(UserError, match=r"^speaker_statistics: DCNN_BLSTMwA reads logmel3 features; a speaker's"):
        timnet_ser.load_run(folder).speaker_statistics(wav)

    assert main(["--mode", "report", "--result_path", str(tmp_path / "R")]) == 0
    assert "| DCNN_BLSTMwA (mobilenetv2 alpha 0.35, random init) | SYNTH (synthetic) | SYNTH_logmel3.npy | " \
           "last_epoch |" in \
        capsys.readouterr().out

    # fine-tuned from that run: no initial backbone weights are read (the default, ImageNet, was downloaded to be
    # overwritten; offline the run stopped there), and the run says where it started ("random init" before)
    tuned = ["--mode", "train", "--model", "DCNN_BLSTMwA", "--data", "SYNTH", "--feature_path", features,
             "--split_fold", "2", "--init_from", folder, "--epoch", "1", "--batch_size", "4",
             "--model_path", str(tmp_path / "M2"), "--result_path", str(tmp_path / "R2")]
    assert main(tuned) == 2
    one_line(capsys, f"--init_from {folder}: another network: backbone_alpha 0.35 (new run 1.0); give the new run the "
                     "source's: --backbone_alpha 0.35")
    assert main([*tuned, "--backbone_alpha", "0.35", "--backbone_weights", "imagenet"]) == 2
    one_line(capsys, "--backbone_weights imagenet: --init_from's weights replace the backbone's initial weights")
    assert main([*tuned, "--backbone_alpha", "0.35"]) == 0
    name = os.path.basename(folder)
    assert f"model DCNN_BLSTMwA (mobilenetv2 alpha 0.35, fine-tuned from {name}): " in capsys.readouterr().out
    [tuned_json] = (tmp_path / "R2").glob("*DCNN_BLSTMwA_last_epoch.json")
    assert json.loads(tuned_json.read_text())["variant"] == f"mobilenetv2 alpha 0.35, fine-tuned from {name}"

    # a run whose backbone started from a file that is gone since: resumed, Keras said it "does not fit"
    moved = str(tmp_path / "moved")
    shutil.copytree(folder, moved)
    description = json.loads((tmp_path / "moved" / "run.json").read_text())
    description["config"]["hyper"]["backbone_weights"] = gone = str(tmp_path / "gone.weights.h5")
    (tmp_path / "moved" / "run.json").write_text(json.dumps(description))
    os.remove(os.path.join(moved, "2-fold_weights_best_2.hdf5"))
    assert main(["--mode", "train", "--resume", moved]) == 2
    one_line(capsys, f"--resume {moved}: the run's backbone started from {gone}, which is gone; its folds not "
                     "trained yet start from that file: put it (or a copy) back there to resume")


def record(cv, folds, protocol="last_epoch", data="EMODB", feature_path=None, uar=0.5, seed=1):
    """A training record on the corpus' default feature file with its full number of rows (two folds shown)."""
    rows = CORPORA[data].utterances
    return {"model": "DCNN_BLSTMwA", "variant": "mobilenetv2 alpha 1, ImageNet init", "protocol": protocol,
            "mode": "train", "synthetic": False, "weights_folder": "M/x",
            "config": {"data": data, "cv": cv, "split_fold": folds, "random_seed": seed, "epochs": 50,
                       "feature_path": feature_path or f"MFCC/{data}_logmel3.npy"},
            "summary": {"uar_pooled": uar, "war_mean_of_folds": 0.5},
            "folds": [{"n": n, "uar": uar, "war": 0.5} for n in (rows // 2, rows - rows // 2)]}


def test_report_never_averages_runs_on_different_feature_files():
    table = report.build_table([record("speaker", 10, uar=0.4), record("speaker", 10, uar=0.6, seed=2),
                                record("speaker", 10, feature_path="/data/EMODB_2s_logmel3.npy", uar=0.9)])
    shown = {r["features"]: (r["runs"], r["UAR % (pooled)"]) for _, r in table.iterrows()}
    assert shown == {"EMODB_logmel3.npy": (2, "50.00 ± 10.00"), "EMODB_2s_logmel3.npy": (1, "90.00")}


def test_report_shows_the_papers_numbers_for_speaker_independent_runs_only():
    table = report.build_table([record("speaker", 10), record("kfold", 10), record("speaker", 5),
                                record("speaker", 5, data="IEMOCAP"), record("speaker", 10, protocol="paper")])
    shown = {(r["corpus"], r["cv"], r["folds"], r["protocol"]): r["published UAR %"] for _, r in table.iterrows()}
    assert shown == {("EMODB", "speaker", 10, "last_epoch"): "87.86", ("EMODB", "kfold", 10, "last_epoch"): "–",
                     ("EMODB", "speaker", 5, "last_epoch"): "–", ("IEMOCAP", "speaker", 5, "last_epoch"): "68.50",
                     ("EMODB", "speaker", 10, "paper (SELECTED ON THE TEST FOLD)"): "–"}
    assert set(table["published WAR %"]) == {"–"}
    assert set(table["model"]) == {"DCNN_BLSTMwA (mobilenetv2 alpha 1, ImageNet init)"}
