"""MFCC extraction against the reference features, file layouts, and feature files read without running code."""

import os
import pickle

import numpy as np
import pytest
import soundfile as sf

from timnet_ser.core.errors import UserError
from timnet_ser.data import audio, corpora, corpus_files, extraction, feature_files, features

EMODB = corpora.get_corpus("EMODB")
SYNTH = corpora.get_corpus("SYNTH")


def write_wav(path, seconds=0.5, rate=22050, channels=1, subtype="PCM_16", value=0.1):
    """A sine at 220 Hz; folders are created."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = int(seconds * rate)
    signal = value * np.sin(2 * np.pi * 220 * np.arange(n) / rate)
    sf.write(path, np.stack([signal] * channels, axis=1) if channels > 1 else signal, rate, subtype=subtype)
    return path


def one_line_error(excinfo, *fragments):
    """The UserError's message is one line and holds every fragment."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --- golden: the authors' pipeline on the shared 2-second EMODB ---------------------------------------

def test_emodb_2s_reproduces_the_reference_features(shared):
    data = extraction.extract_corpus(os.path.join(shared, "data", "emodb_2s"), EMODB, workers=2, progress=False)
    reference = np.load(os.path.join(shared, "reference", "EMODB_2s.npy"), allow_pickle=True).item()
    with open(os.path.join(shared, "reference", "EMODB_2s_order.txt")) as f:
        order = f.read().split()
    assert list(data["files"]) == order  # class order, then natural file name: the fold split depends on it
    np.testing.assert_array_equal(data["y"], reference["y"])
    assert data["x"].dtype == np.float32 and data["x"].shape == reference["x"].shape == (535, 188, 39)
    scale = np.abs(reference["x"]).max()
    worst = float(np.abs(data["x"] - reference["x"]).max())
    assert worst <= 1e-3 * scale, f"max |difference| {worst:.3g} vs reference scale {scale:.3g}"
    np.testing.assert_allclose(data["x"], reference["x"], rtol=1e-3, atol=1e-3,
                               err_msg=f"max |difference| {worst:.3g}")
    assert set(data["speakers"]) == {"03", "08", "09", "10", "11", "12", "13", "14", "15", "16"}
    assert list(data["classes"]) == list(EMODB.classes) and data["signal_length"] == 96000


# --- one file: decoding and centring --------------------------------------------------------------------

@pytest.mark.parametrize("samples, length", [(1000, 1301), (1000, 1302), (1301, 1000), (1302, 1000)])
def test_centring_pads_and_crops_as_the_original(tmp_path, samples, length):
    signal = np.arange(1, samples + 1, dtype="float32") / samples / 2  # every sample distinct and non-zero
    path = str(tmp_path / "a.wav")
    sf.write(path, signal, 22050, subtype="FLOAT")
    out = audio.load_centered(path, length)
    assert out.shape == (length,) and out.dtype == np.float32
    if samples < length:
        left = (length - samples) // 2  # floor on the left, the rest on the right
        assert np.all(out[:left] == 0) and np.all(out[left + samples:] == 0)
        np.testing.assert_array_equal(out[left:left + samples], signal)
    else:
        start = (samples - length) // 2
        np.testing.assert_array_equal(out, signal[start:start + length])


def test_mfcc_is_librosa_at_its_defaults():
    import librosa
    signal = np.random.default_rng(0).normal(0, 0.1, 22050).astype("float32")
    mfccs = features.mfcc(signal)
    assert mfccs.shape == (1 + 22050 // 512, 39) and mfccs.dtype == np.float32
    np.testing.assert_array_equal(mfccs, librosa.feature.mfcc(y=signal, sr=22050, n_mfcc=39).T)


@pytest.mark.parametrize("rate, channels, subtype", [(8000, 2, "PCM_U8"), (96000, 1, "PCM_24"), (22050, 2, "PCM_16")])
def test_other_rates_widths_and_stereo_work(tmp_path, rate, channels, subtype):
    path = write_wav(str(tmp_path / "x.wav"), rate=rate, channels=channels, subtype=subtype)
    assert len(audio.load_centered(path, 30000)) == 30000
    mfccs = features.extract_file(path, 22050)
    assert mfccs.shape == (1 + 22050 // 512, 39) and np.isfinite(mfccs).all()


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot be decoded as audio"),
    (b"this is not audio at all" * 20, "cannot be decoded as audio (Format not recognised"),
])
def test_undecodable_files_are_named(tmp_path, content, reason):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(UserError) as excinfo:
        audio.load_centered(str(path), 1000)
    one_line_error(excinfo, f"{path}: ", reason)


