"""Export: ONNX Runtime, the LiteRT interpreter and the reloaded SavedModel compute what the Keras fold-mean model
computes; the authors' EMODB_46 weights exported to ONNX give the original code's fold-mean probabilities; the
sidecar says enough to make the input; bad formats and paths are one-line errors; nothing is left half-written."""

import json
import os
import re
import resource
from dataclasses import replace

import librosa
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from conftest import SPEECH_WAV
from timnet_ser.core.config import Hyper
from timnet_ser.core.errors import DiskFull, UserError
from timnet_ser.data import audio, features
from timnet_ser.data.corpora import CORPORA, SAMPLE_RATE
from timnet_ser.deploy import export, export_output
from timnet_ser.engine.fold_weights import FoldWeights
from timnet_ser.GTCM import GTCM
from timnet_ser.Model import MODELS, build_model, legacy_weight_groups
from timnet_ser.nn import fused_ops, legacy_weights

FRAMES = 24


def _tiny_gmtcn(hyper: Hyper) -> list:
    return [GTCM(filters=hyper.filter_size, kernel_size=hyper.kernel_size, dilations=(1, 2), name="gtcm")]


# name -> (spec, hyper, one sample's shape, signal length giving that shape, weight scale). Few blocks, channels
# and frames: the exporters' cost grows with the number of operations, not with what they mean.
TINY = {
    "TIMNET": (MODELS["TIMNET"], Hyper(filter_size=8, dilation_size=2), (FRAMES, 39), (FRAMES - 1) * 512, 0.3),
    "GMTCN": (replace(MODELS["GMTCN"], network=_tiny_gmtcn), Hyper(filter_size=8), (FRAMES, 39),
              (FRAMES - 1) * 512, 0.3),
    "DCNN_BLSTMwA": (MODELS["DCNN_BLSTMwA"], Hyper(backbone_alpha=0.35, backbone_weights="none"), (2, 64, 64, 3),
                     22000, 0.1),
}
CLASSES = ("a", "b", "c", "d")


def randomise(model, seed: int, scale: float) -> None:
    """Weights far from their initial values (BatchNorm statistics included), so that an exporter that drops or
    mixes up any variable changes the output; ``scale`` small enough that the softmax is not saturated."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if variable.path.endswith("moving_variance"):
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype("float32"))
        else:
            variable.assign(rng.normal(0.0, scale, variable.shape).astype("float32"))


def save_folds(name: str, folder, folds, hyper: Hyper | None = None) -> list[tuple[int, str]]:
    """Fold files in the authors' layout, each fold its own random weights (of TINY's network, or of ``hyper``'s)."""
    spec, tiny_hyper, shape, _, scale = TINY[name]
    hyper = hyper or tiny_hyper
    files = []
    for fold in folds:
        model = build_model(spec, shape, len(CLASSES), hyper)
        randomise(model, fold, scale)
        path = str(folder / f"{len(folds)}-fold_weights_best_{fold}.hdf5")
        legacy_weights.save_legacy_weights(path, legacy_weight_groups(model))
        files.append((fold, path))
    return files


def tiny_model(name: str, folder, folds) -> tuple:
    spec, hyper, shape, _, _ = TINY[name]
    files = save_folds(name, folder, folds)
    return export.fold_mean_model(FoldWeights(spec, hyper, shape, len(CLASSES), files)), files


def run_artefact(path: str, fmt: str, x: np.ndarray) -> np.ndarray:
    """The exported graph's probabilities on x, by the runtime a consumer would use."""
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run([export.OUTPUT_NAME], {export.INPUT_NAME: x})[0]
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter
        runner = Interpreter(model_path=path).get_signature_runner(export.ENDPOINT)
        return runner(**{export.INPUT_NAME: x})[export.OUTPUT_NAME]
    loaded = tf.saved_model.load(path)
    return loaded.signatures[export.ENDPOINT](**{export.INPUT_NAME: tf.constant(x)})[export.OUTPUT_NAME].numpy()


