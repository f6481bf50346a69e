"""The Python API (timnet_ser.load_run -> Run) against the authors' code, the installed package and console command,
and one rule for audio files in a folder and alone."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import timnet_ser
from conftest import CODE
from timnet_ser.core.errors import UserError
from timnet_ser.main import main
from timnet_ser.nn import legacy_weights

CLASSES = ["angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"]


@pytest.fixture(scope="module")
def emodb46(shared):
    import timnet_ser
    return timnet_ser.load_run(os.path.join(shared, "reference", "Test_Models", "EMODB_46"), data="EMODB")


@pytest.fixture(scope="module")
def golden(shared):
    with open(os.path.join(shared, "reference", "EMODB_2s_order.txt")) as f:
        order = f.read().split()
    return order, np.load(os.path.join(shared, "reference", "golden_timnet_emodb46.npz"))


def wav(shared, name):
    return os.path.join(shared, "data", "emodb_2s", name)


def test_predict_embed_and_arrays_equal_the_authors_code(emodb46, golden, shared, monkeypatch, capfd):
    order, reference = golden
    capfd.readouterr()
    names = ["03a01Wa.wav", "16b10Tb.wav"]
    rows = emodb46.predict([wav(shared, n) for n in names])
    assert emodb46.classes == CLASSES and [os.path.basename(r["file"]) for r in rows] == names
    for name, row in zip(names, rows):
        expected = reference["probs"][:, order.index(name)].mean(axis=0)  # the 10 folds' mean
        np.testing.assert_allclose([row["probabilities"][c] for c in CLASSES], expected, atol=1e-4)
        # EMO-DB's names: clips the authors' folds trained on (the folder records no rows: named, or "unknown")
        assert row["label"] == CLASSES[int(expected.argmax())] and set(row) == {
            "file", "label", "probabilities", "duration_seconds", "scored_seconds", "in_training_corpus",
            "training_corpus"}
        assert row["in_training_corpus"] == "yes" and row["training_corpus"] == {"named_as": "EMODB"}
    assert rows[0]["label"] == "angry"
    embedded = emodb46.embed(wav(shared, names[0]))  # (folds, N, 39): the dynamic fusion's output
    np.testing.assert_allclose(embedded[:, 0], reference["fusion"][:, order.index(names[0])], atol=1e-4)
    assert emodb46.embed(wav(shared, names[0]), fold=3).shape == (1, 39)
    samples, rate = sf.read(wav(shared, names[0]), dtype="float32")
    [from_array] = emodb46.predict((samples, rate))
    assert from_array["probabilities"] == pytest.approx(rows[0]["probabilities"], abs=1e-6)
    out = capfd.readouterr()
    assert out.out == "" and out.err == "", "the API prints nothing"

    def no_reading(*args):
        raise AssertionError("weights are read once, when the run is loaded")
    monkeypatch.setattr(legacy_weights, "read_weight_arrays", no_reading)
    assert emodb46.predict(wav(shared, names[1]))[0]["label"] == rows[1]["label"]


def test_threads_sharing_one_run_get_their_own_folds_answers(emodb46, shared):
    """One network serves every fold (engine/fold_weights.py): two threads predicting with one run loaded each
    other's fold weights mid-call (fold 3's probabilities came out 0.05-0.57 where alone they are 0.81), and an
    export beside them was a wrong model. A lock keeps a fold's weights in place until its call ends."""
    from concurrent.futures import ThreadPoolExecutor
    x = np.load(os.path.join(shared, "reference", "EMODB_2s.npy"), allow_pickle=True).item()["x"][:6]
    alone = {fold: emodb46.fold_outputs(x, fold=fold)[1] for fold in range(1, 11)}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda fold: emodb46.fold_outputs(x, fold=fold)[1], list(range(1, 11)) * 3))
    for i, probabilities in enumerate(together):
        np.testing.assert_allclose(probabilities, alone[i % 10 + 1], atol=1e-6, err_msg=f"fold {i % 10 + 1}")


