"""The generated demo corpus: deterministic, in the original's layout, and with classes that really differ."""

import os

import numpy as np
import pytest
import soundfile as sf

from timnet_ser.data import corpora, extraction, synthetic_corpus

SYNTH = corpora.get_corpus("SYNTH")
PER_CLASS = 6


@pytest.fixture(scope="module")
def corpus_folder(tmp_path_factory) -> str:
    folder = str(tmp_path_factory.mktemp("synth"))
    synthetic_corpus.generate(folder, per_class=PER_CLASS, seed=0)
    return folder


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_layout_and_format(corpus_folder):
    assert sorted(os.listdir(corpus_folder)) == sorted(SYNTH.classes)
    for label in SYNTH.classes:
        names = sorted(os.listdir(os.path.join(corpus_folder, label)))
        assert names == [f"{label}_{i:02d}.wav" for i in range(1, PER_CLASS + 1)]
        info = sf.info(os.path.join(corpus_folder, label, names[0]))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert 1.2 <= info.duration <= 1.5 and info.frames <= SYNTH.signal_length


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, corpus_folder):
    again = synthetic_corpus.generate(str(tmp_path / "again"), per_class=PER_CLASS, seed=0)
    assert len(again) == len(SYNTH.classes) * PER_CLASS
    for path in again:
        assert read(path) == read(os.path.join(corpus_folder, os.path.relpath(path, tmp_path / "again")))
    other = synthetic_corpus.generate(str(tmp_path / "other"), per_class=1, seed=1)
    assert read(other[0]) != read(os.path.join(corpus_folder, "angry", "angry_01.wav"))


def test_regenerating_overwrites_in_place(tmp_path):
    first = synthetic_corpus.generate(str(tmp_path), per_class=2, seed=3)
    before = [read(p) for p in first]
    with open(first[0], "wb") as f:
        f.write(b"damaged")
    assert synthetic_corpus.generate(str(tmp_path), per_class=2, seed=3) == first
    assert [read(p) for p in first] == before


def pitch_and_rms(path: str) -> tuple[float, float]:
    """Median f0 (Hz) of the voiced frames and RMS of the whole file."""
    import librosa
    signal, rate = sf.read(path, dtype="float32")
    frames = librosa.util.frame(signal, frame_length=2048, hop_length=512)  # (2048, F)
    loud = np.sqrt((frames ** 2).mean(axis=0)) > 0.3 * np.sqrt((signal ** 2).mean())
    f0 = librosa.yin(signal, fmin=60, fmax=600, sr=rate, frame_length=2048, hop_length=512, center=False)
    return float(np.median(f0[loud[:len(f0)]])), float(np.sqrt((signal ** 2).mean()))


def test_classes_differ_in_pitch_and_loudness(corpus_folder):
    measured = {label: np.array([pitch_and_rms(os.path.join(corpus_folder, label, f"{label}_{i:02d}.wav"))
                                 for i in range(1, PER_CLASS + 1)]) for label in SYNTH.classes}  # (PER_CLASS, 2)
    pitch = {label: values[:, 0].mean() for label, values in measured.items()}
    rms = {label: values[:, 1] for label, values in measured.items()}
    assert pitch["angry"] > 1.3 * pitch["neutral"] and pitch["happy"] > 1.3 * pitch["neutral"], pitch
    assert pitch["neutral"] > pitch["sad"] and 90 < pitch["sad"] < 135, pitch
    assert rms["angry"].min() > rms["sad"].max(), rms  # every angry file is louder than every sad one
    assert rms["angry"].mean() > rms["neutral"].mean() > rms["sad"].mean(), rms


def test_mfcc_features_separate_the_classes(corpus_folder):
    data = extraction.extract_corpus(corpus_folder, SYNTH, workers=1, progress=False)
    assert data["x"].shape == (len(SYNTH.classes) * PER_CLASS, SYNTH.frames, 39)
    summary = np.concatenate([data["x"].mean(axis=1), data["x"].std(axis=1)], axis=1)  # (N, 78)
    summary = (summary - summary.mean(axis=0)) / (summary.std(axis=0) + 1e-6)
    labels = data["y"].argmax(axis=1)
    train, test = np.arange(len(labels)) % 2 == 0, np.arange(len(labels)) % 2 == 1
    centroids = np.stack([summary[train & (labels == c)].mean(axis=0) for c in range(len(SYNTH.classes))])
    predicted = np.linalg.norm(summary[test, None] - centroids[None], axis=2).argmin(axis=1)
    accuracy = (predicted == labels[test]).mean()
    assert accuracy >= 0.75, f"nearest-centroid accuracy {accuracy:.2f}: the classes should be learnable"