def sidecar(name: str, folds) -> dict:
    spec, _, shape, signal_length, _ = TINY[name]
    return export.sidecar_for(spec, "TOY", CLASSES, signal_length, shape, folds, "/somewhere/TOY_run")


def described(path: str) -> dict:
    with open(path + ".json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def tiny_timnet(tmp_path_factory):
    return tiny_model("TIMNET", tmp_path_factory.mktemp("timnet"), (1, 2))


def each_fold(spec, hyper: Hyper, shape, files, x: np.ndarray) -> list[np.ndarray]:
    """Predict's way: one network, each fold's file loaded in turn; its softmax on x per fold."""
    folds = []
    for _, path in files:
        network = build_model(spec, shape, len(CLASSES), hyper)
        legacy_weights.load_legacy_weights(path, legacy_weight_groups(network))
        folds.append(np.asarray(network(x, training=False)))
    return folds


@pytest.mark.parametrize("name", ["TIMNET", "GMTCN"])
def test_the_graph_is_the_mean_of_the_folds_softmax(tmp_path, tiny_timnet, name):
    """The mean of what predict computes fold by fold: TIM-Net's folds in one pass over their stacked weights (a
    graph as large for 2 folds as for 1), GM-TCNet's as copies (ModelSpec.one_pass_export)."""
    model, files = tiny_timnet if name == "TIMNET" else tiny_model(name, tmp_path, (1, 2))
    spec, hyper, shape, _, _ = TINY[name]
    x = np.random.default_rng(7).normal(size=(6, *shape)).astype("float32")
    folds = each_fold(spec, hyper, shape, files, x)
    assert np.abs(folds[0] - folds[1]).max() > 0.05  # the folds differ, so the mean is a real test
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.mean(folds, axis=0), atol=1e-6)
    single = export.fold_mean_model(FoldWeights(spec, hyper, shape, len(CLASSES), files), [1])
    assert single.name == f"{name}_fold_2"
    np.testing.assert_allclose(np.asarray(single(x, training=False)), folds[1], atol=1e-6)
    if name == "GMTCN":
        assert [layer.name for layer in model.layers] == ["features", "fold_1", "fold_2", "probabilities"]
        return
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "FoldsInOnePass"]
    signature = [tf.TensorSpec((None, *shape), tf.float32)]
    operations = [len(export._constant_function(m, signature).graph.get_operations()) for m in (single, model)]
    assert operations[0] == operations[1], operations


@pytest.mark.parametrize("change", [{"normalize": "utterance"}, {"activation": "tanh"}])
def test_a_network_the_stacked_path_does_not_compute_keeps_a_copy_per_fold(tmp_path, change):
    """A normalisation layer, or TIM-Net blocks with another activation than ReLU: the folds as copies, still
    their mean."""
    spec, hyper, shape, _, _ = TINY["TIMNET"]
    hyper = replace(hyper, **change)
    files = save_folds("TIMNET", tmp_path, (1, 2), hyper)
    x = np.random.default_rng(7).normal(size=(4, *shape)).astype("float32")
    model = export.fold_mean_model(FoldWeights(spec, hyper, shape, len(CLASSES), files))
    assert [layer.name for layer in model.layers] == ["features", "fold_1", "fold_2", "probabilities"]
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.mean(each_fold(spec, hyper, shape, files, x),
                                                                             axis=0), atol=1e-6)


@pytest.mark.parametrize("name, fmt", [("TIMNET", "onnx"), ("TIMNET", "tflite"), ("TIMNET", "savedmodel"),
                                       ("GMTCN", "onnx"), ("GMTCN", "tflite"), ("GMTCN", "savedmodel")])
