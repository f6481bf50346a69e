"""Fold weights -> one standalone inference graph (ONNX, TFLite or SavedModel) and a JSON sidecar that says how
to make its input.

The graph is what ``--mode predict`` computes (predict.py): every fold's network, loaded from its
``<k>-fold_weights_best_<i>.hdf5``, applied to the same input, and the mean of their softmax outputs. TIM-Net
computes the M folds in one pass, each operation over their weights stacked on a leading fold axis
(``FoldsInOnePass``, ``ModelSpec.one_pass_export``), so the graph is one fold's size whatever M::

    features (B, T, 39) ─ repeated (M, B, T, 39) ─ network over the stacked weights ─ (M, B, C) ─ mean -> (B, C)

GM-TCNet, DCNN-BLSTMwA and a model with a normalisation layer hold a copy of the network per fold::

    features (B, T, 39) MFCC, or (B, S, 64, 64, 3) log-Mel segments
      ├─ fold_1: network ─ Dense(C, softmax) ─┐
      ├─ fold_2: network ─ Dense(C, softmax) ─┼─ Average -> probabilities (B, C)
      └─ …                                   ─┘

Input ``features`` float32, output ``probabilities`` float32, in every format, with a free batch axis (one
exception: see ``export_model``). The artefact runs without this project: the sidecar ``<output>.json`` (beside
the file or the SavedModel folder, named by appending ``.json`` to ``--output``) holds the classes in column
order, the sample rate, the signal length, the feature recipe, the input and output names and shapes, and how
to score a file longer than one input window by window (``timeline``: timeline.py's windows and silence rule).

Routes (TensorFlow 2.21, Keras 3): one graph traced with the weights as constants (``_constant_function``), which
tf2onnx converts to ONNX and TensorFlow saves as a SavedModel (its variables folder empty); TFLite from that
SavedModel with the built-in operators only (``TFLiteConverter.from_keras_model`` fails on Keras 3 models). A model
with an LSTM (DCNN-BLSTMwA) keeps its variables: ONNX from a ``tf.function`` that tf2onnx freezes, the SavedModel
through Keras' ``ExportArchive``. The causal convolutions are matrix products and pads (causal_conv.py), so no
exporter meets a dilated convolution.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Optional

import keras
import tensorflow as tf

from ..core import precision
from ..core.atomic_file import atomic_directory, atomic_write, one_commit
from ..core.errors import UserError
from ..data.corpora import SAMPLE_RATE
from ..data.feature_statistics import EPSILON, FLAT
from ..data.features import FMAX, FMIN, HOP_LENGTH, N_FFT, N_MELS, N_MFCC, SEGMENT_FRAMES, SEGMENT_HOP, WIN_LENGTH
from ..engine.fold_weights import FoldWeights
from ..engine.protocol import PROTOCOLS
from ..engine.stacked_training import computes_stacked, stacked_inference
from ..Model import ModelSpec
from ..nn import fused_ops
from . import timeline
from .export_output import check_output

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
ENDPOINT = "serve"  # the SavedModel signature and the TFLite signature runner
ONNX_OPSET = 17  # run by ONNX Runtime >= 1.11 and most other ONNX runtimes


def fold_mean_model(weights: FoldWeights, indices: Sequence[int] | None = None) -> keras.Model:
    """One model computing every fold's network on the same input and returning the mean of their softmax outputs.

    TIM-Net computes the folds in one network whose every operation has a leading fold axis (``FoldsInOnePass``);
    GM-TCNet, DCNN-BLSTMwA and a model with a normalisation layer hold a copy of the network per fold.

    Args:
        weights: the run's checked fold weights (engine/fold_weights.py).
        indices: which of ``weights.folds`` (default: all); one gives that fold's softmax.

    Returns:
        A model with input ``features`` (B, *input_shape) and output ``probabilities`` (B, C); the copies, where
        there are copies, are the sub-models ``fold_<i>``.
    """
    indices = list(range(len(weights.folds))) if indices is None else list(indices)
    if not indices:
        raise ValueError("fold_mean_model: indices must name at least one fold, received indices=[]")
    name = (f"{weights.spec.name}_fold_{weights.folds[indices[0]][0]}" if len(indices) == 1
            else f"{weights.spec.name}_mean_of_{len(indices)}_folds")
    inputs = keras.Input(weights.input_shape, name=INPUT_NAME)  # (B, T, 39); (B, S, 64, 64, 3)
    if weights.spec.one_pass_export and computes_stacked(weights.model):
        values = []  # per fold, in variable order
        for i in indices:
            with weights.loaded(i) as model:
                values.append([v.numpy() for v in model.variables])
        infer = stacked_inference(weights.model, values)
        outputs = FoldsInOnePass(infer, len(indices), weights.num_classes, name=OUTPUT_NAME)(inputs)  # (B, C)
    elif len(indices) == 1:
        outputs = keras.layers.Identity(name=OUTPUT_NAME)(weights.copy(indices[0])(inputs))
    else:
        fold_outputs = [weights.copy(i)(inputs) for i in indices]  # C each (B, C)
        outputs = keras.layers.Average(name=OUTPUT_NAME)(fold_outputs)  # (B, C)
    return keras.Model(inputs, outputs, name=name)


class FoldsInOnePass(keras.layers.Layer):
    """The mean over M folds of one network's softmax, computed in one pass: the input repeated along a leading
    fold axis, every operation over the folds' stacked weights (engine/stacked_training.py's inference: a
    convolution is one batched product (M, B*T, C) @ (M, C, F), TIM-Net's BatchNorms folded into them). The graph
    has one fold's operations, not M copies, which is what the exporters' time grows with (docs/predict.md).

    The folds' values are constants of ``infer``, not variables: the layer is built by ``fold_mean_model`` and
    traced or called, never saved as a Keras layer.

    Args:
        infer: ``stacked_training.stacked_inference``'s function, (M, B, T, C) -> (M, B, classes).
        folds: M.
        classes: the number of output columns.
    """

    def __init__(self, infer: Callable, folds: int, classes: int, **kwargs):
        super().__init__(**kwargs)
        if folds < 1 or classes < 1:
            raise ValueError(f"FoldsInOnePass: folds and classes must be positive, received folds={folds}, "
                             f"classes={classes}")
        self.infer, self.folds, self.classes = infer, folds, classes

    def call(self, features):  # (B, T, C)
        repeated = tf.tile(features[None], [self.folds] + [1] * features.shape.rank)  # (M, B, T, C)
        return tf.reduce_mean(self.infer(repeated), axis=0)  # (M, B, classes) -> (B, classes)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)


def export_model(model: keras.Model, path: str, fmt: Optional[str], sidecar: dict,
                 weights_folder: Optional[str] = None) -> list[str]:
    """Write ``model`` as ``fmt`` at ``path`` and the sidecar at ``path + ".json"``; returns both paths.

    ``fmt``: onnx (a file), tflite (a file) or savedmodel (a folder); None: the one ``path`` names
    (export_output.export_format). The batch axis is free, except in the TFLite
    file of a model with a recurrent layer (DCNN-BLSTMwA): TFLite lowers a Keras LSTM's loop only with a static
    batch, so that file takes one utterance per call; the sidecar's shapes say which. Each output is written beside
    its final name and then renamed, so an interrupted export leaves nothing half-written under either name.
    ``weights_folder``: the folder the model's weights come from, which the output must not lie in (None: a model
    from memory).
    """
    path = os.path.normpath(path)  # "out/model/" names the folder "out/model"
    fmt = check_output(path, fmt, weights_folder, make=True)
    batch = 1 if fmt == "tflite" and _has_recurrent_layer(model) else None
    signature = [tf.TensorSpec((batch, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
    # --output and its sidecar, named after it by the user: written through a link there (atomic_write)
    writers = {"onnx": lambda: atomic_write(path, lambda tmp: _write_onnx(model, signature, tmp), follow_link=True),
               "tflite": lambda: atomic_write(path, lambda tmp: _write_tflite(model, signature, tmp), follow_link=True),
               "savedmodel": lambda: atomic_directory(path, lambda tmp: _write_saved_model(model, signature, tmp))}
    sidecar_path = path + ".json"
    described = {**sidecar, "format": fmt, "artefact": os.path.basename(path),
                 **{key: {**sidecar[key], "shape": [batch, *sidecar[key]["shape"][1:]]}
                    for key in ("input", "output") if key in sidecar}}
    # the model and its sidecar are renamed into place together (one_commit): an interrupt or a failure leaves the
    # previous pair or the new one (an interrupt after the model's rename left it with the old sidecar)
    with one_commit():
        try:  # the sidecar first: a name it cannot take is said before the model's seconds of conversion
            atomic_write(sidecar_path, lambda tmp: _write_json(tmp, described), follow_link=True)
        except OSError as exc:
            raise UserError(f"{sidecar_path}: cannot be written ({exc.strerror or exc}); nothing was written") \
                from None
        try:
            with _quiet_tensorflow():
                writers[fmt]()
        except OSError as exc:
            raise UserError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    return [path, sidecar_path]


def _has_recurrent_layer(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.RNN) for layer in model._flatten_layers())  # nested ones too


def _serve(model: keras.Model) -> Callable:
    """features -> {"probabilities": ...} in inference mode: the dict key names the output in every format. Through
    the Keras layers, never the fused ops (nn/fused_ops.py): an exported graph runs without our library."""
    def serve(features):
        with fused_ops.enabled(False):
            return {OUTPUT_NAME: model(features, training=False)}
    return serve


def _write_saved_model(model: keras.Model, signature: list, folder: str) -> None:
    if not _has_recurrent_layer(model):
        tf.saved_model.save(tf.Module(), folder, signatures={ENDPOINT: _constant_function(model, signature)})
        return
    archive = keras.export.ExportArchive()
    # No archive.track(model): the endpoint's variables are kept all the same (write_out collects what the
    # endpoint reads), while tracking the model makes TensorFlow trace every layer's call again for the
    # SavedModel, which halves the speed of this export and of the TFLite conversion that reads it.
    archive.add_endpoint(ENDPOINT, _serve(model), input_signature=signature)
    archive.write_out(folder, verbose=False)


def _write_tflite(model: keras.Model, signature: list, path: str) -> None:
    # Through a SavedModel: TFLiteConverter.from_keras_model fails on Keras 3 models.
    with tempfile.TemporaryDirectory() as saved_model:
        _write_saved_model(model, signature, saved_model)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[ENDPOINT])
        # the default operator set, TFLite's built-ins only: no Flex (TensorFlow) ops that the plain LiteRT
        # runtime lacks; a model that needs one fails here rather than on the device
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)


def _write_onnx(model: keras.Model, signature: list, path: str) -> None:
    import tf2onnx  # only this format needs it
    # tf2onnx deep-copies the whole graph before each optimizer pass, to skip a pass that fails; the copies cost
    # two thirds of a TIM-Net fold's conversion. A failing pass then raises instead.
    with _environment(TF2ONNX_CATCH_ERRORS="FALSE"):
        if _has_recurrent_layer(model):  # tf2onnx freezes the weights' reads itself
            function = tf.function(_serve(model), input_signature=signature, autograph=False)
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=ONNX_OPSET)
        else:
            traced = _constant_function(model, signature)
            [given], [returned] = [t.name for t in traced.inputs], [t.name for t in traced.outputs]
            proto, _ = tf2onnx.convert.from_graph_def(traced.graph.as_graph_def(), input_names=[given],
                                                      output_names=[returned], opset=ONNX_OPSET,
                                                      tensors_to_rename={given: INPUT_NAME, returned: OUTPUT_NAME})
    for value in (*proto.graph.input, *proto.graph.output):  # tf2onnx calls the free batch axis "unk__<n>"
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def _constant_function(model: keras.Model, signature: list):
    """``_serve(model)`` traced once with its weights as constants (Keras' StatelessScope reads each variable as the
    constant mapped to it): a graph with nothing to freeze, which each format writes as it is. Traced with the
    variables, TensorFlow's SavedModel traces the layers again to save them, and tf2onnx and the TFLite converter
    copy the whole graph to freeze their reads (docs/predict.md measures the difference). A recurrent layer's loop
    (DCNN-BLSTMwA) keeps the variables: each writer above freezes its reads itself."""
    values = [(variable, variable.numpy()) for variable in model.variables]
    serve = _serve(model)

    def frozen(features):
        with keras.StatelessScope(state_mapping=[(variable, tf.constant(value)) for variable, value in values]):
            return serve(features)

    return tf.function(frozen, input_signature=signature, autograph=False).get_concrete_function()


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


@contextlib.contextmanager
def _environment(**variables: str):
    """Environment variables set for the block only (tf2onnx reads its switches from the environment)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _quiet_tensorflow():
    """The exporters' Python warnings and INFO logs (tf2onnx's, TensorFlow's) hidden; errors still raise."""
    loggers = [logging.getLogger(name) for name in ("tensorflow", "tf2onnx", "absl")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def sidecar_for(spec: ModelSpec, data: str, classes: Sequence[str], signal_length: int, input_shape: Sequence[int],
                folds: Sequence[int], weights: str, normalize: str = "none",
                mixed_precision: bool | str = False, protocol: Optional[str] = None) -> dict:
    """What a consumer needs to make the input and read the output of the exported graph.

    Args:
        spec: the model.
        data: the corpus key the weights were trained on.
        classes: the labels in the order of the output columns.
        signal_length: samples every utterance is centred to.
        input_shape: one sample's shape, (T, 39) or (S, 64, 64, 3).
        folds: the fold numbers averaged.
        weights: the folder of weight files (only its name is recorded).
        normalize: the run's --normalize (``NORMALIZATION`` says what the graph expects).
        mixed_precision: the run's --mixed_precision: the graph computes in float32 whatever the run did, and says so.
        protocol: what chose each fold's weights (--protocol; None: not known): a graph of weights selected on their
            test folds says so to whoever serves it, as every output of the run does.
    """
    trained = precision.title_note(mixed_precision)
    return {
        "model": spec.name,
        "paper": spec.paper,
        "data": data,
        "weights": os.path.basename(os.path.normpath(weights)),
        "folds_averaged": [int(f) for f in folds],
        "weights_chosen_by": PROTOCOLS[protocol] if protocol in PROTOCOLS else "not known (no run.json)",
        "classes": [str(c) for c in classes],
        "sample_rate": SAMPLE_RATE,
        "signal_length": int(signal_length),
        "features": feature_recipe(spec.features),
        "timeline": timeline.recipe(signal_length),
        "input": {"name": INPUT_NAME, "shape": [None, *(int(d) for d in input_shape)], "dtype": "float32",
                  "normalize": {"mode": normalize, "rule": NORMALIZATION[normalize]}},
        "output": {"name": OUTPUT_NAME, "shape": [None, len(classes)], "dtype": "float32",
                   "meaning": "mean over the folds of each fold's softmax; columns in the order of classes"},
        "signature": {"name": ENDPOINT, "meaning": "the SavedModel's signature and the TFLite file's signature runner "
                                                   "that take the input and return the output by these names"},
        "compute": "float32" + (f" (the run trained and was tested in {trained.lower()}: a prediction near a class "
                                "boundary can differ from the run's and from predict's)" if trained else ""),
    }


def export_run(run, weight_files: Sequence[str], path: str, fmt: Optional[str]) -> list[str]:
    """``api.Run.export``: the fold-mean graph of the run's files ``weight_files`` (paths among ``run.folds``),
    exported as ``fmt`` (None: the one ``path`` names) at ``path`` with its sidecar; returns the paths written."""
    indices = [i for i, (_, file, _) in enumerate(run.folds) if file in weight_files]
    model = fold_mean_model(run.weights, indices)
    sidecar = sidecar_for(run.spec, run.data, run.classes, run.signal_length, run.input_shape,
                          [run.folds[i][0] for i in indices], run.folder, run.normalize, run.mixed_precision,
                          run.protocol)
    return export_model(model, path, fmt, sidecar, run.folder)


# what the graph expects of its input under each --normalize (engine/normalization.py)
NORMALIZATION = {
    "none": "the features as the steps make them",
    "utterance": "the features as the steps make them; the graph standardises each utterance itself",
    "corpus": "the features as the steps make them; the graph standardises them with the training corpus' "
              "statistics it holds",
    "speaker": "the features STANDARDISED BY SPEAKER before the graph: per coefficient c, mean[c] and var[c] over "
               f"the voiced frames of all that speaker's inputs (a frame is voiced when one of its coefficients "
               f"1..38 lies more than {FLAT:g} from 0), then x[t, c] = (x[t, c] - mean[c]) / sqrt(var[c] + "
               f"{EPSILON:g}) on voiced frames and 0 on the others; timnet_ser: Run.speaker_statistics and "
               "Run.model_inputs",
}
_LOAD_AND_CENTRE = [
    "librosa.load(path) at its defaults: the file's samples as floats (integer PCM divided by 2^(bits - 1), 8-bit "
    "unsigned PCM centred on 128 first, as soundfile reads them), its channels averaged (mono), resampled to "
    "sample_rate by res_type's resampler",
    "centre to signal_length samples L: a shorter signal of s samples gets floor((L - s) / 2) zeros on the left "
    "and the rest on the right; a longer one keeps signal[p:p + L], p = floor((s - L) / 2)",
]


def feature_recipe(kind: str) -> dict:
    """The steps from a wav file to one input row, as data/features.py computes them (SPEC §1), with the
    installed librosa's defaults read from its signatures."""
    import librosa
    version = importlib.metadata.version("librosa")
    decoding = _defaults(librosa.load, "mono", "res_type")  # _LOAD_AND_CENTRE's first step, for either kind
    if kind == "mfcc":
        stft = _defaults(librosa.feature.melspectrogram, "n_fft", "hop_length", "window", "center", "pad_mode",
                         "power")
        return {"kind": "mfcc", "librosa": version, "steps": [
            *_LOAD_AND_CENTRE,
            f"librosa.feature.mfcc(y=signal, sr=sample_rate, n_mfcc={N_MFCC}) with every other argument at its "
            "default, that is: a mel power spectrogram (n_fft, hop_length, window, center, pad_mode, power; mel "
            "filters n_mels, fmin, fmax (null: sample_rate / 2), htk, mel_norm), librosa.power_to_db (ref, amin, "
            "top_db), a DCT (dct_type, norm, lifter); transposed to (frames, n_mfcc); no normalisation",
        ], **decoding,
            "n_mfcc": N_MFCC, **stft, **_defaults(librosa.filters.mel, "n_mels", "fmin", "fmax", "htk"),
            **_defaults(librosa.power_to_db, "ref", "amin", "top_db"),
            **_defaults(librosa.feature.mfcc, "mel_norm", "dct_type", "norm", "lifter")}
    if kind == "logmel3":
        return {"kind": "logmel3", "librosa": version, "steps": [
            *_LOAD_AND_CENTRE,
            f"power = librosa.feature.melspectrogram(y=signal, sr=sample_rate, n_fft={N_FFT}, "
            f"hop_length={HOP_LENGTH}, win_length={WIN_LENGTH}, window='hamming', n_mels={N_MELS}, fmin={FMIN:g}, "
            f"fmax={FMAX:g}), (n_mels, frames)",
            "static = librosa.power_to_db(power) at its defaults",
            "channels = [static, librosa.feature.delta(static), librosa.feature.delta(static, order=2)] "
            "stacked on a last axis and transposed to (frames, n_mels, 3)",
            f"segments of {SEGMENT_FRAMES} frames starting every {SEGMENT_HOP} frames (frames 0-{SEGMENT_FRAMES - 1}, "
            f"{SEGMENT_HOP}-{SEGMENT_HOP + SEGMENT_FRAMES - 1}, ...), stacked to (segments, {SEGMENT_FRAMES}, "
            f"{N_MELS}, 3); trailing frames that fill no segment are dropped",
        ], **decoding,
            "n_mels": N_MELS, "n_fft": N_FFT, "hop_length": HOP_LENGTH, "win_length": WIN_LENGTH,
            "window": "hamming", "fmin": FMIN, "fmax": FMAX, "segment_frames": SEGMENT_FRAMES,
            "segment_hop": SEGMENT_HOP, **_defaults(librosa.power_to_db, "ref", "amin", "top_db"),
            **_defaults(librosa.feature.delta, "width")}
    raise ValueError(f"feature_recipe: kind must be 'mfcc' or 'logmel3', received kind={kind!r}")


def _defaults(function, *names: str) -> dict:
    parameters = inspect.signature(function).parameters
    return {name: parameters[name].default for name in names}