@pytest.mark.parametrize("rate", [22050, 16000])  # read as it is, or resampled: librosa checks either way
def test_a_float_file_holding_nan_or_inf_is_named(tmp_path, rate):
    import soundfile
    samples = np.sin(np.arange(rate) / 10).astype("float32")
    samples[100] = np.nan
    path = str(tmp_path / "nan.wav")
    soundfile.write(path, samples, rate, subtype="FLOAT")
    with pytest.raises(UserError) as excinfo:
        audio.load_centered(path, 1000)
    one_line_error(excinfo, f"{path}: holds samples that are NaN or Inf")


def test_missing_audio_file_is_named(tmp_path):
    with pytest.raises(UserError) as excinfo:
        features.extract_file(str(tmp_path / "gone.wav"), 1000)
    one_line_error(excinfo, "gone.wav: no such audio file")


# --- which files, in which order ------------------------------------------------------------------------

def test_class_folder_layout_in_class_then_natural_order(tmp_path):
    for label in SYNTH.classes:
        for name in ("u10.wav", "u2.WAV", "u1.wav"):
            write_wav(str(tmp_path / label / name), seconds=0.05)
        (tmp_path / label / "notes.txt").write_text("not audio")
        (tmp_path / label / "._u3.wav").write_bytes(b"macOS resource fork")  # hidden: skipped
    items = corpus_files.list_corpus_files(str(tmp_path), SYNTH)
    assert [(os.path.basename(p), label, speaker) for p, label, speaker in items[:3]] == [
        ("u1.wav", "angry", ""), ("u2.WAV", "angry", ""), ("u10.wav", "angry", "")]
    assert [label for _, label, _ in items[::3]] == list(SYNTH.classes) and len(items) == 12


def test_emodb_names_give_label_and_speaker(tmp_path):
    for name in ("03a01Wa.wav", "10b02Tc.wav", "03a02Wb.wav", "08a01Lb.wav", "09a01Ea.wav", "11a01Aa.wav",
                 "12a01Fa.wav", "13a01Na.wav", "16a01Xa.wav", "readme.wav"):
        write_wav(str(tmp_path / name), seconds=0.05)
    (tmp_path / "notes.txt").write_text("not audio")
    items = corpus_files.list_corpus_files(str(tmp_path), EMODB)
    assert [(os.path.basename(p), label, speaker) for p, label, speaker in items][:3] == [
        ("03a01Wa.wav", "angry", "03"), ("03a02Wb.wav", "angry", "03"), ("08a01Lb.wav", "boredom", "08")]
    assert items[-1][1:] == ("sad", "10") and len(items) == 8  # unknown letter X and other names skipped


def test_ravdess_actor_folders_are_searched(tmp_path):
    corpus = corpora.get_corpus("RAVDE")
    codes = {"angry": "05", "calm": "02", "disgust": "07", "fear": "06", "happy": "03", "neutral": "01",
             "sad": "04", "surprise": "08"}
    for actor in ("02", "10"):
        for _label, code in codes.items():
            write_wav(str(tmp_path / f"Actor_{actor}" / f"03-01-{code}-01-01-01-{actor}.wav"), seconds=0.05)
    write_wav(str(tmp_path / "Actor_02" / "03-01-09-01-01-01-02.wav"), seconds=0.05)  # no such emotion: skipped
    items = corpus_files.list_corpus_files(str(tmp_path), corpus)
    assert [(label, speaker) for _, label, speaker in items[:2]] == [("angry", "02"), ("angry", "10")]
    assert len(items) == 16 and items[-1][1:] == ("surprise", "10")


def test_equal_names_in_different_folders_have_a_fixed_order(tmp_path):
    corpus = corpora.get_corpus("SAVEE")
    prefixes = ("a", "d", "f", "h", "n", "sa", "su")
    for speaker in ("KL", "DC", "JE"):  # created out of order on purpose
        for prefix in prefixes:
            write_wav(str(tmp_path / speaker / f"{prefix}01.wav"), seconds=0.05)
    items = corpus_files.list_corpus_files(str(tmp_path), corpus)
    assert [(label, speaker) for _, label, speaker in items[:3]] == [("angry", "DC"), ("angry", "JE"),
                                                                     ("angry", "KL")]


def test_empty_class_folder_is_named(tmp_path):
    for label in SYNTH.classes:
        os.makedirs(tmp_path / label)
        if label != "sad":
            write_wav(str(tmp_path / label / "a.wav"), seconds=0.05)
    with pytest.raises(UserError) as excinfo:
        corpus_files.list_corpus_files(str(tmp_path), SYNTH)
    one_line_error(excinfo, f"{tmp_path / 'sad'}: no wav files for class 'sad'")


