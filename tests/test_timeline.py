"""Long recordings (issue #25): predict says what it scored; the timeline scores a 60 s file window by window with a
model trained here on the synthetic corpus, follows its changes of class and skips its silences, reads the file in
blocks bit for bit as librosa.load would, and is reproduced from the exported ONNX model's sidecar alone."""

import csv
import json
import os

import librosa
import numpy as np
import pytest
import soundfile as sf

import timnet_ser
from conftest import train_toy_run
from timnet_ser.core.config import Hyper, RunConfig
from timnet_ser.core.errors import UserError
from timnet_ser.data import features, synthetic_corpus
from timnet_ser.deploy import timeline
from timnet_ser.main import main
from timnet_ser.Model import MODELS

CLASSES = list(synthetic_corpus.CORPUS.classes)
LENGTH = 64 * 512  # the toy run's signal length (train_toy_run's): 65 MFCC frames, 1.49 s
ORDER = ["sad", "angry", "neutral", "happy", "sad", "angry"]  # the class of each 10 s of the long file
SPEECH = 7.5  # seconds of speech at the start of every 10 s (5 utterances of 1.5 s), then silence
RATE = 44100  # the long file is written as 44.1 kHz stereo, so reading it resamples and mixes down


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """TIM-Net (16 filters, 4 blocks) trained 2-fold on 20 synthetic utterances per class: ~85 % held out."""
    folder = tmp_path_factory.mktemp("run")
    signals = [synthetic_corpus.utterance(c, np.random.default_rng([0, i, k])) for i, c in enumerate(CLASSES)
               for k in range(20)]
    x = np.stack([features.signal_features(s, LENGTH) for s in signals])  # (80, 65, 39)
    y = np.eye(len(CLASSES), dtype="float32")[np.repeat(np.arange(len(CLASSES)), 20)]
    config = RunConfig(model="TIMNET", data="SYNTH", classes=CLASSES, feature_path="-", split_fold=2, random_seed=1,
                       epochs=80, batch_size=16, lr=0.003, hyper=Hyper(filter_size=16, dilation_size=4))
    trained = train_toy_run(MODELS["TIMNET"], config, x, y, str(folder / "Models"), str(folder / "Results"))
    return timnet_ser.load_run(trained["record"]["weights_folder"])


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """60 s: every 10 s a new class (utterances the run never saw), each 10 s ending in 2.5 s of silence."""
    parts = []
    for i, label in enumerate(ORDER):
        parts += [synthetic_corpus.utterance(label, np.random.default_rng([1, i, k])) for k in range(5)]
        parts.append(np.zeros(round((10 - SPEECH) * synthetic_corpus.SAMPLE_RATE), np.float32))
    signal = librosa.resample(np.concatenate(parts), orig_sr=synthetic_corpus.SAMPLE_RATE, target_sr=RATE)
    path = str(tmp_path_factory.mktemp("audio") / "long.wav")
    other = 0.1 * signal[::-1]  # the channels differ; their mean, which librosa.load reads, is the signal
    sf.write(path, np.stack([signal + other, signal - other], axis=1), RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def result(run, long_file):
    return run.timeline(long_file)


def test_the_timeline_follows_the_changes_and_skips_the_silences(run, result):
    windows = result["windows"]
    assert result["duration_seconds"] == pytest.approx(60, abs=1e-3)
    assert result["window_seconds"] == pytest.approx(LENGTH / 22050, abs=1e-3)
    assert result["hop_seconds"] == pytest.approx(LENGTH // 2 / 22050, abs=1e-3)
    assert windows[-1]["end"] == result["duration_seconds"]  # the last window ends with the file
    right, inside = 0, 0
    for i, label in enumerate(ORDER):
        speech = [w for w in windows if 10 * i <= w["start"] and w["end"] <= 10 * i + SPEECH]
        silence = [w for w in windows if 10 * i + SPEECH <= w["start"] and w["end"] <= 10 * (i + 1)]
        assert len(speech) >= 8 and silence, f"segment {i}"
        assert all(w["voiced"] for w in speech) and not any(w["voiced"] for w in silence), f"segment {i}"
        labels = [w["label"] for w in speech]
        assert max(set(labels), key=labels.count) == label, f"segment {i}: {labels}"
        right, inside = right + labels.count(label), inside + len(labels)
    assert right >= 0.8 * inside, f"{right} of {inside} windows inside a segment have its class"
    skipped = [w for w in windows if not w["voiced"]]
    assert all(w["label"] is None and w["probabilities"] is None for w in skipped)
    voiced = np.array([[w["probabilities"][c] for c in CLASSES] for w in windows if w["voiced"]])
    assert [result["overall"][c] for c in CLASSES] == pytest.approx(voiced.mean(axis=0), abs=1e-9)
    assert sum(result["share_of_time"].values()) == pytest.approx(1)
    # the voiced windows own all the speech (45 s) and the edges of each silence, at least a hop of each is skipped
    assert 6 * SPEECH <= result["voiced_seconds"] <= 60 - 6 * result["hop_seconds"]
    assert result["share_of_time"]["neutral"] == pytest.approx(1 / 6, abs=0.05)  # one 10 s part of six
    for start, end in result["voiced_regions"]:  # none reaches into a silence by more than a frame (23 ms)
        assert not any(start < 10 * (i + 1) - 0.03 and end > 10 * i + SPEECH + 0.03 for i in range(6)), (start, end)


def test_windows_are_read_in_blocks_as_training_reads_a_file(run, long_file, result, monkeypatch):
    signal, _ = librosa.load(long_file)  # the training pipeline's read: whole file, mono, 22 050 Hz
    blocks = list(timeline._file_blocks(long_file, 5000))
    assert len(blocks) > 100 and np.array_equal(np.concatenate(blocks), signal)  # seamless, bit for bit

    def whole_file(*args, **kwargs):
        raise AssertionError("the timeline must not decode the whole file at once")
    with monkeypatch.context() as patched:
        patched.setattr(librosa, "load", whole_file)
        small = timeline.timeline(run, long_file, block_frames=3000)  # windows span many blocks
    assert [w["voiced"] for w in small["windows"]] == [w["voiced"] for w in result["windows"]]
    for ours, theirs in zip(small["windows"], result["windows"]):
        if ours["voiced"]:
            assert ours["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-6)
    # a window is exactly what predict scores of those samples (centring leaves L samples as they are)
    for k, w in [(k, w) for k, w in enumerate(result["windows"][:-1]) if w["voiced"]][::20]:
        start = k * (LENGTH // 2)  # every hop, the default hop being half a window
        assert w["start"] == pytest.approx(start / 22050, abs=1e-3)
        [row] = run.predict((signal[start:start + LENGTH], 22050))
        assert row["probabilities"] == pytest.approx(w["probabilities"], abs=1e-6)


def test_predict_says_what_it_scored_of_a_long_file(run, long_file, tmp_path, capsys):
    [row] = run.predict(long_file)
    assert row["duration_seconds"] == pytest.approx(60) and row["scored_seconds"] == pytest.approx(1.486, abs=1e-3)
    assert "only the middle 1.49 s of its 60.00 s were scored" in row["notice"] and "--timeline" in row["notice"]
    short = str(tmp_path / "one.wav")
    sf.write(short, synthetic_corpus.utterance("sad", np.random.default_rng(5), seconds=1.2), 22050)
    [alone] = run.predict(short)
    assert "notice" not in alone and alone["scored_seconds"] == alone["duration_seconds"] == pytest.approx(1.2)
    table = str(tmp_path / "p.csv")
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", long_file, "--output", table]) == 0
    out = capsys.readouterr().out
    assert out.count("only the middle 1.49 s of its 60.00 s were scored") == 1
    with open(table, newline="") as f:
        [written] = list(csv.DictReader(f))
    assert float(written["duration_seconds"]) == pytest.approx(60) and float(written["scored_seconds"]) < 1.5
    assert written["notice"] == row["notice"]
    as_json = str(tmp_path / "p.json")
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", long_file, "--output", as_json]) == 0
    with open(as_json) as f:
        assert json.load(f)[0]["notice"] == row["notice"]


def test_the_command_writes_the_table_and_the_picture(run, long_file, result, tmp_path, monkeypatch, capsys):
    table = str(tmp_path / "out" / "t.csv")
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", long_file, "--timeline",
                 "--output", table]) == 0
    out = capsys.readouterr().out
    assert "long.wav: 60.00 s" in out and "skipped as silence" in out and f"wrote {table}.png" in out
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result["windows"]) and list(rows[0])[:4] == ["start_s", "end_s", "voiced", "label"]
    assert [r["voiced"] for r in rows] == ["yes" if w["voiced"] else "no" for w in result["windows"]]
    assert all(r["label"] == "" and r["sad"] == "" for r in rows if r["voiced"] == "no")
    assert [r["label"] for r in rows if r["label"]] == [w["label"] for w in result["windows"] if w["voiced"]]
    picture = open(table + ".png", "rb").read()
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    # the JSON of the same stem, of another timeline, keeps its own picture: it replaced the CSV's t.png before
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", long_file, "--timeline", "--hop", "1",
                 "--output", table[:-4] + ".json"]) == 0
    assert f"wrote {table[:-4]}.json.png" in capsys.readouterr().out
    assert open(table + ".png", "rb").read() == picture and os.path.isfile(table[:-4] + ".json.png")
    monkeypatch.chdir(tmp_path)  # without --output: <stem>_timeline.csv/.png in the current folder
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", long_file, "--timeline", "--hop", "1"]) == 0
    assert "wrote long_timeline.csv\nwrote long_timeline.png" in capsys.readouterr().out
    with open(tmp_path / "long_timeline.csv", newline="") as f:
        starts = [float(r["start_s"]) for r in csv.DictReader(f)]
    assert starts[1] - starts[0] == pytest.approx(1.0, abs=1e-3)
    assert os.path.isfile(tmp_path / "long_timeline.png")