def test_each_format_computes_the_keras_fold_mean(tmp_path, tiny_timnet, name, fmt):
    model, files = tiny_timnet if name == "TIMNET" else tiny_model(name, tmp_path, (1, 2))
    shape = TINY[name][2]
    path = str(tmp_path / f"model.{fmt}")
    written = export.export_model(model, path, fmt, sidecar(name, [f for f, _ in files]))
    assert written == [path, path + ".json"]
    for batch in (5, 1):  # the batch axis is free
        x = np.random.default_rng(batch).normal(size=(batch, *shape)).astype("float32")
        expected = np.asarray(model(x, training=False))
        assert expected.max() < 0.99  # not saturated: a wrong weight shows
        np.testing.assert_allclose(run_artefact(path, fmt, x), expected, atol=1e-5, rtol=0)
    meta = described(path)
    assert meta["format"] == fmt and meta["artefact"] == f"model.{fmt}" and meta["model"] == name
    assert meta["input"]["shape"] == [None, *shape] and meta["output"]["shape"] == [None, len(CLASSES)]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary file or folder left


def test_an_exported_graph_holds_none_of_the_fused_ops(tmp_path, tiny_timnet):
    """Even exported where the fused ops are switched on (they infer for runs that trained with them), the
    SavedModel computes through the Keras layers: it must run without our library."""
    model, files = tiny_timnet
    path = str(tmp_path / "model.savedmodel")
    with fused_ops.enabled():
        export.export_model(model, path, "savedmodel", sidecar("TIMNET", [f for f, _ in files]))
    graph = tf.saved_model.load(path).signatures[export.ENDPOINT].graph.as_graph_def()
    types = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert "MatMul" in types or "BatchMatMulV2" in types  # the inner functions were read
    assert not [t for t in types if t.startswith("Fused")]


def test_dcnn_blstmwa_exports_with_one_utterance_per_tflite_call(tmp_path):
    """Its LSTMs lower to TFLite only with a static batch: that file takes batch 1, ONNX keeps the free batch."""
    model, _ = tiny_model("DCNN_BLSTMwA", tmp_path, (1,))
    shape = TINY["DCNN_BLSTMwA"][2]
    x = np.random.default_rng(0).normal(0.0, 10.0, size=(3, *shape)).astype("float32")
    expected = np.asarray(model(x, training=False))
    assert expected.max() < 0.99
    for fmt, batch in (("onnx", None), ("tflite", 1)):
        path = str(tmp_path / f"dcnn.{fmt}")
        export.export_model(model, path, fmt, sidecar("DCNN_BLSTMwA", [1]))
        assert described(path)["input"]["shape"] == [batch, *shape]
        assert described(path)["features"]["kind"] == "logmel3"
        rows = [x] if batch is None else [x[i:i + 1] for i in range(len(x))]
        got = np.concatenate([run_artefact(path, fmt, r) for r in rows])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_emodb46_onnx_gives_the_original_codes_fold_mean(shared, tmp_path):
    """The authors' weights: ONNX Runtime on the first 64 rows of EMODB_2s.npy against the original code's
    probabilities of its 10 folds, averaged."""
    reference = os.path.join(shared, "reference")
    folder = os.path.join(reference, "Test_Models", "EMODB_46")
    chosen = tuple(range(1, 11))
    files = [(fold, os.path.join(folder, f"10-fold_weights_best_{fold}.hdf5")) for fold in chosen]
    corpus = CORPORA["EMODB"]
    model = export.fold_mean_model(FoldWeights(MODELS["TIMNET"], Hyper(), (corpus.frames, 39), corpus.num_classes, files))
    path = str(tmp_path / "emodb46.onnx")
    export.export_model(model, path, "onnx", export.sidecar_for(
        MODELS["TIMNET"], "EMODB", corpus.classes, corpus.signal_length, (corpus.frames, 39), chosen, folder))
    x = np.load(os.path.join(reference, "EMODB_2s.npy"), allow_pickle=True).item()["x"][:64]
    golden = np.load(os.path.join(reference, "golden_timnet_emodb46.npz"))["probs"][[f - 1 for f in chosen], :64]
    got = run_artefact(path, "onnx", x)
    assert np.abs(golden[0] - golden[1]).max() > 0.01  # the folds differ: the mean is tested
    np.testing.assert_allclose(got, golden.mean(axis=0), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got, np.asarray(model(x, training=False)), atol=1e-5, rtol=0)
    meta = described(path)
    assert meta["classes"] == list(corpus.classes) and meta["folds_averaged"] == list(chosen)
    assert (meta["sample_rate"], meta["signal_length"]) == (22050, 96000)
    assert meta["input"] == {"name": "features", "shape": [None, 188, 39], "dtype": "float32",
                             "normalize": {"mode": "none", "rule": export.NORMALIZATION["none"]}}
    assert meta["weights"] == "EMODB_46" and meta["model"] == "TIMNET"
    assert meta["weights_chosen_by"] == "not known (no run.json)"  # sidecar_for told no protocol