def test_a_resampled_array_equals_the_same_file_on_disk(emodb46, shared, tmp_path):
    import librosa
    signal, _ = librosa.load(wav(shared, "03a01Wa.wav"))
    low = librosa.resample(signal, orig_sr=22050, target_sr=16000)
    path = str(tmp_path / "16k.wav")
    sf.write(path, low, 16000, subtype="FLOAT")
    [from_file] = emodb46.predict(path)
    [from_array] = emodb46.predict((low, 16000))
    assert from_array["probabilities"] == pytest.approx(from_file["probabilities"], abs=1e-6)


def test_integer_pcm_predicts_as_its_file_and_bad_arrays_are_one_line(emodb46, shared):
    """(samples, sample_rate) in int16 (scipy.io.wavfile's layout) or int32 is scaled as soundfile reads the file;
    unscaled, int16 samples gave other probabilities. A (channels, samples) array, a rate that is not a positive
    whole number and NaN were averaged over the samples, truncated, or a traceback from librosa."""
    path = wav(shared, "03a01Wa.wav")
    [from_file] = emodb46.predict(path)
    pcm, rate = sf.read(path, dtype="int16")
    for samples in (pcm, pcm.astype(np.int32) << 16):
        [row] = emodb46.predict((samples, rate))
        assert row["probabilities"] == pytest.approx(from_file["probabilities"], abs=1e-6)
        assert "warning" not in row
    [cast] = emodb46.predict((pcm.astype(np.float32), rate))  # int16 cast to float, not scaled: another label, unsaid
    assert cast["warning"].startswith("<array>: samples reach ") and "integer PCM given as floats?" in cast["warning"]
    # float audio three times full scale is no int16 PCM: told what it may be (it asked about int16 alone)
    [loud] = emodb46.predict((pcm.astype(np.float32) / 32768 * 3, rate))
    assert "far beyond full scale (1): amplified audio, or integer samples given as floats?" in loud["warning"]
    # a constant (DC) offset moved every feature without a word (docs/predict.md: accuracy by offset);
    # the mean is of the 2 s scored, not of the model's 4.35 s window with its zero padding (that halved it)
    scaled = pcm.astype(np.float32) / 32768
    [biased] = emodb46.predict((scaled + 0.02, rate))
    assert biased["warning"].startswith("<array>: its samples' mean is +0.020 (full scale is 1): a constant (DC) offset")
    assert "warning" not in emodb46.predict((scaled + 0.002, rate))[0]  # within what EMO-DB's own clips have
    # a constant alone is no signal: said so, where it read "all silence" of samples at 0.5
    [constant] = emodb46.predict((np.full(rate, 0.5, np.float32), rate))
    assert constant["warning"].startswith("<array>: no signal but a constant (DC) offset of +0.500")
    stereo = np.stack([pcm, pcm], axis=1)  # (samples, 2): soundfile's layout, averaged as librosa.load does
    assert emodb46.predict((stereo, rate))[0]["probabilities"] == pytest.approx(from_file["probabilities"], abs=1e-6)
    for source, message in [((stereo.T, rate), r"shape \(2, \d+\): more channels than samples"),
                            ((pcm, 0), r"sample_rate 0: must be a positive whole number"),
                            ((pcm, 16000.5), r"sample_rate 16000.5: must be a positive whole number"),
                            # 2 s at "16": 2000 s resampled to 22 050 Hz took minutes and gigabytes
                            ((pcm, 16), r"sample_rate 16: below 1000 samples per second; give the rate in Hz"),
                            ((np.full(100, np.nan), rate), r"holds NaN or Inf values"),
                            # 2^70 hung the resampler; 1e7 resampled the clip to nothing ("all silence")
                            ((pcm, 2 ** 70), r"sample_rate 1180591620717411303424: above 768000 samples per second"),
                            ((pcm, 10 ** 7), r"sample_rate 10000000: above 768000"),
                            # scipy.io.wavfile.read's (rate, data): the array's repr ran over many lines
                            ((rate, pcm), r"^\(samples, sample_rate\): got a number, then ndarray: as "
                                          r"scipy.io.wavfile.read returns them, \(sample_rate, samples\); pass "
                                          r"\(samples, sample_rate\)$"),
                            ((pcm, pcm), r"^sample_rate of type ndarray: must be a positive whole number"),
                            # np.array(a list of int16 values) is int64: divided by 2^63, it was all silence
                            ((np.array(pcm.tolist()), rate), r"audio array of int64: no PCM format holds 64-bit")]:
        with pytest.raises(UserError, match=message):
            emodb46.predict(source)
    with pytest.raises(UserError, match=r"^fold='1': give a fold number, 1 to 10, or None for all$"):
        emodb46.predict(path, fold="1")  # it said "--fold 1: ... has folds 1 to 10"
    with pytest.raises(UserError, match=r"^fold=11: .*EMODB_46 has folds 1 to 10$"):  # the API's name, not --fold
        emodb46.predict(path, fold=11)