def test_a_class_without_files_in_the_corpus_naming_is_named(tmp_path):
    for name in ("03a01Wa.wav", "08a01Lb.wav"):
        write_wav(str(tmp_path / name), seconds=0.05)
    with pytest.raises(UserError) as excinfo:
        corpus_files.list_corpus_files(str(tmp_path), EMODB)
    one_line_error(excinfo, str(tmp_path), "disgust, fear, happy, neutral, sad of EMODB")


@pytest.mark.parametrize("make", ["empty", "no wav", "missing"])
def test_folder_without_usable_wav_files_is_named(tmp_path, make):
    folder = tmp_path / "corpus"
    if make != "missing":
        folder.mkdir()
    if make == "no wav":
        (folder / "a.mp3").write_bytes(b"x")
    with pytest.raises(UserError) as excinfo:
        corpus_files.list_corpus_files(str(folder), EMODB)
    one_line_error(excinfo, f"{folder}: ")


# --- a whole corpus, in parallel ------------------------------------------------------------------------

def test_extraction_in_processes_equals_in_process(tmp_path):
    for label in SYNTH.classes:
        for i in range(3):
            write_wav(str(tmp_path / label / f"{label}_{i}.wav"), seconds=0.2 + 0.4 * i, value=0.05 * (i + 1))
    serial = extraction.extract_corpus(str(tmp_path), SYNTH, workers=1, progress=False)
    parallel = extraction.extract_corpus(str(tmp_path), SYNTH, workers=2, progress=False)
    np.testing.assert_array_equal(serial["x"], parallel["x"])
    assert serial["x"].shape == (12, SYNTH.frames, 39) and serial["y"].shape == (12, 4)
    assert list(serial["files"][:2]) == [os.path.join("angry", "angry_0.wav"), os.path.join("angry", "angry_1.wav")]


def test_a_broken_file_stops_the_pool_and_is_named(tmp_path):
    for label in SYNTH.classes:
        for i in range(4):
            write_wav(str(tmp_path / label / f"{i}.wav"), seconds=0.1)
    (tmp_path / "happy" / "2.wav").write_bytes(b"not audio" * 50)
    with pytest.raises(UserError) as excinfo:
        extraction.extract_corpus(str(tmp_path), SYNTH, workers=2, progress=False)
    one_line_error(excinfo, f"{tmp_path / 'happy' / '2.wav'}: cannot be decoded as audio")


def test_progress_bar_on_stderr(tmp_path, capsys):
    for label in SYNTH.classes:
        write_wav(str(tmp_path / label / "a.wav"), seconds=0.1)
    extraction.extract_corpus(str(tmp_path), SYNTH, workers=1)
    err = capsys.readouterr().err
    assert "extract SYNTH: 4/4 files [####################] 100%" in err
    assert "extract SYNTH: 2/4 files [##########..........] 50%" in err


# --- feature files --------------------------------------------------------------------------------------

def test_feature_file_round_trip_keeps_the_authors_format(tmp_path):
    for label in SYNTH.classes:
        write_wav(str(tmp_path / "wav" / label / "a.wav"), seconds=0.3)
    data = extraction.extract_corpus(str(tmp_path / "wav"), SYNTH, workers=1, progress=False)
    path = str(tmp_path / "SYNTH.npy")
    feature_files.save_features(path, data)
    feature_files.save_features(path, data)  # replacing an existing file works too
    assert sorted(os.listdir(tmp_path)) == ["SYNTH.npy", "wav"]  # no temporary file left behind
    theirs = np.load(path, allow_pickle=True).item()  # how the original reads it
    ours = feature_files.load_features(path)
    assert set(ours) == {"x", "y", "files", "speakers", "classes", "signal_length", "features"}
    assert ours["features"] == theirs["features"] == "mfcc"
    for key in ("x", "y", "files", "speakers", "classes"):
        np.testing.assert_array_equal(theirs[key], data[key])
        np.testing.assert_array_equal(ours[key], data[key])
    assert ours["x"].dtype == ours["y"].dtype == np.float32
    assert list(ours["files"]) == [os.path.join(c, "a.wav") for c in SYNTH.classes]
    assert list(ours["speakers"]) == [""] * 4
    assert list(ours["classes"]) == list(SYNTH.classes)
    assert isinstance(ours["signal_length"], np.int64) and ours["signal_length"] == SYNTH.signal_length
    x, y = feature_files.validate_features(ours, path, SYNTH)
    assert x.shape == (4, SYNTH.frames, 39) and y.shape == (4, 4)