def test_the_command_line_exports_one_fold_and_says_what_first(shared, tmp_path, capsys):
    """``--mode export --fold 3`` of the authors' folder: a header line before the conversion (it takes a while),
    the paths written after it, and a SavedModel that gives the original code's fold-3 probabilities."""
    from timnet_ser.main import main
    reference = os.path.join(shared, "reference")
    weights = os.path.join(reference, "Test_Models", "EMODB_46")
    path = str(tmp_path / "fold3")
    assert main(["--mode", "export", "--data", "EMODB", "--test_path", weights, "--fold", "3",
                 "--format", "savedmodel", "--output", path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"TIMNET EMODB weights {weights} (fold 3) -> savedmodel {path}", f"wrote {path}",
                     f"wrote {path}.json"]
    x = np.load(os.path.join(reference, "EMODB_2s.npy"), allow_pickle=True).item()["x"][:16]
    golden = np.load(os.path.join(reference, "golden_timnet_emodb46.npz"))["probs"][2, :16]
    np.testing.assert_allclose(run_artefact(path, "savedmodel", x), golden, atol=1e-4, rtol=0)
    assert described(path)["folds_averaged"] == [3]
    # the published weights were selected on their test folds: whoever serves the graph is told, as every output
    # of a re-test is
    assert described(path)["weights_chosen_by"].startswith("paper: SELECTS ON THE TEST FOLD")


def test_a_bad_output_on_the_command_line_is_refused_before_anything_is_printed(shared, tmp_path, capsys):
    from timnet_ser.main import main
    weights = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    assert main(["--mode", "export", "--data", "EMODB", "--test_path", weights, "--fold", "1",
                 "--format", "tflite", "--output", str(tmp_path)]) == 2  # a folder, where TFLite writes a file
    out, err = capsys.readouterr()
    assert out == "" and "--output" in err and "is a folder" in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "notes.txt").write_text("the user's")  # a SavedModel's export replaced such a folder whole
    assert main(["--mode", "export", "--data", "EMODB", "--test_path", weights, "--fold", "1",
                 "--format", "savedmodel", "--output", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"error: --output {tmp_path}: a folder that holds other files than a SavedModel "
                                 "(notes.txt); the export would replace it whole: name a new folder\n")
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_the_api_refuses_an_output_inside_the_run_it_exports(shared, tmp_path):
    """Run.export into its own folder replaced a fold's weights file (or run.json) with the graph."""
    import shutil

    import timnet_ser
    folder = tmp_path / "EMODB_46"
    shutil.copytree(os.path.join(shared, "reference", "Test_Models", "EMODB_46"), folder)
    run = timnet_ser.load_run(str(folder), data="EMODB")
    target = folder / "10-fold_weights_best_1.hdf5"
    before = target.read_bytes()
    with pytest.raises(UserError, match=f"^path={re.escape(repr(str(target)))}: inside the weights folder"):
        run.export(str(target), "onnx", fold=1)
    assert target.read_bytes() == before


@pytest.mark.parametrize("mode", [["--mode", "export", "--format", "onnx", "--output", "m.onnx"],
                                  ["--mode", "predict", "--wav", SPEECH_WAV]])
def test_a_fold_the_weights_lack_is_refused_before_anything_is_printed(shared, tmp_path, capsys, monkeypatch, mode):
    from timnet_ser.main import main
    weights = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    monkeypatch.chdir(tmp_path)  # where a relative --output would be written
    assert main(["--data", "EMODB", "--test_path", weights, "--fold", "11", *mode]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--fold 11" in err and "has folds 1 to 10" in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path) == []


def test_the_sidecar_recipe_makes_the_mfcc_input():
    """The recipe's numbers, passed explicitly to librosa, reproduce the features the model was trained on."""
    meta = sidecar("TIMNET", [1])
    recipe = meta["features"]
    signal = np.random.default_rng(0).normal(0.0, 0.1, meta["signal_length"]).astype("float32")
    power = librosa.feature.melspectrogram(y=signal, sr=meta["sample_rate"], n_fft=recipe["n_fft"],
                                           hop_length=recipe["hop_length"], window=recipe["window"],
                                           center=recipe["center"], pad_mode=recipe["pad_mode"],
                                           power=recipe["power"], n_mels=recipe["n_mels"], fmin=recipe["fmin"],
                                           fmax=recipe["fmax"], htk=recipe["htk"], norm=recipe["mel_norm"])
    decibels = librosa.power_to_db(power, ref=recipe["ref"], amin=recipe["amin"], top_db=recipe["top_db"])
    made = librosa.feature.mfcc(S=decibels, n_mfcc=recipe["n_mfcc"], dct_type=recipe["dct_type"],
                                norm=recipe["norm"], lifter=recipe["lifter"]).T
    np.testing.assert_allclose(made, features.mfcc(signal), atol=1e-4)
    assert made.shape == tuple(meta["input"]["shape"][1:]) == (FRAMES, 39)
    assert recipe["librosa"] == librosa.__version__ and meta["sample_rate"] == SAMPLE_RATE
    assert meta["classes"] == list(CLASSES) and meta["folds_averaged"] == [1]

def test_the_sidecar_recipe_decodes_a_file_as_the_package_reads_it(tmp_path):
    """A 44.1 kHz stereo int16 wav, decoded by the recipe's words without librosa.load (the samples scaled, the
    channels averaged, resampled by res_type), is what the package reads of the file."""
    recipe = sidecar("TIMNET", [1])["features"]
    stereo = (np.random.default_rng(1).normal(0.0, 0.1, (44100, 2)) * 32768).astype(np.int16)
    path = str(tmp_path / "stereo.wav")
    soundfile.write(path, stereo, 44100, subtype="PCM_16")
    assert recipe["mono"] is True
    mono = (stereo / 2.0 ** 15).mean(axis=1)  # integer PCM over 2^(bits - 1), the channels averaged
    resampled = librosa.resample(mono, orig_sr=44100, target_sr=SAMPLE_RATE, res_type=recipe["res_type"])
    np.testing.assert_allclose(resampled, audio.load_audio(path), atol=1e-6)


def test_the_sidecar_recipe_makes_the_logmel3_input():
    meta = sidecar("DCNN_BLSTMwA", [1])
    recipe = meta["features"]
    signal = np.random.default_rng(0).normal(0.0, 0.1, meta["signal_length"]).astype("float32")
    power = librosa.feature.melspectrogram(y=signal, sr=meta["sample_rate"], n_fft=recipe["n_fft"],
                                           hop_length=recipe["hop_length"], win_length=recipe["win_length"],
                                           window=recipe["window"], n_mels=recipe["n_mels"], fmin=recipe["fmin"],
                                           fmax=recipe["fmax"])
    static = librosa.power_to_db(power, ref=recipe["ref"], amin=recipe["amin"], top_db=recipe["top_db"])
    channels = np.stack([static, librosa.feature.delta(static, width=recipe["width"]),
                         librosa.feature.delta(static, width=recipe["width"], order=2)], axis=-1).transpose(1, 0, 2)
    starts = range(0, len(channels) - recipe["segment_frames"] + 1, recipe["segment_hop"])
    made = np.stack([channels[s:s + recipe["segment_frames"]] for s in starts])
    np.testing.assert_allclose(made, features.logmel3(signal), atol=1e-5)
    assert made.shape == tuple(meta["input"]["shape"][1:]) == (2, 64, 64, 3)


@pytest.fixture(scope="module")
def any_model():
    spec, hyper, shape, _, _ = TINY["TIMNET"]
    return build_model(spec, shape, len(CLASSES), hyper)


@pytest.mark.parametrize("fmt, target, message", [
    # the API's names (path, format): the command line checks first and names its flags (test_bad_input.py)
    ("pt", "m.pt", "format='pt': choose one of onnx, tflite, savedmodel"),
    ("onnx", "a_file/m.onnx", "path {}/a_file/m.onnx: cannot be written"),  # its folder would be inside a file
    ("savedmodel", "a_file", "path='{}/a_file': is a file; a SavedModel is a folder"),
    ("tflite", "a_folder", "is a folder"),
    ("onnx", "m.tflite", "path='{}/m.tflite': the name of a tflite file, for format='onnx'; rename it, or give "
                         "format='tflite'"),
    ("tflite", "m.onnx", "path='{}/m.onnx': the name of an onnx file, for format='tflite'"),
    ("onnx", "a_file.txt", "path='{}/a_file.txt': not the name of an onnx file; name it .onnx"),  # was replaced
])
def test_bad_format_or_output_is_one_line(tmp_path, any_model, fmt, target, message):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_file.txt").write_text("the user's notes")
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(UserError) as error:
        export.export_model(any_model, str(tmp_path / target), fmt, {})
    assert message.format(tmp_path) in str(error.value) and "\n" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["a_file", "a_file.txt", "a_folder"]
    assert (tmp_path / "a_file.txt").read_text() == "the user's notes"


@pytest.mark.parametrize("fmt, writer", [("onnx", "_write_onnx"), ("savedmodel", "_write_saved_model")])
def test_a_failed_export_leaves_nothing_half_written(tmp_path, any_model, monkeypatch, fmt, writer):
    path = tmp_path / f"m.{fmt}"
    if fmt == "savedmodel":  # a previous export stays whole
        path.mkdir()
        (path / "saved_model.pb").write_text("previous")

    def fail_halfway(model, signature, target):
        if os.path.isdir(target):
            target = os.path.join(target, "saved_model.pb")
        with open(target, "w") as f:
            f.write("half")
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(export, writer, fail_halfway)
    with pytest.raises(RuntimeError):
        export.export_model(any_model, str(path), fmt, {})
    if fmt == "savedmodel":
        assert os.listdir(tmp_path) == [path.name] and (path / "saved_model.pb").read_text() == "previous"
    else:
        assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_a_full_disk_in_tensorflows_writer_is_one_line(tmp_path, any_model, fmt):
    """TensorFlow's SavedModel writer raises its own error (OutOfRangeError: ... File too large), not an OSError:
    it went up as a traceback where ONNX's said the disk was full."""
    path = str(tmp_path / ("m" if fmt == "savedmodel" else "m.tflite"))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2_000, hard))  # the graph is larger: the disk is "full"
    try:
        with pytest.raises(DiskFull, match=f"^{re.escape(path)}: cannot be written \\(File too large\\); nothing "
                                           "was written under this name$"):
            export.export_model(any_model, path, fmt, {})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert os.listdir(tmp_path) == []


