"""MFCC extraction against the reference features, file layouts, and feature files read without running code."""

import os

import numpy as np
import pytest
import soundfile as sf

import corpora
import extract_feature as ef
from errors import UserError

EMODB = corpora.get_corpus("EMODB")


def test_emodb_2s_reproduces_the_reference_features(shared):
    data = ef.extract_corpus(os.path.join(shared, "data", "emodb_2s"), EMODB, workers=2, progress=False)
    reference = np.load(os.path.join(shared, "reference", "EMODB_2s.npy"), allow_pickle=True).item()
    with open(os.path.join(shared, "reference", "EMODB_2s_order.txt")) as f:
        order = f.read().split()
    assert list(data["files"]) == order
    np.testing.assert_array_equal(data["y"], reference["y"])
    assert data["x"].shape == reference["x"].shape == (535, 188, 39)
    scale = np.abs(reference["x"]).max()
    worst = np.abs(data["x"] - reference["x"]).max()
    assert worst <= 1e-3 * scale, f"max difference {worst} vs scale {scale}"
    assert set(data["speakers"]) == {"03", "08", "09", "10", "11", "12", "13", "14", "15", "16"}


def write_wav(path, seconds=0.5, rate=22050, channels=1, subtype="PCM_16", value=0.1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = int(seconds * rate)
    signal = value * np.sin(2 * np.pi * 220 * np.arange(n) / rate)
    sf.write(path, np.stack([signal] * channels, axis=1) if channels > 1 else signal, rate, subtype=subtype)
    return path


@pytest.mark.parametrize("samples, length", [(1000, 1301), (1301, 1000)])
def test_centring_pads_and_crops_as_the_original(tmp_path, samples, length):
    signal = np.arange(1, samples + 1, dtype="float32") / samples / 2
    path = str(tmp_path / "a.wav")
    sf.write(path, signal, 22050, subtype="FLOAT")
    out = ef.load_centered(path, length)
    assert out.shape == (length,)
    if samples < length:
        left = (length - samples) // 2  # floor on the left, the rest on the right
        assert np.all(out[:left] == 0) and out[left] == signal[0] and np.all(out[left + samples:] == 0)
    else:
        start = (samples - length) // 2
        np.testing.assert_array_equal(out, signal[start:start + length])


@pytest.mark.parametrize("rate, channels, subtype", [(8000, 2, "PCM_U8"), (96000, 1, "PCM_24"), (22050, 2, "PCM_16")])
def test_other_rates_widths_and_stereo_work(tmp_path, rate, channels, subtype):
    path = write_wav(str(tmp_path / "x.wav"), rate=rate, channels=channels, subtype=subtype)
    assert ef.extract_file(path, 22050).shape == (1 + 22050 // 512, 39)


@pytest.mark.parametrize("content", [b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"this is not audio at all" * 20])
def test_undecodable_files_are_named(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(UserError, match="broken.wav"):
        ef.load_centered(str(path), 1000)


def test_class_folder_layout_in_class_then_natural_order(tmp_path):
    corpus = corpora.get_corpus("SYNTH")
    for label in corpus.classes:
        for name in ("u10.wav", "u2.wav", "u1.wav"):
            write_wav(str(tmp_path / label / name), seconds=0.1)
    items = ef.list_corpus_files(str(tmp_path), corpus)
    assert [(os.path.basename(p), label) for p, label, _ in items[:3]] == [
        ("u1.wav", "angry"), ("u2.wav", "angry"), ("u10.wav", "angry")]
    assert [label for _, label, _ in items[::3]] == list(corpus.classes)


def test_emodb_names_give_label_and_speaker(tmp_path):
    for name in ("03a01Wa.wav", "10b02Tc.wav", "03a02Wb.wav", "08a01Lb.wav", "09a01Ea.wav", "11a01Aa.wav",
                 "12a01Fa.wav", "13a01Na.wav", "notes.txt"):
        (write_wav(str(tmp_path / name), seconds=0.05) if name.endswith(".wav") else (tmp_path / name).write_text("x"))
    items = ef.list_corpus_files(str(tmp_path), EMODB)
    assert [(os.path.basename(p), label, speaker) for p, label, speaker in items][:3] == [
        ("03a01Wa.wav", "angry", "03"), ("03a02Wb.wav", "angry", "03"), ("08a01Lb.wav", "boredom", "08")]
    assert items[-1][1:] == ("sad", "10")


def test_ravdess_names_give_label_and_actor():
    assert corpora.get_corpus("RAVDE").parse_name("Actor_12/03-01-05-01-02-01-12.wav") == ("angry", "12")


def test_empty_class_folder_is_named(tmp_path):
    corpus = corpora.get_corpus("SYNTH")
    for label in corpus.classes:
        os.makedirs(tmp_path / label)
        if label != "sad":
            write_wav(str(tmp_path / label / "a.wav"), seconds=0.05)
    with pytest.raises(UserError, match=r"sad.*no wav files for class 'sad'"):
        ef.list_corpus_files(str(tmp_path), corpus)


def test_feature_file_round_trip_keeps_the_authors_format(tmp_path):
    corpus = corpora.get_corpus("SYNTH")
    for label in corpus.classes:
        write_wav(str(tmp_path / "wav" / label / "a.wav"), seconds=0.3)
    data = ef.extract_corpus(str(tmp_path / "wav"), corpus, workers=1, progress=False)
    path = str(tmp_path / "SYNTH.npy")
    ef.save_features(path, data)
    assert os.listdir(tmp_path) == ["wav", "SYNTH.npy"] or sorted(os.listdir(tmp_path)) == ["SYNTH.npy", "wav"]
    theirs = np.load(path, allow_pickle=True).item()  # how the original reads it
    ours = ef.load_features(path)
    for key in ("x", "y"):
        np.testing.assert_array_equal(theirs[key], data[key])
        np.testing.assert_array_equal(ours[key], data[key])
    assert list(ours["classes"]) == list(corpus.classes) and int(ours["signal_length"]) == corpus.signal_length
    ef.validate_features(ours, path, corpus)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_feature_file_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, {"x": np.zeros((2, 3, 39), "float32"), "y": Payload(str(marker))}, allow_pickle=True)
    with pytest.raises(UserError, match=r"evil.npy: refused to load.*open"):
        ef.load_features(str(path))
    assert not marker.exists()
    # the payload really is in the file: it was refused, not lost
    with open(path, "rb") as f:
        assert b"open" in f.read()


def test_reference_file_loads_safely(shared):
    path = os.path.join(shared, "reference", "EMODB_2s.npy")
    x, y = ef.validate_features(ef.load_features(path), path, EMODB)
    assert x.shape == (535, 188, 39) and y.shape == (535, 7) and x.dtype == np.float32


def good():
    return {"x": np.zeros((4, 10, 39), "float32"), "y": np.eye(7, dtype="float32")[[0, 1, 2, 3]]}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("y"), "missing key"),
    (lambda d: d.update(x=np.zeros((4, 39), "float32")), "expected \\(N, T, 39\\)"),
    (lambda d: d.update(x=np.zeros((4, 10, 20), "float32")), "expected \\(N, T, 39\\)"),
    (lambda d: d.update(x=np.zeros((4, 10, 39), "int32")), "dtype int32"),
    (lambda d: d.update(y=np.eye(6, dtype="float32")[[0, 1, 2, 3]]), "6 classes, --data EMODB has 7"),
    (lambda d: d.update(y=np.eye(7, dtype="float32")[[0, 1, 2]]), "4 rows but y has 3"),
    (lambda d: d["x"].__setitem__((1, 2, 3), np.nan), "1 row\\(s\\) of x hold NaN or Inf"),
    (lambda d: d["y"].__setitem__((0, 1), 1.0), "not one-hot"),
])
def test_bad_feature_contents_are_named(change, message):
    data = good()
    change(data)
    with pytest.raises(UserError, match=f"bad.npy: .*{message}"):
        ef.validate_features(data, "bad.npy", EMODB)


def test_not_a_dict_and_not_npy(tmp_path):
    array_file = tmp_path / "array.npy"
    np.save(array_file, np.zeros(3))
    with pytest.raises(UserError, match="array.npy: holds a ndarray"):
        ef.load_features(str(array_file))
    text = tmp_path / "text.npy"
    text.write_text("hello")
    with pytest.raises(UserError, match="text.npy: not a readable .npy"):
        ef.load_features(str(text))
    with pytest.raises(UserError, match="--mode extract --data EMODB"):
        ef.load_features(str(tmp_path / "none.npy"), data_key="EMODB")