def test_reference_file_loads_safely(shared):
    path = os.path.join(shared, "reference", "EMODB_2s.npy")
    x, y = feature_files.validate_features(feature_files.load_features(path), path, EMODB)
    assert x.shape == (535, 188, 39) and y.shape == (535, 7) and x.dtype == y.dtype == np.float32


class OpenPayload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class SystemPayload(OpenPayload):
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload, callable_name", [(OpenPayload, "io.open"), (SystemPayload, "system")])
def test_a_malicious_feature_file_is_refused_and_runs_nothing(tmp_path, payload, callable_name):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, {"x": np.zeros((2, 3, 39), "float32"), "y": payload(str(marker))}, allow_pickle=True)
    with pytest.raises(UserError) as excinfo:
        feature_files.load_features(str(path))
    one_line_error(excinfo, f"{path}: refused to load: the file asks to run ", callable_name)
    assert not marker.exists()
    with open(path, "rb") as f:  # the payload really is in the file: it was refused, not lost
        assert callable_name.split(".")[-1].encode() in f.read()


def test_not_a_dict_not_npy_and_missing(tmp_path, monkeypatch):
    array_file = tmp_path / "array.npy"
    np.save(array_file, np.zeros(3))
    with pytest.raises(UserError, match="array.npy: holds a ndarray"):
        feature_files.load_features(str(array_file))
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"x": 1}, {"y": 2}]), allow_pickle=True)
    with pytest.raises(UserError, match="objects.npy: holds a ndarray"):
        feature_files.load_features(str(objects))
    text = tmp_path / "text.npy"
    text.write_text("hello")
    with pytest.raises(UserError, match="text.npy: not a readable .npy"):
        feature_files.load_features(str(text))
    cut = tmp_path / "cut.npy"
    np.save(cut, {"x": np.zeros((5, 10, 39), "float32")}, allow_pickle=True)
    cut.write_bytes(cut.read_bytes()[:300])
    with pytest.raises(UserError, match="cut.npy: not a readable .npy"):
        feature_files.load_features(str(cut))
    with pytest.raises(UserError) as excinfo:
        feature_files.load_features(str(tmp_path / "none.npy"), data_key="EMODB")
    # a file elsewhere than the default, or of log-Mel segments: the command names them (without, it wrote
    # MFCC/EMODB.npy, and the same error came back)
    one_line_error(excinfo, "none.npy: feature file not found; make it with: python main.py --mode extract "
                            f"--data EMODB --feature_path {tmp_path / 'none.npy'} --wav_path <folder>")
    monkeypatch.chdir(tmp_path)  # the default files, MFCC/EMODB*.npy, are not there
    with pytest.raises(UserError) as excinfo:
        feature_files.load_features(os.path.join("MFCC", "EMODB_logmel3.npy"), data_key="EMODB", kind="logmel3")
    one_line_error(excinfo, "make it with: python main.py --mode extract --data EMODB --features logmel3 "
                            "--wav_path <folder>")
    monkeypatch.setattr("sys.argv", ["/home/user/.venv/bin/timnet-ser", "--mode", "train"])  # the installed command
    with pytest.raises(UserError, match="make it with: timnet-ser --mode extract --data EMODB --wav_path <folder>"):
        feature_files.load_features(os.path.join("MFCC", "EMODB.npy"), data_key="EMODB")


def good():
    return {"x": np.zeros((4, 10, 39), "float32"), "y": np.eye(7, dtype="float32")[[0, 1, 2, 3]]}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("y"), "missing key(s) y"),
    (lambda d: d.update(x=[[0.0] * 39]), "x is a list, not a numpy array"),
    (lambda d: d.update(x=np.zeros((4, 39), "float32")), "expected (N, T, 39)"),
    (lambda d: d.update(x=np.zeros((4, 10, 20), "float32")), "expected (N, T, 39)"),
    (lambda d: d.update(x=np.zeros((4, 10, 39), "int32")), "x has dtype int32, expected float32"),
    (lambda d: d.update(y=np.eye(7, dtype="int64")[[0, 1, 2, 3]]), "y has dtype int64, expected float32"),
    (lambda d: d.update(y=np.zeros(4, "float32")), "y has shape (4,), expected one-hot"),
    (lambda d: d.update(y=np.eye(6, dtype="float32")[[0, 1, 2, 3]]), "y has 6 classes, --data EMODB has 7"),
    (lambda d: d.update(y=np.eye(7, dtype="float32")[[0, 1, 2]]), "x has 4 rows but y has 3"),
    (lambda d: d["x"].__setitem__((1, 2, 3), np.nan), "1 row(s) of x hold NaN or Inf"),
    (lambda d: d["x"].__setitem__((slice(0, 2), 0, 0), np.inf), "2 row(s) of x hold NaN or Inf"),
    (lambda d: d["y"].__setitem__((0, 1), 1.0), "y is not one-hot"),
])
def test_bad_feature_contents_are_named(change, message):
    data = good()
    change(data)
    with pytest.raises(UserError) as excinfo:
        feature_files.validate_features(data, "bad.npy", EMODB)
    one_line_error(excinfo, "bad.npy: ", message)