def test_wrong_arguments_of_the_run_methods_are_one_line(emodb46, shared):
    """Each was a TypeError, AxisError or IndexError from inside numpy or TensorFlow, or (size=-1) no rows at all,
    or (NaN features, too few labels) a results record computed from them."""
    path = wav(shared, "03a01Fa.wav")
    data = np.load(os.path.join(shared, "reference", "EMODB_2s.npy"), allow_pickle=True).item()
    x, y, classes = data["x"][:8], data["y"][:8], emodb46.classes
    [row] = emodb46.predict([os.path.dirname(path)])  # a folder among a list's paths: "no such audio file" before
    assert row["label"] is None and row["error"].endswith("emodb_2s: a folder, not an audio file"), row
    for call, message in [
        (lambda: emodb46.timeline(path, hop="1"), r"^hop='1': give a number of seconds"),
        # the API's argument names, not the command line's --hop and --wav
        (lambda: emodb46.timeline(path, hop=0.0001), r"^hop=0.0001: shorter than one 23 ms frame"),
        (lambda: emodb46.timeline(os.path.dirname(path)), r"^source='.*': timeline reads one audio file, not a folder$"),
        (lambda: emodb46.timeline("no/such.wav"), r"^source='no/such.wav': no such file$"),
        (lambda: emodb46.predict("no/such.wav"), r"^source='no/such.wav': no such file or folder$"),
        (lambda: list(emodb46.predict_chunks([path], size=0)), r"^size=0: give a positive number of inputs"),
        (lambda: list(emodb46.predict_chunks([path], size=-1)), r"^size=-1: give a positive number of inputs"),
        (lambda: emodb46.fold_outputs(np.zeros((2, 10, 39), "float32")),
         r"^features: shape \(2, 10, 39\), but the run's models read \(N, 188, 39\)$"),
        (lambda: emodb46.fold_outputs(x[:0]), r"^features: holds no utterances$"),  # an IndexError
        (lambda: emodb46.fold_outputs(np.where(np.arange(8)[:, None, None] == 2, np.nan, x)),
         r"^features: 1 utterance\(s\) hold NaN or Inf$"),  # NaN probabilities before
        (lambda: emodb46.embed([]), r"^source: the list of paths is empty$"),  # a ValueError from numpy
        (lambda: emodb46.export(None, "onnx"), r"^path=None: give the output's path"),  # a TypeError
        (lambda: timnet_ser.load_run(None), r"^folder=None: give the path of a run folder"),
        (lambda: timnet_ser.load_run(""), r"^folder='': give the path of a run folder"),
        (lambda: emodb46.export("", "onnx"), r"^path='': give the output's path"),  # "path .: is a folder"
        # EMO-DB's weights under EMOVO's seven class names: accepted, every label wrong
        (lambda: timnet_ser.load_run(emodb46.folder, data="EMOVO"),
         r"^data='EMOVO': the weights in .*EMODB_46 were trained on EMODB, as its name \(<KEY>_<seed>\) says"),
        (lambda: timnet_ser.load_run(os.path.dirname(path), data="EMODB"),  # named --test_path before
         r"^folder .*emodb_2s: holds no <k>-fold_weights_best_<i>.hdf5 files$"),
        # a known corpus' feature file, taken and read by nothing (the command line refuses --feature_path there)
        (lambda: timnet_ser.load_run(emodb46.folder, feature_path="MFCC/EMODB.npy"),
         r"^feature_path='MFCC/EMODB.npy': EMODB is a known corpus, which gives the classes and length of the "
         r"weights; leave it out$"),
        # the API's argument named, not the flag (it said "--data RAVDE has 8")
        (lambda: emodb46.evaluate(os.path.join(shared, "reference", "EMODB_2s.npy"), data="RAVDE"),
         r"EMODB_2s.npy: y has 7 classes, data='RAVDE' has 8 \(angry, calm, "),
        (lambda: emodb46.evaluate((x, y, ["angry"] * 7)), r"^features: its class names name 'angry' twice"),
        (lambda: emodb46.evaluate("no/such.npy"), r"^features=no/such.npy: no such feature file$"),  # "--data 'such'"
        (lambda: emodb46.evaluate((x, y, classes, ["s1"] * 8)), r"^features: a fourth item \(speakers\), but the run"),
        (lambda: emodb46.evaluate((x, y, classes), data=5), r"^data=5: give the other corpus' name, a str$"),
        (lambda: emodb46.evaluate("any.npy", data=5), r"^data=5: give the other corpus' name, a str$"),
        # the authors' EMODB weights "cross-corpus" on EMODB itself: WAR 96 %, labelled CROSS-CORPUS
        (lambda: emodb46.evaluate(os.path.join(shared, "reference", "EMODB_2s.npy"), data="EMODB"),
         r"EMODB, the corpus the weights in .* were trained on; a cross-corpus test needs another corpus"),
        # the API's argument named, not the flag (it said "--data 'emodb' is not a known corpus")
        (lambda: emodb46.evaluate(os.path.join(shared, "reference", "EMODB_2s.npy"), data="emodb"),
         r"^data='emodb' is not a known corpus \(.*\) \(did you mean EMODB\?\)$"),
        (lambda: emodb46.evaluate((x, y, classes), data="emodb"),  # the arrays with the name: accepted before
         r"^features: emodb, the corpus the weights in .* were trained on; a cross-corpus test needs another"),
        (lambda: emodb46.evaluate(x), r"^features: got ndarray; give the other corpus' feature file"),
        (lambda: emodb46.evaluate((x, y)), r"^features: a tuple of 2 items; give \(x, y, classes\)"),
        (lambda: emodb46.evaluate((x, y.argmax(axis=1), classes)), r"^features: y has shape \(8,\), expected one-hot"),
        (lambda: emodb46.evaluate((x, y[:5], classes)), r"^features: x has 8 rows but y has 5$"),
        (lambda: emodb46.evaluate((x, y, classes[:3])), r"^features: y has 7 classes, and classes names 3 "),
        (lambda: emodb46.evaluate((np.full_like(x, np.nan), y, classes)), r"^features: 8 row\(s\) of x hold NaN"),
        (lambda: emodb46.evaluate((x[:0], y[:0], classes)), r"^features: holds no samples$"),
        (lambda: emodb46.evaluate((x, y, classes), label_map=5), r"^label_map=5: give a label map file"),
        # arrays of classes no run class matches, no data= given (it named "data= the given features")
        (lambda: emodb46.evaluate((x, y, [f"c{i}" for i in range(7)])),
         r"^the given features: no class of the given features \(c0, .*\) maps onto a class of the run"),
    ]:
        with pytest.raises(UserError, match=message):
            call()


