"""Every bad input through the real command line: one line naming the file or flag, exit 2, nothing half-written.

Each case builds its own input under tmp_path, runs ``main.py`` in-process, and checks the message, the
status and that no output file appeared. Audio that is unusual but valid (stereo, 8-bit, 8 or 96 kHz,
silence) must work instead.
"""

import os
import re
import shutil
import struct

import numpy as np
import pytest
import soundfile as sf

from conftest import CODE, SHARED, SPEECH_WAV
from timnet_ser.core.errors import UserError
from timnet_ser.main import main

AUTHORS_EMODB = os.path.join(SHARED, "reference", "Test_Models", "EMODB_46")
EMODB_2S = os.path.join(SHARED, "reference", "EMODB_2s.npy")  # the authors' EMODB_46 folds re-test on it

OUTPUTS = ("out", "MFCC.npy")  # what a case may leave behind only when it succeeds


def tone(path, rate=22050, channels=1, subtype="PCM_16", seconds=0.3, silent=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    signal = np.zeros_like(t) if silent else 0.3 * np.sin(2 * np.pi * 200 * t)
    sf.write(path, np.stack([signal] * channels, 1) if channels > 1 else signal, rate, subtype=subtype)


def synth_folder(tmp, odd=None):
    """A SYNTH-layout folder of short tones; ``odd(path)`` writes the first file of class 'sad' instead."""
    for label in ("angry", "happy", "neutral", "sad"):
        for i in range(2):
            path = os.path.join(tmp, "wav", label, f"{label}{i}.wav")
            if odd is not None and label == "sad" and i == 0:
                odd(path)
            else:
                tone(path)
    return os.path.join(tmp, "wav")


def write_bytes(content):
    def odd(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
    return odd


def unsupported_codec(path):
    """A RIFF/WAVE header announcing a codec (format tag 0x7777) that no decoder knows."""
    data = b"\x00" * 400
    fmt = struct.pack("<HHIIHH", 0x7777, 1, 22050, 44100, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)(path)


def cut_short(path):
    """A whole wav header, and half of the samples it declares (a copy that did not finish)."""
    tone(path)
    os.truncate(path, 44 + (os.path.getsize(path) - 44) // 2)


def extract(tmp, odd):
    return ["--mode", "extract", "--data", "SYNTH", "--workers", "1", "--wav_path", synth_folder(tmp, odd),
            "--feature_path", os.path.join(tmp, "MFCC.npy")]


BAD_AUDIO = {
    "truncated wav": (write_bytes(b"RIFF\x24\x10\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00"),
                      "sad0.wav: cannot be decoded"),
    "empty wav": (write_bytes(b""), "sad0.wav: the file is empty"),
    "non-audio wav": (write_bytes(b"<html>not a sound</html>" * 40), "sad0.wav: cannot be decoded"),
    "unsupported codec": (unsupported_codec, "sad0.wav: cannot be decoded"),
    "samples cut short": (cut_short, "sad0.wav: cut short: its header declares 0.30 s of audio, the file holds 0.15 s"),
}


@pytest.mark.parametrize("case", list(BAD_AUDIO))
def test_audio_that_cannot_be_decoded_is_named(tmp_path, capsys, case):
    odd, message = BAD_AUDIO[case]
    assert main(extract(str(tmp_path), odd)) == 2
    check_one_line(capsys, message)
    assert not os.path.exists(tmp_path / "MFCC.npy")


GOOD_AUDIO = {
    "stereo": lambda p: tone(p, channels=2),
    "8-bit": lambda p: tone(p, subtype="PCM_U8"),
    "8 kHz": lambda p: tone(p, rate=8000),
    "96 kHz": lambda p: tone(p, rate=96000, subtype="PCM_24"),
    "silence only": lambda p: tone(p, silent=True),
}


@pytest.mark.parametrize("case", list(GOOD_AUDIO))
def test_unusual_but_valid_audio_works(tmp_path, case):
    assert main(extract(str(tmp_path), GOOD_AUDIO[case])) == 0
    data = np.load(tmp_path / "MFCC.npy", allow_pickle=True).item()
    assert data["x"].shape == (8, 65, 39) and np.isfinite(data["x"]).all()


def check_one_line(capsys, *fragments):
    """stderr ends with exactly one ``error:`` line (progress lines may precede it), and no traceback."""
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and err.splitlines()[-1].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, err)


def features(tmp, **change):
    """An EMODB-shaped feature file with one thing changed (None removes a key)."""
    data = {"x": np.zeros((20, 30, 39), "float32"), "y": np.eye(7, dtype="float32")[np.arange(20) % 7]}
    for key, value in change.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = os.path.join(tmp, "bad.npy")
    np.save(path, data, allow_pickle=True)
    return path


def with_nan(value):
    x = np.zeros((20, 30, 39), "float32")
    x[3, 4, 5] = value
    return x


BAD_FEATURES = {
    "NaN": ({"x": with_nan(np.nan)}, "1 row(s) of x hold NaN or Inf"),
    "Inf": ({"x": with_nan(np.inf)}, "1 row(s) of x hold NaN or Inf"),
    "no y": ({"y": None}, "missing key(s) y"),
    "rank 2 x": ({"x": np.zeros((20, 39), "float32")}, "expected (N, T, 39)"),
    "40 coefficients": ({"x": np.zeros((20, 30, 40), "float32")}, "expected (N, T, 39)"),
    "integer x": ({"x": np.zeros((20, 30, 39), "int16")}, "x has dtype int16"),
    "6 classes for EMODB": ({"y": np.eye(6, dtype="float32")[np.arange(20) % 6]},
                            "y has 6 classes, --data EMODB has 7"),
    "fewer labels than rows": ({"y": np.eye(7, dtype="float32")[np.arange(19) % 7]}, "x has 20 rows but y has 19"),
    "labels not one-hot": ({"y": np.full((20, 7), 1 / 7, "float32")}, "y is not one-hot"),
    # the optional keys of --mode extract's files (a ValueError traceback, or accepted, before)
    "signal_length not a number": ({"signal_length": "abc"},
                                   "signal_length is 'abc', expected a positive whole number of samples"),
    "negative signal_length": ({"signal_length": -5}, "signal_length is -5, expected a positive whole number"),
    "speakers of other rows": ({"speakers": np.array(["a"] * 3)}, "speakers holds 3 entries, expected one per row"),
    "files of other rows": ({"files": ["a.wav"] * 21}, "files holds 21 entries, expected one per row of x (20)"),
}


@pytest.mark.parametrize("case", list(BAD_FEATURES))
def test_bad_feature_files_are_named(tmp_path, capsys, case):
    change, message = BAD_FEATURES[case]
    path = features(str(tmp_path), **change)
    out = str(tmp_path / "out")
    assert main(["--mode", "train", "--data", "EMODB", "--feature_path", path, "--model_path", out,
                 "--result_path", out]) == 2
    check_one_line(capsys, "bad.npy", message)
    assert not os.path.exists(out)


def weights_folder(tmp, model, classes, drop=None, diverged=None):
    """Weights of ``model`` for ``classes`` classes in a 10-fold folder, fold ``drop`` missing, fold ``diverged``'s
    first kernel NaN (as a version that saved a diverged fold left it)."""
    from timnet_ser.core.config import Hyper
    from timnet_ser.Model import MODELS, build_model, legacy_weight_groups
    from timnet_ser.nn import legacy_weights
    folder = os.path.join(tmp, "weights")
    os.makedirs(folder)
    net = build_model(MODELS[model], (30, 39), classes, Hyper())
    kernel = net.trainable_variables[0]
    for i in range(1, 11):
        values = kernel.numpy()
        kernel.assign(np.full_like(values, np.nan) if i == diverged else values)
        if i != drop:
            legacy_weights.save_legacy_weights(os.path.join(folder, f"10-fold_weights_best_{i}.hdf5"),
                                               legacy_weight_groups(net))
        kernel.assign(values)
    return folder


WEIGHTS = {
    "another class count": (("TIMNET", 6, None, None), "its weights classify 6 classes, not the 7 of --data EMODB; "
                                                       "corpora with 6 classes: --data CASIA"),
    # GM-TCNet weights read as --model's default, TIM-Net: named as a weights file of another layer count before
    "another model": (("GMTCN", 7, None, None), "--model TIMNET: the weights in {folder} are not TIMNET's, they are "
                                                "GMTCN's; give --model GMTCN"),
    "a missing fold file": (("TIMNET", 7, 4, None), "missing weight files 10-fold_weights_best_4.hdf5"),
    "a diverged fold": (("TIMNET", 7, None, 3), "/10-fold_weights_best_3.hdf5: layer 'forward_conv1x1' holds weights "
                                                "that are not finite (NaN or Inf: the fold diverged in training)"),
}


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_bad_weights_are_named(tmp_path, capsys, case):
    (model, classes, drop, diverged), message = WEIGHTS[case]
    folder = weights_folder(str(tmp_path), model, classes, drop, diverged)
    out = str(tmp_path / "out")
    assert main(["--mode", "test", "--data", "EMODB", "--feature_path", features(str(tmp_path)), "--test_path",
                 folder, "--result_path", out]) == 2
    check_one_line(capsys, message.format(folder=folder))
    assert not os.path.exists(out)


FLAGS = {
    "unknown --data": (["--data", "EMODBX"], "--data EMODBX (not one of CASIA, EMODB"),
    "--split_fold above the sample count": (["--split_fold", "21"], "--split_fold 21: must be between 2 and the"),
    "--split_fold 1": (["--split_fold", "1"], "--split_fold 1: must be at least 2"),
    "--batch_size 0": (["--batch_size", "0"], "--batch_size 0: must be positive"),
    "--epoch 0": (["--epoch", "0"], "--epoch 0: must be positive"),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_impossible_flags_are_named(tmp_path, capsys, case):
    flags, message = FLAGS[case]
    out = str(tmp_path / "out")
    assert main(["--mode", "train", "--feature_path", features(str(tmp_path)), "--model_path", out,
                 "--result_path", out, *flags]) == 2
    check_one_line(capsys, message)
    assert not os.path.exists(out)


def test_unwritable_results_folder_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    models = str(tmp_path / "models")
    assert main(["--mode", "train", "--feature_path", features(str(tmp_path)), "--model_path", models,
                 "--result_path", str(blocker / "results"), "--epoch", "1"]) == 2
    check_one_line(capsys, f"--result_path {blocker / 'results'}: cannot be a folder ({blocker} is a file)")
    assert not os.path.exists(models)


def test_an_output_folder_is_checked_without_being_made(tmp_path, monkeypatch):
    """core/atomic_file.check_writable_folder and check_writable(make=False): a file in the path, or a folder this
    process may not write into, is one line naming the flag; a path still to be made passes, and nothing is created
    either way."""
    from timnet_ser.core.atomic_file import check_writable, check_writable_folder
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for make in (True, False):
        with pytest.raises(UserError, match=f"^--output {blocker}/x.csv: cannot be written \\({blocker} is a file, not "
                                            "a folder\\)$"):  # a file's folder (makedirs said "File exists")
            check_writable(str(blocker / "x.csv"), "--output", make)
    check_writable(str(tmp_path / "new" / "x.onnx"), "--output", make=False)
    with pytest.raises(UserError, match=f"^--model_path {blocker}/x/y: cannot be a folder \\({blocker} is a file\\)$"):
        check_writable_folder(str(blocker / "x" / "y"), "--model_path")
    check_writable_folder(str(tmp_path / "new" / "deeper"), "--result_path")
    assert sorted(os.listdir(tmp_path)) == ["a_file"]
    monkeypatch.setattr(os, "access", lambda path, mode: path != str(tmp_path))  # root may write anywhere
    with pytest.raises(UserError, match=f"^--result_path {tmp_path}/new: cannot write there \\(no permission to "
                                        f"write in {tmp_path}\\)$"):
        check_writable_folder(str(tmp_path / "new"), "--result_path")
    with pytest.raises(UserError, match=f"^--output {tmp_path}/new/x.onnx: cannot be written \\(no permission to "
                                        f"write in {tmp_path}\\)$"):
        check_writable(str(tmp_path / "new" / "x.onnx"), "--output", make=False)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_empty_class_folder_is_named(tmp_path, capsys):
    wav = synth_folder(str(tmp_path))
    for name in os.listdir(os.path.join(wav, "neutral")):
        os.remove(os.path.join(wav, "neutral", name))
    assert main(["--mode", "extract", "--data", "SYNTH", "--wav_path", wav, "--feature_path",
                 str(tmp_path / "MFCC.npy")]) == 2
    check_one_line(capsys, "neutral: no wav files for class 'neutral'")
    assert not os.path.exists(tmp_path / "MFCC.npy")


# --- flags: one line with a suggestion (#21 items 4 and 5) ------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--epochs", "2"], "error: unknown flag --epochs (did you mean --epoch?)"),
    (["--mode", "tets"], "error: --mode 'tets': choose one of train, test, extract, predict, export, grid, report, "
                         "download, demo (did you mean test?)"),
    (["--mode", "export", "--format", "onx"], "error: --format 'onx': choose one of onnx, tflite, savedmodel "
                                              "(did you mean onnx?)"),
])
def test_mistyped_flags_and_choices_get_one_line_with_a_suggestion(capsys, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message


@pytest.mark.parametrize("with_feature_path", [False, True])
def test_a_corpus_key_in_the_wrong_case_is_answered_alike_with_or_without_feature_path(tmp_path, capsys,
                                                                                        with_feature_path):
    extra = ["--feature_path", features(str(tmp_path))] if with_feature_path else []
    assert main(["--mode", "train", "--data", "emodb", *extra, "--model_path", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --data 'emodb' is not a known corpus") and err.endswith("(did you mean EMODB?)")
    assert not os.path.exists(tmp_path / "out")


def test_the_authors_folder_without_data_takes_the_corpus_of_its_name(shared, tmp_path, capsys):
    """EMODB_46 without --data: EMODB, said on the output (the re-test itself is test_cli's)."""
    from timnet_ser.cli import command_line, mode_inputs
    args = command_line.parse(["--mode", "test", "--test_path", os.path.join(shared, "reference", "Test_Models",
                                                                         "EMODB_46")])
    assert mode_inputs.settings_with_authors_corpus(command_line.validate(args)).data == "EMODB"
    assert capsys.readouterr().out.strip() == "corpus EMODB from the folder name"


def test_an_authors_folder_of_another_name_without_data_asks_for_it(tmp_path, capsys):
    folder = weights_folder(str(tmp_path), "TIMNET", 7)
    assert main(["--mode", "test", "--test_path", folder, "--result_path", str(tmp_path / "out")]) == 2
    check_one_line(capsys, "--data:", "must be given (e.g. --data EMODB)")


def test_weights_of_another_class_count_suggest_the_corpus_with_that_count(shared, tmp_path, capsys):
    """CASIA_32's weights (6 classes) in a folder of another name, re-tested as EMODB (7): one line naming 6 classes
    and --data CASIA. Under their own name, the name says CASIA (test_the_authors_folder_name_...)."""
    folder = str(tmp_path / "published")
    shutil.copytree(os.path.join(shared, "reference", "Test_Models", "CASIA_32"), folder)
    assert main(["--mode", "predict", "--data", "EMODB", "--test_path", folder,
                 "--wav", SPEECH_WAV]) == 2
    check_one_line(capsys, "its weights classify 6 classes, not the 7 of --data EMODB", "--data CASIA")


@pytest.mark.parametrize("argv, message", [
    # EMODB's probabilities were printed under EMOVO's class names (both have 7 classes): "sad" came out "surprise"
    (["--mode", "predict", "--data", "EMOVO", "--wav", SPEECH_WAV],
     "--data EMOVO: the weights in {folder} were trained on EMODB, as its name (<KEY>_<seed>) says; leave --data out"),
    # an unlabelled re-test on a split whose test folds the fold models trained on (WAR 92.49 % for 80.92 %)
    (["--mode", "test", "--feature_path", EMODB_2S, "--random_seed", "47"],
     "--random_seed 47: the weights in {folder} were trained on the KFold split of seed 46, as its name"),
    (["--mode", "test", "--feature_path", EMODB_2S, "--cv", "speaker"], "--cv speaker: the weights in {folder} were "
                                                                       "trained on the KFold split of seed 46"),
])
def test_the_authors_folder_name_gives_the_corpus_and_split_that_other_flags_contradict(argv, message):
    error, printed = main_py_in_a_child_process([*argv, "--test_path", AUTHORS_EMODB])
    assert error.startswith("error: " + message.format(folder=AUTHORS_EMODB)) and "\n" not in error, error
    assert printed[-3:] == ["2", "False", "False"]  # before TensorFlow


def test_the_api_names_its_arguments(tmp_path):
    from timnet_ser.deploy.api import load_run
    folder = weights_folder(str(tmp_path), "TIMNET", 7)
    with pytest.raises(UserError, match=r"^data='X' is not a known corpus"):
        load_run(folder, data="X")
    with pytest.raises(UserError, match=r"^hyper=\{'dilation_size': 8\}: give a timnet_ser.core.config.Hyper"):  # a TypeError before
        load_run(folder, data="EMODB", hyper={"dilation_size": 8})


def main_py_in_a_child_process(argv: list) -> tuple:
    """`python main.py *argv` in a child process: (its stderr, stripped; its exit code, whether it imported TensorFlow,
    whether it imported Keras)."""
    import subprocess
    import sys
    code = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Code")
    script = (f"import runpy, sys; sys.argv = ['main.py', *{argv!r}]\n"
              "try:\n    runpy.run_path('main.py', run_name='__main__')\n"
              "except SystemExit as stop:\n    print(stop.code, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], cwd=code, capture_output=True, text=True, timeout=120)
    return done.stderr.strip(), done.stdout.split()


@pytest.mark.parametrize("argv, message", [
    (["--mode", "train", "--epoch", "-1"], "--epoch -1: must be positive"),
    (["--mode", "train", "--random_seed", "46,-1"], "--random_seed 46,-1: each seed must be between 0 and 4294966"),
    (["--mode", "train", "--random_seed", "46,47,46"], "--random_seed 46,47,46: names seed 46 twice"),  # two runs
    (["--mode", "train", "--dilation_size", "32"], "--dilation_size 32: must be between 1 and 31"),
    (["--mode", "train", "--data", "EMODB+EMODB"], "--data EMODB+EMODB: names a corpus twice"),
    (["--mode", "train", "--model", "GMTCN", "--label_smoothing_history", "cumulative"],
     "--label_smoothing_history cumulative: GMTCN trains without label smoothing"),
    (["--mode", "train", "--training", "stacked", "--activation", "tanh"],  # Model.stacked_refusal, not a network's
     "--activation tanh: the stacked path trains ReLU blocks only"),
    (["--mode", "extract", "--data", "EMODB", "--wav_path", os.path.dirname(SPEECH_WAV), "--mean_signal_length",
      "100000000"], "--mean_signal_length 100000000: utterances of 75.6 min; at most 13230000 samples (10 min)"),
    (["--mode", "train", "--activation", "foo"], "--activation 'foo': choose one of Keras' element-wise"),
    (["--mode", "train", "--data", "EMODB+"], "--data 'EMODB+': use letters, digits, '_' or '-'"),
    (["--mode", "train", "--data", "EMODB", "--feature_path", "no/such.npy"], "no/such.npy: feature file not found"),
    (["--mode", "train", "--data", "MINE", "--feature_path", "MFCC"], "MFCC: is a folder, not a feature file (.npy)"),
    (["--mode", "report", "--result_path", "main.py"], "--result_path main.py: is a file, not the folder of results"),
    # Ray's own "local" listens on every interface; a malformed address reached Ray, which retried for minutes
    (["--mode", "grid", "--grid", "g.toml", "--address", "local"],
     "--address local: Ray's 'local' starts a Ray whose servers listen on every network interface"),
    (["--mode", "grid", "--grid", "g.toml", "--address", "headnode"],
     "--address 'headnode': give auto, HOST:PORT or ray://HOST:PORT"),
    (["--mode", "grid", "--grid", "g.toml", "--address", "none", "--workers", "2"],
     "--workers 2: sizes the Ray pool, and --address none trains in this process"),
    (["--mode", "extract", "--data", "EMODB", "--wav_path", os.path.dirname(SPEECH_WAV), "--mean_signal_length", "10"],
     "--mean_signal_length 10: shorter than one MFCC analysis window (2048 samples, 93 ms); give at least 2048"),
    (["--mode", "test", "--test_path", "no/such/run"], "--test_path no/such/run: no such folder"),
    (["--mode", "test", "--test_path", SPEECH_WAV], f"--test_path {SPEECH_WAV}: is a file, not a folder"),
    (["--mode", "extract", "--data", "EMODB", "--wav_path", SPEECH_WAV],
     f"{SPEECH_WAV}: is a file, not a folder of wav files"),
    (["--mode", "extract", "--data", "MINE", "--wav_path", "list.csv", "--feature_path", "list.csv"],
     "--feature_path list.csv: is the --wav_path manifest itself; name another file for the features"),
    # a manifest or a run's run.json was replaced by the features; a name with '+' was written, then read as two
    (["--mode", "extract", "--data", "MINE", "--wav_path", os.path.dirname(SPEECH_WAV), "--feature_path", "main.py"],
     "--feature_path main.py: an existing file that is not a feature file (.npy); the features would replace it"),
    (["--mode", "extract", "--data", "MY+SET", "--wav_path", os.path.dirname(SPEECH_WAV)],
     "--data MY+SET: extract makes one corpus' feature file, and '+' joins the names of several for training"),
    (["--mode", "train", "--data", "EMODB", "--feature_path", EMODB_2S, "--init_from", "no/such/run"], "--init_from no/such/run: no such folder"),
    (["--mode", "train", "--data", "EMODB", "--feature_path", EMODB_2S, "--model_path", "main.py/models"],
     "--model_path main.py/models: cannot be a folder ("),
    (["--mode", "train", "--data", "EMODB", "--feature_path", EMODB_2S, "--result_path", "main.py/results"],
     "--result_path main.py/results: cannot be a folder ("),
    (["--mode", "test", "--data", "EMODB", "--feature_path", EMODB_2S, "--test_path", AUTHORS_EMODB, "--split_fold",
      "5", "--random_seed", "46"], f"{AUTHORS_EMODB}: missing weight files 5-fold_weights_best_1.hdf5"),
    (["--mode", "test", "--data", "EMODB", "--feature_path", EMODB_2S, "--test_path", AUTHORS_EMODB, "--result_path",
      "main.py/results", "--random_seed", "46"], "--result_path main.py/results: cannot be a folder ("),
    (["--mode", "predict", "--wav", SPEECH_WAV, "--test_path", "no/such/run"], "--test_path no/such/run: no such folder"),
    (["--mode", "predict", "--wav", "no/such.wav", "--test_path", AUTHORS_EMODB, "--data", "EMODB"],
     "--wav no/such.wav: no such file or folder"),
    (["--mode", "predict", "--wav", "no/such.wav", "--timeline", "--test_path", AUTHORS_EMODB, "--data", "EMODB"],
     "--wav no/such.wav: no such file"),
    (["--mode", "predict", "--wav", SPEECH_WAV, "--test_path", AUTHORS_EMODB, "--data", "EMODB", "--fold", "11"],
     f"--fold 11: {AUTHORS_EMODB} has folds 1 to 10"),
    (["--mode", "predict", "--wav", SPEECH_WAV, "--test_path", "MFCC", "--data", "EMODB"],  # a folder of no weights
     "--test_path MFCC: holds no <k>-fold_weights_best_<i>.hdf5 files"),
    (["--mode", "predict", "--wav", SPEECH_WAV, "--test_path", AUTHORS_EMODB, "--data", "EMODB", "--output",
      "p.xlsx"], "--output p.xlsx: predict writes a table as CSV or JSON; name the file .csv or .json"),
    (["--mode", "predict", "--wav", "list.csv", "--test_path", AUTHORS_EMODB, "--data", "EMODB", "--output",
      "./list.csv"], "--output ./list.csv: is the --wav list itself; name another file for the predictions"),
    (["--mode", "predict", "--wav", SPEECH_WAV, "--test_path", AUTHORS_EMODB, "--data", "EMODB", "--feature_path",
      EMODB_2S], f"--feature_path {EMODB_2S}: --mode predict reads no features; --data EMODB, a known corpus, gives"),
    # an output inside the weights folder it is made from replaced a fold's weights or run.json (checked)
    (["--mode", "predict", "--wav", SPEECH_WAV, "--test_path", AUTHORS_EMODB, "--data", "EMODB", "--output",
      os.path.join(AUTHORS_EMODB, "p.csv")], f"--output {os.path.join(AUTHORS_EMODB, 'p.csv')}: inside the weights "
                                             f"folder {AUTHORS_EMODB}, whose weights and records it could replace"),
    (["--mode", "export", "--format", "onnx", "--output", os.path.join(AUTHORS_EMODB, "10-fold_weights_best_1.hdf5"),
      "--test_path", AUTHORS_EMODB, "--data", "EMODB"],
     f"--output {os.path.normpath(os.path.join(AUTHORS_EMODB, '10-fold_weights_best_1.hdf5'))}: inside the weights "
     f"folder {AUTHORS_EMODB}"),
    (["--mode", "export", "--format", "savedmodel", "--output", AUTHORS_EMODB + "/", "--test_path", AUTHORS_EMODB,
      "--data", "EMODB"], f"--output {os.path.normpath(AUTHORS_EMODB)}: inside the weights folder {AUTHORS_EMODB}"),
    (["--mode", "extract", "--data", "EMODB", "--wav_path", os.path.dirname(SPEECH_WAV), "--feature_path",
      SPEECH_WAV], f"--feature_path {SPEECH_WAV}: names an audio file, which the feature file would replace"),
    (["--mode", "export", "--format", "onnx", "--output", "m.tflite", "--test_path", AUTHORS_EMODB, "--data",
      "EMODB"], "--output m.tflite: the name of a tflite file, for --format onnx; rename it, or give --format tflite"),
    (["--mode", "export", "--format", "onnx", "--output", "m.onnx", "--test_path", "no/such/run"],
     "--test_path no/such/run: no such folder"),
    (["--mode", "export", "--format", "onnx", "--output", "main.py/m.onnx", "--test_path", AUTHORS_EMODB, "--data",
      "EMODB"], "--output main.py/m.onnx: cannot be written (main.py is a file, not a folder)"),
    (["--mode", "export", "--format", "tflite", "--output", "MFCC", "--test_path", AUTHORS_EMODB, "--data", "EMODB"],
     "--output MFCC: is a folder, not a file"),
    (["--mode", "export", "--format", "savedmodel", "--output", "main.py", "--test_path", AUTHORS_EMODB, "--data",
      "EMODB"], "--output main.py: is a file; a SavedModel is a folder"),
    (["--mode", "test", "--test_path", AUTHORS_EMODB, "--fold", "3"],  # it re-tested every fold, saying nothing
     "--fold 3: --mode test does not read it (--mode predict and export do); leave it out"),
    (["--mode", "predict", "--wav", SPEECH_WAV, "--timeline", "--hop", "0", "--test_path", AUTHORS_EMODB, "--data",
      "EMODB"], "--hop 0: must be positive"),
    # weights without a run.json: a training setting was written into the re-test's record as the weights' own
    (["--mode", "test", "--data", "EMODB", "--feature_path", EMODB_2S, "--test_path", AUTHORS_EMODB, "--epoch", "5"],
     f"--epoch 5: {AUTHORS_EMODB} has no run.json, so nothing says how its weights were trained; leave it out"),
    (["--mode", "predict", "--wav", SPEECH_WAV, "--test_path", AUTHORS_EMODB, "--data", "EMODB", "--random_seed",
      "47"], "--random_seed 47: --mode predict uses the fold models in float32 and splits nothing; leave it out"),
    (["--mode", "export", "--format", "onnx", "--output", "m.onnx", "--test_path", AUTHORS_EMODB, "--data", "EMODB",
      "--mixed_precision"], "--mixed_precision: --mode export uses the fold models in float32 and splits nothing"),
    (["--mode", "test", "--cross_corpus", "--data", "EMODB", "--feature_path", EMODB_2S, "--test_path", AUTHORS_EMODB,
      "--random_seed", "47"], "--random_seed 47: a cross-corpus test uses the fold models in float32 and splits"),
    # a cross-corpus test of the authors' weights took --normalize and scored chance (utterance) or failed (corpus)
    (["--mode", "test", "--cross_corpus", "--data", "OTHER", "--feature_path", EMODB_2S, "--test_path", AUTHORS_EMODB,
      "--normalize", "utterance"], f"--normalize utterance: {AUTHORS_EMODB} has no run.json; the authors' weights "
                                   "were trained without normalisation"),
    # --test_path left out: its default is said to be one (the error named a folder the user never typed)
    *[pytest.param(argv, "--test_path (not given, so its default) Test_Models/EMODB_46: no such folder",
                   marks=pytest.mark.skipif(os.path.isdir(os.path.join(CODE, "Test_Models", "EMODB_46")),
                                            reason="the authors' weights copied into Code/Test_Models"))
      for argv in (["--mode", "test"], ["--mode", "export", "--format", "onnx", "--output", "m.onnx"])],
])
def test_a_wrong_flag_or_missing_file_answers_before_tensorflow_is_imported(argv, message):
    """`main.py` in a child process: one line, exit 2, and TensorFlow never imported (the flags are checked before
    it loads, and each mode starts it after its own files are found)."""
    error, printed = main_py_in_a_child_process(argv)
    assert error.startswith(f"error: {message}") and "\n" not in error, error
    assert printed == ["2", "False", "False"]  # nothing else printed (no weights loaded)


def test_one_wav_that_cannot_be_audio_answers_before_tensorflow_is_imported(tmp_path):
    """predict of one file that is empty, cut short, a link that loops or missing: answered before the weights and
    TensorFlow load (it took 7-8 s and printed the weights' lines first), as is a mode without what it needs."""
    empty, short, loop = tmp_path / "empty.wav", tmp_path / "short.wav", tmp_path / "loop.wav"
    empty.write_bytes(b"")
    with open(SPEECH_WAV, "rb") as f:
        short.write_bytes(f.read()[:5000])  # the header declares 2 s
    os.symlink(loop, loop)
    for wav, message in [(empty, f"{empty}: the file is empty"), (short, f"{short}: cut short: its header declares"),
                         (loop, f"--wav {loop}: a link that leads round in a loop")]:
        error, printed = main_py_in_a_child_process(["--mode", "predict", "--wav", str(wav), "--test_path",
                                                     AUTHORS_EMODB, "--data", "EMODB"])
        assert error.startswith(f"error: {message}") and "\n" not in error, error
        assert printed == ["2", "False", "False"]
    error, printed = main_py_in_a_child_process(["--mode", "predict", "--test_path", AUTHORS_EMODB, "--data", "EMODB"])
    assert error == "error: --wav: required for --mode predict (an audio file or a folder of them)" and \
        printed == ["2", "False", "False"]


def test_a_finished_run_resumed_or_retested_on_more_folds_is_answered_in_one_line(tmp_path, capsys):
    from test_resume import toy_feature_file
    features = toy_feature_file(tmp_path / "TOY.npy")
    models, results = str(tmp_path / "M"), str(tmp_path / "R")
    assert main(["--mode", "train", "--data", "TOY", "--feature_path", features, "--split_fold", "2", "--epoch", "1",
                 "--batch_size", "8", "--dilation_size", "2", "--model_path", models, "--result_path", results]) == 0
    [run] = [os.path.join(models, name) for name in os.listdir(models)]
    written = {name: os.path.getmtime(os.path.join(results, name)) for name in os.listdir(results)}
    capsys.readouterr()
    assert main(["--mode", "train", "--resume", run]) == 0  # a complete run: said, and nothing rewritten
    out = capsys.readouterr().out
    assert f"the run in {run} is complete: its 2 folds are trained" in out and "trained 0 folds" not in out
    assert "trained before this command" not in out
    assert {name: os.path.getmtime(os.path.join(results, name)) for name in os.listdir(results)} == written
    assert main(["--mode", "test", "--test_path", run, "--split_fold", "3", "--retest_other_split"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has 2 fold models" in err and "--split_fold 2" in err
    assert "not found" not in err
    assert main(["--mode", "test", "--test_path", run, "--split_fold", "3"]) == 2  # it advised --retest_other_split
    assert capsys.readouterr().err.strip() == (f"error: --split_fold 3: the run in {run} has 2; its 2 fold models "
                                               "re-test 2 test folds, one each: leave the flag out")


def test_a_weights_file_that_reads_other_files_or_declares_too_much_is_refused(tmp_path):
    """h5py followed a dataset's external storage: a downloaded weights file read a private file's bytes into the
    weights (and an export into the model), and so did an external link in the middle of a weight's path (only its
    last step was looked at); a never-written 20000 x 20000 dataset was read whole, and a few kilobytes of compressed
    HDF5 that named one 256 MB dataset five times were read (1.3 GB) before any shape was compared."""
    import h5py

    from timnet_ser.nn.legacy_weights import read_weight_arrays
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET" * 40)
    private = str(tmp_path / "private.h5")  # any HDF5 file of the user's at a known path
    with h5py.File(private, "w") as f:
        f.create_dataset("data/kernel:0", data=np.arange(100, dtype="float32").reshape(10, 10))

    def weights(name, make):
        path = str(tmp_path / name)
        with h5py.File(path, "w") as f:
            f.attrs["layer_names"] = np.array([b"dense"])
            group = f.create_group("dense")
            group.attrs["weight_names"] = np.array([b"dense/kernel:0"])
            make(f, group)
        return path
    cases = [
        (weights("external.h5", lambda f, g: g.create_dataset("dense/kernel:0", shape=(10, 10), dtype="f4",
                                                              external=[(str(secret), 0, 400)])),
         "weight 'dense/kernel:0' keeps its values outside the file (external or virtual storage)"),
        (weights("huge.h5", lambda f, g: g.create_dataset("dense/kernel:0", shape=(20000, 20000), dtype="f4",
                                                          chunks=(100, 100), fillvalue=0.5)),
         "weight 'dense/kernel:0' declares 400,000,000 values, more than any network here has"),
        (weights("linked.h5", lambda f, g: g.__setitem__("dense/kernel:0", h5py.ExternalLink(str(secret), "/x"))),
         "'dense/kernel:0' is a link (ExternalLink), not weights stored in the file"),
        (weights("linked_on_the_way.h5", lambda f, g: g.__setitem__("dense", h5py.ExternalLink(private, "/data"))),
         "'dense/kernel:0' lies under '/dense/dense', a link (ExternalLink), not a group stored in the file"),
        (weights("text.h5", lambda f, g: g.create_dataset("dense/kernel:0", data=[b"x" * 10], dtype=h5py.string_dtype())),
         "weight 'dense/kernel:0' is not an array of numbers (dtype object, shape (1,))"),
        (weights("no_array.h5", lambda f, g: g.create_dataset("dense/kernel:0", data=h5py.Empty("f4"))),
         "weight 'dense/kernel:0' is not an array of numbers (dtype float32, shape None)"),
        (weights("named_five_times.h5", lambda f, g: (
            g.attrs.__setitem__("weight_names", np.array([b"dense/kernel:0"] * 5)),
            g.create_dataset("dense/kernel:0", shape=(1 << 26,), dtype="f4", chunks=(1 << 20,), compression="gzip",
                             fillvalue=0.0))),
         "its weights declare 1,342,177,280 bytes in all, more than any network here has"),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=re.escape(f"{path}: {message}")):
            read_weight_arrays(path)
    assert os.path.getsize(cases[-1][0]) < 100_000


def test_weights_that_do_not_fit_the_model_are_refused_before_any_array_is_read(tmp_path, monkeypatch):
    """Only the total bytes a file's weights declare were bounded (1 GiB) before every array was read whole: a
    weights file whose bias declared 256 MB (a few kilobytes, compressed) was read, then found not to fit a bias of
    7 values. Every dataset's declared shape is now compared with the variable it maps to first; the
    class count of a folder's weights is read from the declared shapes too."""
    import h5py

    from timnet_ser.engine.fold_weights import check_class_count
    from timnet_ser.nn.legacy_weights import check_legacy_weights
    model = [("dense", [np.zeros((39, 7), "float32"), np.zeros((7,), "float32")])]  # variables: a shape, a dtype

    def weights(name, kernel, bias):
        path = str(tmp_path / name)
        with h5py.File(path, "w") as f:
            f.attrs["layer_names"] = np.array([b"dense"])
            group = f.create_group("dense")
            group.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
            for weight, make in (("kernel", kernel), ("bias", bias)):
                make(group, f"dense/{weight}:0")
        return path
    kernel = lambda g, name: g.create_dataset(name, data=np.ones((39, 7), "float32"))
    bias = lambda g, name: g.create_dataset(name, data=np.ones(7, "float32"))
    huge = weights("huge_bias.hdf5", kernel, lambda g, name: g.create_dataset(
        name, shape=(1 << 26,), dtype="f4", chunks=(1 << 20,), compression="gzip", fillvalue=0.0))
    doubles = weights("float64.hdf5", lambda g, name: g.create_dataset(name, data=np.ones((39, 7))), bias)
    classes = weights("six_classes.hdf5", lambda g, name: g.create_dataset(name, data=np.ones((39, 6), "f4")),
                      lambda g, name: g.create_dataset(name, data=np.ones(6, "f4")))
    fits = weights("fits.hdf5", kernel, bias)
    assert os.path.getsize(huge) < 100_000

    def no_reading(*args, **kwargs):
        raise AssertionError("an array was read before the shapes were compared")
    with monkeypatch.context() as patch:
        patch.setattr(h5py.Dataset, "__array__", no_reading)
        patch.setattr(h5py.Dataset, "__getitem__", no_reading)
        patch.setattr(h5py.Dataset, "read_direct", no_reading)
        for path, message in [
            (huge, "weight '/dense/dense/bias:0' declares the shape (67108864,), the model's layer 'dense' "
                   "expects (7,) (another class count or model?)"),
            (classes, "weight '/dense/dense/kernel:0' declares the shape (39, 6), the model's layer 'dense' "
                      "expects (39, 7) (another class count or model?)"),
        ]:
            with pytest.raises(UserError, match=f"^{re.escape(f'{path}: {message}')}$"):
                check_legacy_weights(path, model)
        with pytest.raises(UserError, match=re.escape(f"{classes}: its weights classify 6 classes, not the 7 of "
                                                      "--data EMODB")):
            check_class_count(classes, 7, "EMODB")
    [(name, arrays)] = check_legacy_weights(fits, model)  # a file that fits is read, and only then
    [(name, arrays)] = check_legacy_weights(doubles, model)  # float64 values fit: cast to the variables' type
    assert name == "dense" and [a.shape for a in arrays] == [(39, 7), (7,)] and arrays[1].sum() == 7


def test_files_nested_too_deep_are_one_line(tmp_path, capsys):
    """A run.json, a results file, a grid file or a label map nested tens of thousands deep ended in a
    RecursionError traceback."""
    from timnet_ser.cli import grid_file
    from timnet_ser.data.label_map import read_map_file
    from timnet_ser.runs import results_records, run_folder
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(UserError, match=r"run.json: damaged run file \(RecursionError"):
        run_folder.open_run(str(run))
    results = tmp_path / "R"
    results.mkdir()
    (results / "EMODB_10fold_80.00_46_2026-01-01_00-00-00_TIMNET_last_epoch.json").write_text("[" * 200_000)
    with pytest.raises(UserError, match="not readable JSON"):
        results_records.load_records(str(results))
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 50_000 + "]" * 50_000)
    with pytest.raises(UserError, match=r"deep.toml: nested too deep to be a grid of flags$"):
        grid_file.read_grid(str(deep))
    with pytest.raises(UserError, match=r"deep.toml: cannot be read \(nested too deep to be a label map\)$"):
        read_map_file(str(deep), "--label_map")


def test_a_name_too_long_for_its_temporary_is_refused_before_the_work(tmp_path, capsys):
    """A legal 245-byte name was refused only when its file was written, after the whole extraction: the
    temporary beside it (.<name>.partial-XXXXXXXX.npy) is 22 bytes longer, over the usual 255."""
    argv = extract(str(tmp_path), None)
    long_name = str(tmp_path / ("m" * 241 + ".npy"))
    argv[argv.index("--feature_path") + 1] = long_name
    assert main(argv) == 2
    check_one_line(capsys, f"--feature_path {long_name}: the name is too long to be written (245 bytes")
    assert not os.path.exists(long_name)