def test_validate_refuses_a_non_dict_and_casts_float64():
    with pytest.raises(UserError) as excinfo:
        feature_files.validate_features([1, 2], "list.npy", EMODB)
    one_line_error(excinfo, "list.npy: holds a list")
    data = {key: value.astype("float64") for key, value in good().items()}
    x, y = feature_files.validate_features(data, "f64.npy", EMODB)
    assert x.dtype == y.dtype == np.float32 and x.shape == (4, 10, 39)


def test_signature_matches_is_the_tolerance_test_on_every_pair_and_a_near_miss_is_another_utterance():
    """The sorted search finds exactly the pairs that the criterion (every coefficient within SEEN_TOLERANCE) holds
    for, boundary included: on a grid of 0.025 steps many pairs differ by exactly the tolerance."""
    rng = np.random.default_rng(0)
    known = (rng.integers(0, 12, (300, 3)) * 0.025).astype(np.float32)
    queries = np.concatenate([known[:40], (rng.integers(0, 12, (60, 3)) * 0.025 + 0.0125).astype(np.float32)])
    brute = [np.flatnonzero(np.abs(known - q).max(axis=1) <= features.SEEN_TOLERANCE) for q in queries]
    matches = features.signature_matches(queries, known)
    assert all(np.array_equal(m, b) for m, b in zip(matches, brute)) and sum(map(len, brute)) > 100
    signatures = np.random.default_rng(1).normal(0, 3, (50, 39)).astype(np.float32)
    near = signatures[[7, 7, 7, 20]].copy()
    near[0, 5] += 0.049  # within the tolerance: the same audio
    near[1, 0] += 0.051  # just above it in the first coefficient (the one sorted on): another utterance
    near[2, 30] -= 0.051  # just above it in another coefficient
    near[3] = signatures[20]
    signatures[33] = signatures[20]  # the same audio twice: both rows, ascending
    assert [m.tolist() for m in features.signature_matches(near, signatures)] == [[7], [], [], [20, 33]]
    assert [len(m) for m in features.signature_matches(near, signatures[:0])] == [0, 0, 0, 0]


# --- what a dataset's layout gives, and what it leaves out (a newcomer's probe found each wrong or unsaid) -----

def test_a_manifest_is_read_by_the_names_of_its_columns(tmp_path):
    """``path,speaker,label`` was read by position: the speakers became the classes."""
    for name in ("a.wav", "b.wav"):
        write_wav(str(tmp_path / name), seconds=0.05)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,speaker,label\na.wav,s1,angry\nb.wav,s2,sad\n")
    assert [row[1:] for row in corpus_files.read_manifest(str(manifest))] == [("angry", "s1"), ("sad", "s2")]
    assert corpus_files.dataset_classes(str(manifest)) == ("angry", "sad")
    manifest.write_text("label,path\nangry,a.wav\nsad,b.wav\n")
    assert [row[1:] for row in corpus_files.read_manifest(str(manifest))] == [("angry", ""), ("sad", "")]
    for header, message in [("path,emotion\n", "line 1 names the columns 'path,emotion'; a manifest's are path, "
                                               "label and optionally speaker, each once"),
                            ("path,label,label\n", "line 1 names the columns 'path,label,label'")]:
        manifest.write_text(header + "a.wav,angry\n")
        with pytest.raises(UserError) as excinfo:
            corpus_files.read_manifest(str(manifest))
        one_line_error(excinfo, f"{manifest}: {message}")
    manifest.write_text("path,label\na.wav,angry,s1\n")  # a third cell the header does not name
    with pytest.raises(UserError) as excinfo:
        corpus_files.read_manifest(str(manifest))
    one_line_error(excinfo, "line 2 is not 'path,label': 'a.wav,angry,s1'")
    (tmp_path / "sub").mkdir()
    manifest.write_text("sub,angry\nnone.wav,sad\n")  # a folder ("does not exist" before)
    with pytest.raises(UserError) as excinfo:
        corpus_files.read_manifest(str(manifest))
    one_line_error(excinfo, "line 1 names 'sub', a folder; a manifest lists one audio file a line")
    manifest.write_text("a.wav,angry\nnone.wav,sad\n")
    with pytest.raises(UserError) as excinfo:
        corpus_files.read_manifest(str(manifest))
    one_line_error(excinfo, f"line 2 names 'none.wav', which does not exist (a relative path is read from the "
                            f"manifest's folder, {tmp_path})")