def test_the_onnx_model_and_its_sidecar_reproduce_the_timeline(run, long_file, result, tmp_path):
    """Only the sidecar's recipe, librosa and ONNX Runtime: the windows, the silence rule and the scores."""
    import onnxruntime
    path = str(tmp_path / "model.onnx")
    run.export(path, "onnx")
    with open(path + ".json") as f:
        sidecar = json.load(f)
    recipe, vad = sidecar["timeline"], sidecar["timeline"]["vad"]
    signal, rate = librosa.load(long_file, sr=sidecar["sample_rate"])
    n, size, frame = len(signal), recipe["window_samples"], vad["frame_samples"]
    starts = list(range(0, n - size + 1, recipe["default_hop_samples"]))
    if starts[-1] + size < n:
        starts.append(n - size)
    with np.errstate(divide="ignore"):
        levels = np.array([10 * np.log10(np.mean(signal[j:j + frame].astype(np.float64) ** 2))
                           for j in range(0, n, frame)])
    frames = (levels >= levels.max() + vad["threshold_db"]) & (levels.max() >= vad["silent_dbfs"])
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert len(starts) == len(result["windows"])
    for start, window in zip(starts, result["windows"]):
        inside = frames[-(-start // frame):-(-(start + size) // frame)]
        assert window["voiced"] == (inside.mean() >= vad["min_voiced_fraction"])
        if window["voiced"]:
            x = librosa.feature.mfcc(y=signal[start:start + size], sr=rate,
                                     n_mfcc=sidecar["features"]["n_mfcc"]).T[None]
            [probabilities] = session.run([sidecar["output"]["name"]], {sidecar["input"]["name"]: x})[0]
            np.testing.assert_allclose(probabilities, [window["probabilities"][c] for c in sidecar["classes"]],
                                       atol=1e-5, rtol=0)


def test_bad_input_is_one_line(run, long_file, tmp_path, capsys):
    def refused(*flags) -> str:
        assert main(["--mode", "predict", "--test_path", run.folder, *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        return err
    assert "--hop 2: longer than the model's 1.49 s window" in refused("--wav", long_file, "--timeline", "--hop", "2")
    assert "--hop 0: must be positive" in refused("--wav", long_file, "--timeline", "--hop", "0")
    # 10 000 windows a second of audio, scored with no progress shown, before
    assert "--hop 0.0001: shorter than one 23 ms frame of the energy rule; give at least 0.024" in refused(
        "--wav", long_file, "--timeline", "--hop", "0.0001")
    assert "--hop 1: spaces the windows of --timeline" in refused("--wav", long_file, "--hop", "1")
    silent = str(tmp_path / "silent.wav")
    sf.write(silent, np.zeros(5 * 22050, np.float32), 22050)
    assert "silent.wav: all silence by the energy rule" in refused("--wav", silent, "--timeline")
    hum = str(tmp_path / "hum.wav")  # a faint hum, below -60 dBFS: silence too
    sf.write(hum, 1e-4 * np.sin(np.arange(5 * 22050) / 10).astype(np.float32), 22050)
    assert "hum.wav: all silence" in refused("--wav", hum, "--timeline")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert "empty.wav: the file is empty" in refused("--wav", str(empty), "--timeline")
    header_only = str(tmp_path / "header.wav")
    sf.write(header_only, np.zeros(0, np.float32), 22050)
    assert "header.wav: holds no audio samples" in refused("--wav", header_only, "--timeline")
    cut = str(tmp_path / "cut.wav")  # a copy that did not finish: half of the samples its header declares
    sf.write(cut, 0.1 * np.ones(3 * 22050, np.float32), 22050, subtype="PCM_16")
    os.truncate(cut, 44 + 3 * 22050)
    assert "cut.wav: cut short: its header declares 3.00 s of audio, the file holds 1.50 s" in refused(
        "--wav", cut, "--timeline")
    assert "not a folder" in refused("--wav", str(tmp_path), "--timeline")
    with pytest.raises(UserError, match="longer than the model's"):
        run.timeline(long_file, hop=1.5)


@pytest.mark.parametrize("content", [b"", None])
def test_a_file_is_refused_in_the_audio_modules_words(tmp_path, content):
    """An empty or cut-short file: what predict says of it (data/audio.check_audio_file), the timeline says too (it
    said "the file is empty (0 bytes); nothing to put on a timeline" in words of its own)."""
    from timnet_ser.data.audio import check_audio_file
    path = str(tmp_path / "a.wav")
    if content is None:  # a copy that did not finish: half of the samples its header declares
        sf.write(path, 0.1 * np.ones(22050, np.float32), 22050, subtype="PCM_16")
        os.truncate(path, 44 + 22050)
    else:
        open(path, "wb").write(content)
    said = []
    for check in (check_audio_file, timeline.checked_source):
        with pytest.raises(UserError) as refused:
            check(path)
        said.append(str(refused.value))
    assert said[0] == said[1]


def test_the_domain_shift_of_a_recording_is_measured_window_by_window(run, long_file, result, tmp_path, capsys):
    """The synthetic recording lies near the run's training statistics: no warning; the same recording through
    another channel (-20 dB, 300-1000 Hz, noise) is flagged with one line, and every window's own distance is a
    column of the table."""
    from timnet_ser.data.channel import Channel
    from timnet_ser.data.feature_statistics import window_threshold
    shift = result["domain_shift"]
    voiced = [w for w in result["windows"] if w["voiced"]]
    assert shift["windows"] == len(voiced) and shift["threshold"] == window_threshold(len(voiced))
    assert shift["distance"] < shift["threshold"] and shift["warning"] is None
    assert all(w["shift"] is not None for w in voiced)
    assert all(w["shift"] is None for w in result["windows"] if not w["voiced"])
    signal, _ = librosa.load(long_file, sr=22050)
    other = str(tmp_path / "other.wav")
    sf.write(other, Channel(gain_db=-20, high_hz=1000).apply(signal), 22050, subtype="FLOAT")
    table = str(tmp_path / "other.csv")
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", other, "--timeline",
                 "--output", table]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "this recording's" in warnings[0] and "voiced windows' MFCC statistics lie" in \
        warnings[0] and "from those of SYNTH, the training corpus" in warnings[0], err
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["start_s", "end_s", "voiced", "label", "domain_shift"]
    assert all(float(r["domain_shift"]) > 0 for r in rows if r["voiced"] == "yes")
    assert all(r["domain_shift"] == "" for r in rows if r["voiced"] == "no")
    flagged = run.timeline(other)["domain_shift"]
    assert flagged["distance"] > flagged["threshold"] and flagged["warning"] == warnings[0][len("warning: "):]


def test_a_short_or_cast_file_is_warned_of_as_predict_warns(run, result, tmp_path, capsys):
    """predict warned of a clip much shorter than the window, or of int16 PCM cast to float unscaled; the timeline
    of the same file scored it without a word (one padded window, or samples of thousands)."""
    assert result["warning"] is None  # the 60 s file: no warning
    assert all(type(w[key]) is float for w in result["windows"] for key in ("start", "end"))  # not np.float64
    assert all(type(t) is float for region in result["voiced_regions"] for t in region)
    utterance = synthetic_corpus.utterance("angry", np.random.default_rng(5))
    short = str(tmp_path / "short.wav")
    sf.write(short, utterance[:int(0.2 * synthetic_corpus.SAMPLE_RATE)], synthetic_corpus.SAMPLE_RATE)
    assert run.timeline(short)["warning"].startswith(short + ": 0.20 s, much shorter than the model's 1.49 s window")
    cast = (utterance / np.abs(utterance).max() * 32000).astype(np.float32)  # int16 values as floats
    warning = run.timeline((cast, synthetic_corpus.SAMPLE_RATE))["warning"]
    assert warning.startswith("<array>: samples reach 3") and "far beyond full scale" in warning
    biased = str(tmp_path / "biased.wav")  # read in blocks: the mean is the whole file's
    sf.write(biased, (utterance - utterance.mean()) * 0.5 - 0.03, synthetic_corpus.SAMPLE_RATE,
             subtype="FLOAT")
    assert run.timeline(biased)["warning"].startswith(biased + ": its samples' mean is -0.030 (full scale is 1): a constant (DC)")
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", short, "--timeline",
                 "--output", str(tmp_path / "short.json")]) == 0
    assert "warning: " + short + ": 0.20 s, much shorter" in capsys.readouterr().err
    with open(tmp_path / "short.json") as f:
        assert "much shorter" in json.load(f)["warning"]


def test_the_timeline_of_a_training_clip_says_so_as_predict_does(run, tmp_path, capsys):
    """predict said that 9 of 10 fold models trained on such a clip; its timeline gave the same numbers unsaid."""
    from timnet_ser.data.audio import centre
    clip = str(tmp_path / "train.wav")  # the window training read of its first utterance: one window here too
    sf.write(clip, centre(synthetic_corpus.utterance(CLASSES[0], np.random.default_rng([0, 0, 0])), LENGTH),
             synthetic_corpus.SAMPLE_RATE, subtype="FLOAT")
    [row] = run.predict(clip)
    result = run.timeline(clip)
    assert row["training_corpus"] and result["training_corpus"] == row["training_corpus"]
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", clip, "--timeline", "--output",
                 str(tmp_path / "t.csv")]) == 0
    assert "in the run's training corpus: 1 of 2 fold models trained on it, so this is no held-out score" in \
        capsys.readouterr().out