def test_the_authors_folder_is_never_cross_corpus_tested_on_its_recordings_and_its_record_is_reported(
        emodb46, shared, tmp_path, capsys):
    """EMO-DB's recordings under another corpus name scored 95 % "cross-corpus" on the authors' EMODB_46; and the
    record of an authors' cross-corpus test (no seed, no fold count) made the report refuse the whole folder."""
    data = np.load(os.path.join(shared, "reference", "EMODB_2s.npy"), allow_pickle=True).item()
    common = {"x": data["x"][:8], "y": data["y"][:8], "classes": np.array(emodb46.classes),
              "signal_length": np.int64(emodb46.signal_length)}
    named = str(tmp_path / "MYEMO.npy")
    np.save(named, {**common, "files": np.array(["x/03a01Wa.wav", *(f"u{i}.wav" for i in range(7))])})
    with pytest.raises(UserError, match=r"MYEMO.npy: 1 of its 8 utterances are named as EMODB recordings are "
                                        r"\(e.g. 03a01Wa.wav\), which the authors' weights in .*EMODB_46 trained on"):
        emodb46.evaluate(named)
    other = str(tmp_path / "OTHER.npy")
    np.save(other, {**common, "files": np.array([f"u{i}.wav" for i in range(8)])})
    results = str(tmp_path / "R")
    assert main(["--mode", "test", "--test_path", os.path.join(shared, "reference", "Test_Models", "EMODB_46"),
                 "--cross_corpus", "--data", "OTHER", "--feature_path", other, "--result_path", results]) == 0
    [name] = [n for n in os.listdir(results) if n.endswith(".json")]
    with open(os.path.join(results, name)) as f:
        record = json.load(f)
    assert record["config"]["random_seed"] == 46 and record["config"]["split_fold"] is None  # from the name
    assert main(["--mode", "report", "--result_path", results]) == 0
    with open(os.path.join(results, "report.md")) as f:
        assert "| TIMNET | EMODB |" in f.read()
    capsys.readouterr()