def test_a_sidecar_that_cannot_be_written_leaves_the_previous_pair(tmp_path, any_model, monkeypatch):
    """The model was written, then left without the recipe of its input (the sidecar), of no use to anyone."""
    def write(model, signature, target):
        with open(target, "w") as f:
            f.write("model")
    monkeypatch.setattr(export, "_write_onnx", write)
    os.symlink(tmp_path / "no_such_folder" / "m.json", tmp_path / "m.onnx.json")  # the sidecar's name: a dead link
    with pytest.raises(UserError, match=r"m.onnx.json: cannot be written \(No such file or directory\); nothing was "
                                        r"written$"):
        export.export_model(any_model, str(tmp_path / "m.onnx"), "onnx", {})
    assert os.listdir(tmp_path) == ["m.onnx.json"]


@pytest.mark.parametrize("fmt", ["onnx", "savedmodel"])
def test_an_interrupt_leaves_the_previous_model_and_sidecar_together(tmp_path, any_model, monkeypatch, fmt):
    """The model and its sidecar are renamed together at the end (core/atomic_file.one_commit): a Ctrl-C while the
    model converts leaves the previous pair, and one that arrives during the renames waits for their end (a Ctrl-C
    after the model's rename left it with the previous export's sidecar)."""
    import signal
    path = str(tmp_path / ("m.onnx" if fmt == "onnx" else "m"))
    writer = "_write_onnx" if fmt == "onnx" else "_write_saved_model"

    def write(text, interrupt=None):
        def writes(model, signature, target):
            with open(target if fmt == "onnx" else os.path.join(target, "saved_model.pb"), "w") as f:
                f.write(text)
            if interrupt:
                raise interrupt
        return writes

    def pair():
        with open(path if fmt == "onnx" else os.path.join(path, "saved_model.pb")) as f, open(path + ".json") as g:
            return f.read(), json.load(g)["recipe"]
    monkeypatch.setattr(export, writer, write("old"))
    export.export_model(any_model, path, fmt, {"recipe": "old"})
    monkeypatch.setattr(export, writer, write("new", KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        export.export_model(any_model, path, fmt, {"recipe": "new"})
    assert pair() == ("old", "old")
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(path), os.path.basename(path) + ".json"])

    class Stopped(Exception):
        pass

    def stop(signum, frame):
        raise Stopped
    real_replace, sent = os.replace, []

    def signalled(source, target):  # SIGTERM at the first rename of the set: held back until the last is done
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))
        real_replace(source, target)
    monkeypatch.setattr(export, writer, write("new"))
    monkeypatch.setattr(os, "replace", signalled)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stopped):
            export.export_model(any_model, path, fmt, {"recipe": "new"})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sent and pair() == ("new", "new")