def test_a_class_folder_or_the_datasets_folder_is_no_speaker(tmp_path):
    """SAVEE's angry/a01.wav gave the speaker 'angry' (and --cv speaker held out whole classes, WAR 0 %); CASIA's
    <dataset>/angry/201.wav gave the dataset's folder as every file's speaker."""
    savee, casia = corpora.get_corpus("SAVEE"), corpora.get_corpus("CASIA")
    prefixes = {"angry": "a", "disgust": "d", "fear": "f", "happy": "h", "neutral": "n", "sad": "sa", "surprise": "su"}
    for label, prefix in prefixes.items():
        write_wav(str(tmp_path / "savee" / label / f"{prefix}01.wav"), seconds=0.05)
        write_wav(str(tmp_path / "savee" / label / f"DC_{prefix}02.wav"), seconds=0.05)  # the name gives DC
        write_wav(str(tmp_path / "savee" / label / "JE" / f"{prefix}03.wav"), seconds=0.05)  # a folder below
    speakers = {os.path.relpath(p, tmp_path / "savee"): s
                for p, _, s in corpus_files.list_corpus_files(str(tmp_path / "savee"), savee)}
    assert speakers["angry/a01.wav"] == "" and speakers["angry/DC_a02.wav"] == "DC"
    assert speakers["angry/JE/a03.wav"] == "JE"
    for label in casia.classes:
        write_wav(str(tmp_path / "casia" / label / "201.wav"), seconds=0.05)
    assert {s for _, _, s in corpus_files.list_corpus_files(str(tmp_path / "casia"), casia)} == {""}


def test_a_manifest_of_a_known_corpus_takes_the_speakers_of_its_file_names(tmp_path):
    for name in ("03a01Wa.wav", "10a01Tc.wav"):
        write_wav(str(tmp_path / "audio" / name), seconds=0.05)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,speaker\naudio/03a01Wa.wav,angry,\naudio/10a01Tc.wav,sad,x9\n")
    rows = corpus_files._manifest_items(str(manifest), EMODB)
    assert [speaker for _, _, speaker in rows] == ["03", "x9"]  # the column wins where it says one


def test_labels_sort_the_same_whatever_order_they_come_in_and_case_twins_are_refused(tmp_path):
    for order in (["1", "01", "b"], ["b", "01", "1"]):
        assert sorted(order, key=corpora.natural_key) == ["01", "1", "b"]  # '1' and '01' followed the hash order
    for label in ("Angry", "angry", "sad"):
        write_wav(str(tmp_path / label / "a.wav"), seconds=0.05)
    with pytest.raises(UserError) as excinfo:
        corpus_files.dataset_classes(str(tmp_path))
    one_line_error(excinfo, f"{tmp_path}: the labels 'Angry' and 'angry' differ in case only; name the class one way")


def test_audio_the_layout_leaves_out_is_said(tmp_path, capsys):
    for k, label in enumerate(SYNTH.classes):
        write_wav(str(tmp_path / "folders" / label / "a.wav"), seconds=0.05, value=0.01 * (1 + k))
    write_wav(str(tmp_path / "folders" / "loose.wav"), seconds=0.05)
    corpus_files.list_corpus_files(str(tmp_path / "folders"), SYNTH)
    assert capsys.readouterr().err == (f"warning: 1 audio file(s) below {tmp_path / 'folders'} lie outside its class "
                                       "folders (angry, happy, neutral, sad), so they are left out: loose.wav\n")
    for name in ("03a01Wa.wav", "08a01Lb.wav", "09a01Ea.wav", "11a01Aa.wav", "12a01Fa.wav", "13a01Na.wav",
                 "10b02Tc.wav", "notes.wav"):
        write_wav(str(tmp_path / "named" / name), seconds=0.05)
    corpus_files.list_corpus_files(str(tmp_path / "named"), EMODB)
    assert capsys.readouterr().err == (f"warning: 1 audio file(s) below {tmp_path / 'named'} are not named like EMODB "
                                       "files (no class of theirs in the name), so they are left out: notes.wav\n")