def test_a_folder_is_read_like_single_files_and_bad_files_are_listed(emodb46, shared, tmp_path, capsys):
    signal, rate = sf.read(wav(shared, "03a01Wa.wav"))
    folder = tmp_path / "mixed"
    folder.mkdir()
    sf.write(str(folder / "a.wav"), signal, rate)
    sf.write(str(folder / "b.flac"), signal, rate)
    sf.write(str(folder / "c.ogg"), signal, rate)
    sf.write(str(folder / "c.aiff"), signal, rate)  # libsndfile reads AIFF as it reads wav
    (folder / "d.wav").write_bytes(b"<html>not a sound</html>" * 40)
    (folder / "notes.txt").write_text("not audio")
    rows = emodb46.predict(str(folder))
    assert [os.path.basename(r["file"]) for r in rows] == ["a.wav", "b.flac", "c.aiff", "c.ogg", "d.wav"]
    assert [r["label"] for r in rows[:4]] == ["angry"] * 4 and rows[4]["label"] is None
    assert "d.wav: cannot be decoded" in rows[4]["error"]
    assert rows[2]["probabilities"] == pytest.approx(rows[0]["probabilities"], abs=1e-6)  # aiff: the wav's samples
    for row in rows[:4]:  # the same files given one by one give the same rows (to float rounding: batch of 1)
        [alone] = emodb46.predict(row["file"])
        assert alone["label"] == row["label"] and alone["probabilities"] == pytest.approx(row["probabilities"], abs=1e-6)
    test_path = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    assert main(["--mode", "predict", "--data", "EMODB", "--test_path", test_path, "--wav", str(folder)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count(": angry") == 4 and "skipped 1 file(s)" in captured.err and "d.wav" in captured.err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(b"nothing")
    assert main(["--mode", "predict", "--data", "EMODB", "--test_path", test_path, "--wav", str(bad)]) == 2
    assert "none of its 1 file(s) could be decoded" in capsys.readouterr().err
    kept = tmp_path / "keep.csv"  # a file of the user's: a table of error rows replaced it before
    kept.write_text("my notes\n")
    assert main(["--mode", "predict", "--data", "EMODB", "--test_path", test_path, "--wav", str(bad),
                 "--output", str(kept)]) == 2
    assert f"none of its 1 file(s) could be decoded; {kept} was not written" in capsys.readouterr().err
    assert kept.read_text() == "my notes\n" and os.listdir(tmp_path).count("keep.csv") == 1
    short = str(tmp_path / "short.wav")
    sf.write(short, signal[rate:rate + 2205], rate)  # 0.1 s of speech (its first 0.1 s are all silence)
    assert main(["--mode", "predict", "--data", "EMODB", "--test_path", test_path, "--wav", short]) == 0
    assert "short.wav: 0.10 s, much shorter than the model's 4.35 s window" in capsys.readouterr().err
    quiet = str(tmp_path / "quiet.wav")  # 3 s of digital silence got a confident label without a word
    sf.write(quiet, np.zeros(3 * rate, "float32"), rate)
    table = str(tmp_path / "quiet.csv")
    assert main(["--mode", "predict", "--data", "EMODB", "--test_path", test_path, "--wav", quiet,
                 "--output", table]) == 0
    assert "quiet.wav: all silence (its loudest 23 ms frame is below -60 dBFS)" in capsys.readouterr().err
    with open(table, newline="") as f:  # the CSV had no place for a warning: it was on stderr and in JSON only
        assert "quiet.wav: all silence" in next(csv.DictReader(f))["warning"]
    assert emodb46.predict((np.zeros(rate, "float32"), rate))[0]["warning"].startswith("<array>: all silence")
    # speech, then silence: the middle window scored is silent (it said "angry 0.48", nothing else)
    trailing = str(tmp_path / "speech_then_silence.wav")
    sf.write(trailing, np.concatenate([signal, np.zeros(20 * rate)]), rate)
    assert "speech_then_silence.wav: the middle 4.35 s it is scored on are all silence" in \
        emodb46.predict(trailing)[0]["warning"]
    long_quiet = str(tmp_path / "long_quiet.wav")  # no voice anywhere: no "--timeline scores its voiced parts"
    sf.write(long_quiet, np.zeros(10 * rate, "float32"), rate)
    assert "long_quiet.wav: all silence (its loudest" in emodb46.predict(long_quiet)[0]["warning"]
    # the authors' folder records no training rows: "unknown", never "no"; a file named as EMO-DB names its
    # recordings is one their folds trained on (the CSV said "no" for each)
    table = str(tmp_path / "authors.csv")
    assert main(["--mode", "predict", "--data", "EMODB", "--test_path", test_path, "--wav", wav(shared, "03a01Wa.wav"),
                 "--output", table]) == 0
    printed = capsys.readouterr().out
    assert "named as EMODB names its recordings: the authors' fold models trained on nearly all of EMODB" in printed
    assert "records no training utterances: a file its folds trained on is not recognised by its audio" in printed
    assert "keeps no statistics of its corpus' features: audio unlike EMODB" in printed
    with open(table, newline="") as f:
        assert next(csv.DictReader(f))["in_training_corpus"] == "yes"
    assert [row["in_training_corpus"] for row in emodb46.predict([quiet, trailing])] == ["unknown", "unknown"]


def test_predict_given_features_instead_of_audio_says_what_it_takes(emodb46):
    features = np.zeros((2, 215, 39), dtype=np.float32)  # MFCCs, not a path
    for source in (features, [features[0]]):
        with pytest.raises(UserError, match=r"source: got ndarray of shape \(.*\); an input is an audio file"):
            emodb46.predict(source)
    with pytest.raises(UserError, match=r"^source: got NoneType; an input is"):  # embed's said "predict: got"
        emodb46.embed(None)
    for empty in ([], ()):  # returned [] without a word, where an empty folder is one line
        with pytest.raises(UserError, match=r"^source: the list of paths is empty$"):
            emodb46.predict(empty)


def test_extraction_stops_at_a_bad_file_unless_told_to_skip(tmp_path, capsys):
    from test_bad_input import synth_folder, write_bytes
    folder = synth_folder(str(tmp_path), write_bytes(b"<html>not a sound</html>" * 40))
    features = str(tmp_path / "F.npy")
    assert main(["--mode", "extract", "--data", "SYNTH", "--wav_path", folder, "--feature_path", features,
                 "--workers", "1"]) == 2
    assert "sad0.wav: cannot be decoded" in capsys.readouterr().err and not os.path.exists(features)
    assert main(["--mode", "extract", "--data", "SYNTH", "--wav_path", folder, "--feature_path", features,
                 "--workers", "1", "--skip_bad_files"]) == 0
    assert "skipped 1 file(s)" in capsys.readouterr().err
    data = np.load(features, allow_pickle=True).item()
    assert len(data["x"]) == 7 and not any("sad0" in f for f in data["files"])
    # a dataset of your own: its length is measured from the files first, where the bad one ended the command
    mine = str(tmp_path / "MINE.npy")
    assert main(["--mode", "extract", "--data", "MINE", "--wav_path", folder, "--feature_path", mine,
                 "--workers", "1", "--skip_bad_files"]) == 0
    assert len(np.load(mine, allow_pickle=True).item()["x"]) == 7


def test_help_is_grouped_with_examples_and_typos_get_a_suggestion(capsys):
    done = subprocess.run([sys.executable, os.path.join(CODE, "main.py"), "--help"], capture_output=True, text=True)
    for group in ("common:", "training:", "model-specific:", "feature extraction:", "test, predict, export:",
                  "grid on Ray:", "output folders, download:", "examples (run from Code/):"):
        assert group in done.stdout
    assert main(["--mode", "test", "--model", "TIMET"]) == 2
    assert "(did you mean TIMNET?)" in capsys.readouterr().err
    assert main(["--mode", "train", "--data", "EMDB"]) == 2
    assert "(did you mean EMODB?)" in capsys.readouterr().err
    assert main(["--mode", "train", "--model", "DCNN"]) == 2  # a unique beginning, too short for a near miss
    assert "(did you mean DCNN_BLSTMwA?)" in capsys.readouterr().err


def test_the_installed_package_and_command_from_another_directory(shared, tmp_path):
    """Acceptance: after `pip install --no-deps -e .` (setup.sh), from another directory, load_run(EMODB_46,
    data="EMODB").predict(03a01Wa.wav)[0]["label"] == "angry"; and the console command runs the same CLI."""
    code = ("import timnet_ser; "
            f"run = timnet_ser.load_run({os.path.join(shared, 'reference', 'Test_Models', 'EMODB_46')!r}, data='EMODB'); "
            f"print(timnet_ser.__file__, run.predict({wav(shared, '03a01Wa.wav')!r})[0]['label'])")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": "", "CUDA_VISIBLE_DEVICES": "-1"})
    assert done.returncode == 0, done.stderr
    path, label = done.stdout.split()
    assert label == "angry" and path == os.path.join(CODE, "__init__.py")
    command = os.path.join(os.path.dirname(sys.executable), "timnet-ser")
    version = subprocess.run([command, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    import timnet_ser
    assert version.returncode == 0 and version.stdout.strip() == f"timnet-ser {timnet_ser.__version__}"


def test_every_module_of_code_imports_as_part_of_the_package():
    """No module of Code/ imports a sibling by its bare name (which would find a user's file of that name)."""
    import importlib
    for name in sorted(n[:-3] for n in os.listdir(CODE) if n.endswith(".py") and n != "__init__.py"):
        assert importlib.import_module(f"timnet_ser.{name}").__file__ == os.path.join(CODE, f"{name}.py")


def test_a_folder_named_as_the_published_ones_gives_its_corpus(emodb46):
    """As the command line takes the corpus of Test_Models/EMODB_46 from its name, so does load_run (it asked for
    data=, and took any corpus given)."""
    import timnet_ser
    run = timnet_ser.load_run(emodb46.folder)
    assert run.data == "EMODB" and run.classes == emodb46.classes


def test_a_cross_corpus_test_of_the_authors_weights_says_what_it_could_not_compare(emodb46, shared):
    """Half of EMO-DB's own features saved as "HALF", without file names: 96 % "cross-corpus", without a word (the
    authors' folder records no rows, and nothing names the files)."""
    data = np.load(os.path.join(shared, "reference", "EMODB_2s.npy"), allow_pickle=True).item()
    with pytest.warns(UserWarning, match="records no training rows, and features names no files: that it holds none "
                                         "of EMODB's recordings is taken on trust"):
        emodb46.evaluate((data["x"][1::40], data["y"][1::40], emodb46.classes), data="HALF")