def test_a_folder_swap_interrupted_between_its_renames_keeps_the_previous_folder(tmp_path, monkeypatch):
    """The previous folder, renamed aside, was deleted with the new one when the swap did not happen."""
    from timnet_ser.core.atomic_file import atomic_directory
    path = str(tmp_path / "m")

    def write(text):
        def writes(folder):
            with open(os.path.join(folder, "saved_model.pb"), "w") as f:
                f.write(text)
        return writes
    atomic_directory(path, write("old"))
    real_replace = os.replace

    def interrupted(source, target):  # the new folder's rename, once
        if os.path.basename(source).startswith(".m.partial-") and "old" not in os.path.basename(source):
            monkeypatch.setattr(os, "replace", real_replace)
            raise KeyboardInterrupt
        real_replace(source, target)
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_directory(path, write("new"))
    assert os.listdir(tmp_path) == ["m"] and (tmp_path / "m" / "saved_model.pb").read_text() == "old"


def test_a_savedmodel_replaces_the_previous_one_and_no_other_folder(tmp_path, any_model, monkeypatch):
    """The export replaces its --output folder whole. A previous SavedModel goes; any other folder is refused: the
    export deleted it and everything in it (`--output ~/Documents`)."""
    path = tmp_path / "m"
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_text("from an older export")
    (path / "saved_model.pb").write_text("old")

    def write(model, signature, folder):
        with open(os.path.join(folder, "saved_model.pb"), "w") as f:
            f.write("new")

    monkeypatch.setattr(export, "_write_saved_model", write)
    export.export_model(any_model, str(path) + "/", "savedmodel", {})
    assert os.listdir(path) == ["saved_model.pb"] and (path / "saved_model.pb").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["m", "m.json"]
    (path / "notes.txt").write_text("the user's")
    with pytest.raises(UserError, match=r"^path='.*/m': a folder that holds other files than a SavedModel "
                                        r"\(notes.txt\); the export would replace it whole: name a new folder$"):
        export.export_model(any_model, str(path), "savedmodel", {})
    assert sorted(os.listdir(path)) == ["notes.txt", "saved_model.pb"]
    os.remove(path / "notes.txt")  # a user's file inside the folders a SavedModel has went with the folder too
    for inside in ("assets/mydata.csv", "variables/notes.txt"):
        (path / inside).parent.mkdir(exist_ok=True)
        (path / inside).write_text("the user's")
        with pytest.raises(UserError, match=f"^path='.*/m': a folder that holds other files than a SavedModel "
                                            f"\\({inside}\\)"):
            export.export_model(any_model, str(path), "savedmodel", {})
        assert (path / inside).read_text() == "the user's"
        os.remove(path / inside)