def test_copies_are_warned_of_and_a_class_whose_files_were_all_skipped_is_refused(tmp_path, capsys):
    for k, label in enumerate(SYNTH.classes):
        for i in range(2):
            write_wav(str(tmp_path / label / f"{i}.wav"), seconds=0.1, value=0.01 * (1 + i + 3 * k))
    (tmp_path / "sad" / "copy.wav").write_bytes((tmp_path / "angry" / "0.wav").read_bytes())
    extraction.extract_corpus(str(tmp_path), SYNTH, 4096, workers=1, progress=False)
    assert capsys.readouterr().err == (
        f"warning: {tmp_path}: 1 row(s) hold the same features as another row, so one recording can be in a training "
        f"fold and a test fold at once, which inflates the figures: {tmp_path / 'sad' / 'copy.wav'} = "
        f"{tmp_path / 'angry' / '0.wav'}; remove the copies\n")
    for name in ("0.wav", "1.wav", "copy.wav"):
        (tmp_path / "sad" / name).write_bytes(b"")  # every file of 'sad' undecodable
    with pytest.raises(UserError) as excinfo:
        extraction.extract_corpus(str(tmp_path), SYNTH, 4096, workers=1, progress=False, skip_bad_files=True)
    one_line_error(excinfo, f"{tmp_path}: every file of class(es) sad could not be decoded")


def test_a_linked_folder_is_read_once_and_a_loop_ends(tmp_path):
    """A linked folder of recordings was skipped without a word; a link to a folder above must not loop."""
    write_wav(str(tmp_path / "real" / "03a01Wa.wav"), seconds=0.05)
    (tmp_path / "corpus").mkdir()
    write_wav(str(tmp_path / "corpus" / "08a01Lb.wav"), seconds=0.05)
    os.symlink(tmp_path / "real", tmp_path / "corpus" / "linked")
    os.symlink(tmp_path / "corpus", tmp_path / "corpus" / "loop")
    found = [os.path.relpath(p, tmp_path / "corpus") for p in audio.audio_files(str(tmp_path / "corpus"))]
    assert found == ["08a01Lb.wav", os.path.join("linked", "03a01Wa.wav")]


class _DeclaresAHugeArray:
    """Pickles as numpy's _reconstruct asked for a large shape, with no state: what np.save never writes."""

    def __reduce__(self):
        return np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, (20000, 188, 39), np.dtype("float32"))


def test_a_small_feature_file_that_would_allocate_gigabytes_is_refused(tmp_path):
    """A 378-byte pickle made numpy allocate its declared shape; lists nested in themselves (a kilobyte) grew to
    gigabytes when numpy counted their dimensions."""
    huge = str(tmp_path / "huge.npy")
    np.save(huge, {"x": _DeclaresAHugeArray(), "y": np.eye(3, dtype="float32")}, allow_pickle=True)
    with pytest.raises(UserError) as excinfo:
        feature_files.load_features(huge)
    one_line_error(excinfo, "refused to load: the file declares an array of shape (20000, 188, 39) it does not hold")
    nested = []
    for _ in range(40):
        nested = [nested, nested]
    x, y = np.zeros((2, 4, 39), "float32"), np.eye(2, dtype="float32")
    for key, value, message in [("files", nested, "files is not a list of names"),
                                ("classes", np.array(["a", "b\x1b[2Jc"]), "the class name 'b\\x1b[2Jc' holds a control"),
                                # a hand-made file's 'angry' and 'Angry' trained as two classes (extract refuses them)
                                ("classes", np.array(["angry", "Angry"]), "the class names 'angry' and 'Angry' are "
                                                                          "one name (written twice, or in another case)")]:
        path = str(tmp_path / f"{key}.npy")
        np.save(path, {"x": x, "y": y, key: value}, allow_pickle=True)
        with pytest.raises(UserError) as excinfo:
            feature_files.load_features(path)
        one_line_error(excinfo, message)


class _Pickled:
    """Pickles as ``function(*arguments)``, then ``state`` given to what it made (BUILD) where there is one: what a
    crafted file holds and np.save never writes."""

    def __init__(self, function, arguments, state=None):
        self.reduced = (function, arguments) if state is None else (function, arguments, state)

    def __reduce__(self):
        return self.reduced


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, as np.save's pickles name it


def _pickled_array(shape, dtype, values):
    """An array as np.save pickles one: ``_reconstruct`` makes it empty, its state gives shape, dtype and values."""
    return _Pickled(_RECONSTRUCT, (np.ndarray, (0,), np.dtype("b")), (1, shape, dtype, False, values))