def test_a_users_odd_audio_is_said_so_on_the_console_and_in_the_rows(run, tmp_path, capsys):
    """What a probe of a user's audio found: a file of a constant offset was voice to the silence rule (scored
    "disgust 0.417"), a float file's NaN was silence "at nan dBFS" on a timeline, a folder's .m4a files were passed
    over without a word, a file's name could rewrite the console (an escape sequence), and a file one sample longer
    than the window was "the middle 2.00 s of its 2.00 s"."""
    rate = synthetic_corpus.SAMPLE_RATE
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "offset.wav", np.full(3 * rate, 0.01, np.float32), rate, subtype="FLOAT")
    utterance = synthetic_corpus.utterance("angry", np.random.default_rng(5))
    sf.write(folder / "esc\x1b[31mred.wav", utterance, rate)
    for name in ("a.m4a", "b.m4a", "notes.txt"):
        (folder / name).write_bytes(b"x")
    for part in ("a", "b"):  # two files of one name in two folders: named by their paths in the folder
        (folder / part).mkdir()
        sf.write(folder / part / "x.wav", utterance, rate)
    assert main(["--mode", "predict", "--test_path", run.folder, "--wav", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert f"note: --wav {folder}: 3 file(s) not read, their names not those of audio files (.m4a x2, .txt)" in out
    assert f"warning: {folder / 'offset.wav'}: no signal but a constant (DC) offset of +0.010" in err
    assert "esc\\x1b[31mred.wav: " in out and "\x1b" not in out + err
    assert f"\n{os.path.join('a', 'x.wav')}: " in out and f"\n{os.path.join('b', 'x.wav')}: " in out
    with pytest.raises(UserError, match=r"offset.wav: all silence by the energy rule \(digital silence, but a "
                                        r"constant \(DC\) offset of \+0.010;"):
        run.timeline(str(folder / "offset.wav"))
    broken = utterance.astype(np.float32)
    broken[len(broken) // 2] = np.nan
    sf.write(tmp_path / "nan.wav", broken, rate, subtype="FLOAT")
    with pytest.raises(UserError, match=r"nan.wav: holds samples that are NaN or Inf"):
        run.timeline(str(tmp_path / "nan.wav"))
    length = run.signal_length
    assert "notice" not in timeline.scored_span((length + 1) / rate, length)  # "the middle 1.49 s of its 1.49 s"
    assert timeline.scored_span(2.5, length)["notice"].startswith("only the middle 1.49 s of its 2.50 s")


def test_a_short_clip_with_an_offset_is_warned_of_as_short():
    """The offset check came first and took a short clip's "much shorter than the window" warning."""
    from timnet_ser.deploy.input_checks import signal_warning
    short = signal_warning("x.wav", 0.2, 2 * 22050, offset=0.02)
    assert short.startswith("x.wav: 0.20 s, much shorter than the model's 2.00 s window")
    assert signal_warning("x.wav", 2.0, 2 * 22050, offset=-0.02).startswith("x.wav: its samples' mean is -0.020")