def test_the_exported_graph_holds_the_weights_as_constants():
    """Every format's graph (no recurrent layer) is traced with each weight a constant, so no writer has anything to
    freeze: no variable is read in it, and it computes the model, BatchNorm's moving statistics included."""
    import keras
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.Dense(4, name="dense"),
                              keras.layers.BatchNormalization(name="bn")])
    model.get_layer("bn").moving_variance.assign(np.full(4, 4.0, "float32"))
    traced = export._constant_function(model, [tf.TensorSpec((None, 5, 3), tf.float32, name=export.INPUT_NAME)])
    kinds = {op.type for op in traced.graph.get_operations()}
    assert not kinds & {"VarHandleOp", "ReadVariableOp"} and "Const" in kinds and not traced.captured_inputs, kinds
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_allclose(traced(tf.constant(x))[export.OUTPUT_NAME].numpy(),
                               model(x, training=False).numpy(), atol=1e-6)


@pytest.mark.parametrize("name, fmt", [("m.onnx", "onnx"), ("M.TFLITE", "tflite"), ("out/m.onnx/", "onnx"),
                                       ("out/model", "savedmodel"), ("a_folder.d", "savedmodel")])
def test_the_format_not_given_is_the_one_the_output_names(tmp_path, name, fmt):
    """It was asked for even where ``m.onnx`` said it; a folder (one there, or a name without an extension) is a
    SavedModel's."""
    (tmp_path / "a_folder.d").mkdir()
    assert export_output.export_format(str(tmp_path / name), None) == fmt