def _crafted_feature_file(path, stored) -> str:
    """A .npy file holding the pickle of ``stored``, under the header np.save gives a pickled object."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(stored, f, protocol=3)
    return str(path)


def test_a_feature_file_whose_dtype_or_array_state_numpy_trusts_is_refused(tmp_path):
    """numpy takes a pickled dtype's state and an object array's list as given: a dtype that hid an object field
    behind its flags had the file's bytes read (or freed) as pointers, an object array given fewer values than its
    shape read past the list: a segmentation fault, exit 139 and no message. Run in a child process, as they crashed
    it."""
    from test_bad_input import main_py_in_a_child_process
    pointer = (0x41414141).to_bytes(8, "little")
    hidden_object = _Pickled(np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))
    unflagged_object = _Pickled(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0))
    x, y = np.zeros((1, 5, 39), "float32"), np.eye(7, dtype="float32")[:1]
    cases = [({"x": x, "y": y, "classes": _pickled_array((1,), hidden_object, pointer)},
              "gives a dtype (|V8) a state of its own (fields, a sub-array, flags or a datetime's unit), which no "
              "feature file's arrays have"),
             (_pickled_array((), unflagged_object, pointer),  # the 0-d array that holds the dict
              "gives a dtype (|O) a state of its own"),
             ({"x": x, "y": y, "files": _pickled_array((1000,), np.dtype("O"), [])},
              "declares an array of objects of shape (1000,) and does not hold one value for each")]
    for k, (stored, message) in enumerate(cases):
        path = _crafted_feature_file(tmp_path / f"crafted_{k}.npy", stored)
        error, printed = main_py_in_a_child_process(["--mode", "train", "--data", "EMODB", "--feature_path", path,
                                                     "--model_path", str(tmp_path / "M"),
                                                     "--result_path", str(tmp_path / "R")])
        assert error.startswith(f"error: {path}: refused to load: the file {message}") and "\n" not in error, error
        assert printed == ["2", "False", "False"]


def test_a_feature_file_of_records_objects_or_one_huge_element_is_refused(tmp_path):
    """One element of a dtype holding a 13,000,000 x 39 sub-array passed the count of elements, and numpy.ndarray
    called by the pickle itself passed no check: a 2 GB array from a few hundred bytes (the latter of memory never
    written); records, objects and raw bytes are no features."""
    x, y = np.zeros((2, 4, 39), "float32"), np.eye(2, dtype="float32")
    sub_array = ("float32", (13_000_000, 39))
    for k, (stored, message) in enumerate([
            ({"x": _Pickled(_RECONSTRUCT, (np.ndarray, (1,), sub_array)), "y": y},
             "refused to load: the file declares an array of shape (1, 13000000, 39) it does not hold"),
            ({"x": _Pickled(_RECONSTRUCT, (np.ndarray, (1,), np.dtype(sub_array)))},
             "refused to load: the file gives a dtype (|V2028000000) a state of its own"),
            ({"x": _Pickled(np.ndarray, ((13_000_000, 39), "float32")), "y": y},
             "not a readable .npy feature file (UnpicklingError: the file calls numpy.ndarray, which makes an array "
             "of any shape from nothing)"),
            ({"x": x, "y": y, "files": np.array(["a.wav", 2], dtype=object)},
             "refused to load: 'files' is an array of dtype |O, not of numbers or text"),
            ({"x": x, "y": y, "notes": np.zeros(2, "V4")},
             "refused to load: 'notes' is an array of dtype |V4, not of numbers or text")]):
        path = _crafted_feature_file(tmp_path / f"odd_{k}.npy", stored)
        with pytest.raises(UserError) as excinfo:
            feature_files.load_features(path)
        one_line_error(excinfo, f"{path}: {message}")


def test_names_as_an_array_of_python_strings_are_read_as_text(tmp_path):
    """pandas' ``.values`` of a column of names is an object array of str: loaded before the unpickler's checks, it
    was then refused with the objects a crafted file holds."""
    path = str(tmp_path / "names.npy")
    np.save(path, {"x": np.zeros((2, 4, 39), "float32"), "y": np.eye(2, dtype="float32"),
                   "speakers": np.array(["s1", "s2"], dtype=object)}, allow_pickle=True)
    speakers = feature_files.load_features(path)["speakers"]
    assert speakers.dtype.kind == "U" and speakers.tolist() == ["s1", "s2"]


def test_a_file_too_long_to_read_whole_is_one_line_before_it_is_decoded(tmp_path):
    """Ten minutes of silence at 192 kHz (363 kB of FLAC) took half a gigabyte to predict its middle two seconds."""
    path = str(tmp_path / "long.flac")
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC") as f:
        for _ in range(11):
            f.write(np.zeros(60 * 8000, "float32"))
    with pytest.raises(UserError) as excinfo:
        audio.load_audio(path)
    one_line_error(excinfo, f"{path}: 11.0 min of audio; a file is read whole up to 10 min (--timeline reads")