@pytest.mark.parametrize("name, fmt, api, message", [
    ("m.pt", None, True, "path='m.pt': its extension .pt names no export format; name it .onnx or .tflite (a folder "
                         "without an extension for savedmodel), or give format: one of onnx, tflite, savedmodel"),
    ("m.h5", None, False, "--output m.h5: its extension .h5 names no export format; name it .onnx or .tflite (a "
                          "folder without an extension for savedmodel), or give --format: one of onnx, tflite, "
                          "savedmodel"),
    ("m.onnx", "tflite", True, "path='m.onnx': the name of an onnx file, for format='tflite'; rename it, or give "
                               "format='onnx'"),
    ("m.tflite", "savedmodel", False, "--output m.tflite: the name of a tflite file, for --format savedmodel; rename "
                                      "it, or give --format tflite"),
])
def test_a_format_the_output_does_not_name_or_contradicts_is_one_line(name, fmt, api, message):
    with pytest.raises(UserError) as error:
        export_output.export_format(name, fmt, api)
    assert str(error.value) == message


def test_the_api_and_command_line_take_the_format_from_the_output(shared, tmp_path, capsys):
    """``Run.export(path)`` and ``--mode export --output`` without a format: the format the name says, the same
    in the console's first line and the sidecar; a name that says none is refused before the weights load."""
    import timnet_ser
    from timnet_ser.main import main
    weights = os.path.join(shared, "reference", "Test_Models", "EMODB_46")
    path = str(tmp_path / "fold1.tflite")
    assert timnet_ser.load_run(weights, data="EMODB").export(path, fold=1) == [path, path + ".json"]
    assert described(path)["format"] == "tflite" and os.path.isfile(path)
    folder = str(tmp_path / "fold1")
    assert main(["--mode", "export", "--data", "EMODB", "--test_path", weights, "--fold", "1", "--output",
                 folder]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"TIMNET EMODB weights {weights} (fold 1) -> savedmodel {folder}"
    assert described(folder)["format"] == "savedmodel" and os.path.isfile(os.path.join(folder, "saved_model.pb"))
    assert main(["--mode", "export", "--data", "EMODB", "--test_path", weights, "--output", "m.pt"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: --output m.pt: its extension .pt names no export format;"), err
