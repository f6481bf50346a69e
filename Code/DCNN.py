"""DCNN-BLSTMwA (Zhang et al., Frontiers in Physiology 12:643202, 2021) as Keras 3 layers.

An utterance arrives as S log-Mel segments of 64 frames x 64 mel bands x 3 channels (static, delta,
delta-delta; data/features.py, ``--features logmel3``). The paper's pipeline, as its abstract gives it:

    segments (B, S, 64, 64, 3) ─ standardise per utterance and channel
        ─ the same ImageNet CNN on every segment (TimeDistributed)  → segment features (B, S, D)
        ─ bidirectional LSTM over the segments                      → (B, S, 2H)
        ─ attention: softmax weights over the segments, weighted sum → (B, 2H)
        ─ dense layers with dropout                                 → (B, 128); the softmax Dense is Model.py's

The paper's CNN is AlexNet pretrained on ImageNet, which Keras does not ship; the backbone is a
Keras Applications network instead (``BACKBONES``). What else differs from the paper, and why, is in
docs/dcnn_blstmwa.md. This file knows nothing about data, files or the command line.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Optional

import keras
from keras import ops

from .nn.layer_args import BACKBONE_WIDTH, check_backbone, check_positive_int, check_positive_number, check_rate

# name -> the Keras Applications constructor; both expect ImageNet inputs scaled to [-1, 1] (their
# preprocess_input mode "tf"). Which of them has MobileNet's width multiplier is nn/layer_args.BACKBONE_WIDTH's.
BACKBONES = {
    "mobilenetv2": keras.applications.MobileNetV2,
    "resnet50v2": keras.applications.ResNet50V2,
}
INPUT_SCALE = 0.5  # standardised values times 0.5: +-2 standard deviations span the [-1, 1] of ImageNet inputs
# BatchNorm momentum of every backbone layer: 0.9 (PyTorch's default, 0.1 in its convention) instead of Keras'
# 0.99 (0.999 in MobileNetV2), which suit ImageNet's million steps. An EMO-DB fold takes 16 steps per epoch,
# the moving variances start at 1, and a freshly initialised MobileNetV2's depthwise layers have activation
# variances near 0.005: with 0.99 the start still dominated after 180 steps (measured: every test utterance
# got the same class while the training batches were 59 % right); 0.9 forgets it within some 50 steps.
BN_MOMENTUM = 0.9


class BackboneWeightsError(ValueError):
    """The backbone's pretrained weights could not be obtained or do not fit it."""


def build_backbone(backbone: str, alpha: float = 1.0, weights: Optional[str] = None,
                   image_size: int = 64) -> keras.Model:
    """The Keras Applications CNN without its classifier, average-pooled: (N, size, size, 3) -> (N, D).

    Args:
        backbone: a key of ``BACKBONES``.
        alpha: MobileNetV2's width multiplier (1.0 for the others).
        weights: "imagenet" (downloaded once into ~/.keras/models), None (random), or a weights file
            (a Keras ``.weights.h5`` or the ``..._no_top.h5`` file Keras downloads).
        image_size: side of the square input. ImageNet weights trained at 224 pixels load at any size:
            convolution weights do not depend on it (Keras' warning about it is silenced).

    Every BatchNormalization layer gets momentum ``BN_MOMENTUM``.

    Raises:
        BackboneWeightsError: the ImageNet file cannot be downloaded, or the file does not fit.
    """
    check_backbone("build_backbone", backbone, alpha, weights, image_size)
    constructor, has_alpha = BACKBONES[backbone], BACKBONE_WIDTH[backbone]
    kwargs = {"alpha": float(alpha)} if has_alpha else {}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input_shape. is undefined or non-square.*")
            # a .weights.h5 file: Keras warns once per weightless internal container of the Functional model
            warnings.filterwarnings("ignore", message="Skipping nested container")
            model = constructor(include_top=False, weights=weights, input_shape=(image_size, image_size, 3),
                                pooling="avg", name=f"{backbone}_backbone", **kwargs)
    except Exception as exc:  # urllib, h5py and Keras raise many types; all mean "these weights are unusable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if weights == "imagenet":
            raise BackboneWeightsError(f"cannot download the ImageNet weights of {backbone} ({reason})") from None
        raise BackboneWeightsError(f"does not fit the {backbone} backbone ({reason})") from None
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


@keras.saving.register_keras_serializable(package="ser")
class UtteranceStandardization(keras.layers.Layer):
    """Log-Mel segments to the value range of ImageNet inputs, without statistics learned from data.

    Each channel (static, delta, delta-delta) of each utterance is standardised over all its segments,
    frames and mel bands, then multiplied by ``scale``. Per utterance, not per segment, so that loudness
    differences between the segments of an utterance survive; the absolute level does not. The paper
    gives no normalisation (docs/dcnn_blstmwa.md).

    Args:
        scale: factor after standardisation (0.5: +-2 standard deviations span [-1, 1]).
        epsilon: added to the standard deviation (a silent channel becomes zeros).
    """

    def __init__(self, scale: float = INPUT_SCALE, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("scale", scale), ("epsilon", epsilon)):
            check_positive_number("UtteranceStandardization", arg, value)
        self.scale, self.epsilon = float(scale), float(epsilon)

    def call(self, x):  # (B, S, 64, 64, 3) -> (B, S, 64, 64, 3)
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)  # (B, 1, 1, 1, 3)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)  # (B, 1, 1, 1, 3)
        return (x - mean) / (std + self.epsilon) * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="ser")
class SegmentCNN(keras.layers.Layer):
    """The same pretrained CNN on every segment (the paper's "segment-level features", §2).

    ``TimeDistributed`` in effect, computed as one batch of B·S images: Keras 3's ``TimeDistributed``
    unrolls a copy of the backbone per segment into the graph (12 for EMO-DB, 43 for IEMOCAP).
    BatchNorm therefore sees all B·S segments of a batch at once.

    Args:
        backbone: a key of ``BACKBONES`` (the paper: AlexNet, which Keras does not have).
        alpha: MobileNetV2's width multiplier (1.0 for the others).
        weights: "imagenet", None, or a weights file (see ``build_backbone``).
        image_size: segments are resized bilinearly to image_size² first (64: no resizing; the paper
            resized to AlexNet's 227²).
    """

    def __init__(self, backbone: str = "mobilenetv2", alpha: float = 1.0, weights: Optional[str] = "imagenet",
                 image_size: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.backbone_name, self.alpha, self.weights_source, self.image_size = backbone, float(alpha), weights, \
            image_size
        self.backbone = build_backbone(backbone, alpha, weights, image_size)
        self.resize = None if image_size == 64 else keras.layers.Resizing(image_size, image_size, "bilinear",
                                                                          name="resize")
        self.features = int(self.backbone.output_shape[-1])

    def build(self, input_shape):
        if tuple(input_shape[2:]) != (64, 64, 3):
            raise ValueError(f"SegmentCNN: input must be (B, S, 64, 64, 3) log-Mel segments, "
                             f"received input_shape={tuple(input_shape)!r}")

    def call(self, x, training=None):  # (B, S, 64, 64, 3) -> (B, S, D)
        segments = ops.shape(x)[1]
        images = ops.reshape(x, (-1, 64, 64, 3))  # (B·S, 64, 64, 3)
        if self.resize is not None:
            images = self.resize(images)  # (B·S, size, size, 3)
        features = self.backbone(images, training=training)  # (B·S, D)
        return ops.reshape(features, (-1, segments, self.features))  # (B, S, D)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.features)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone_name, "alpha": self.alpha,
                "weights": self.weights_source, "image_size": self.image_size}


@keras.saving.register_keras_serializable(package="ser")
class AttentionPooling(keras.layers.Layer):
    """Soft attention over the segments (the paper's attention layer; its exact form is our choice,
    docs/dcnn_blstmwa.md).

    e_s = v · tanh(W h_s + b),  a = softmax_s(e),  output = sum_s a_s h_s  (additive attention).

    Args:
        units: size of the attention's hidden layer (columns of W).
    """

    def __init__(self, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("AttentionPooling", "units", units)
        self.units = units

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(channels, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.context = self.add_weight(name="context", shape=(self.units,), initializer="glorot_uniform")

    def scores(self, h):  # (B, S, C) -> (B, S): the attention weights, summing to 1 over the segments
        energy = ops.tensordot(ops.tanh(ops.tensordot(h, self.kernel, 1) + self.bias), self.context, 1)  # (B, S)
        return ops.softmax(energy, axis=-1)

    def call(self, h):  # (B, S, C) -> (B, C)
        return ops.sum(h * self.scores(h)[..., None], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="ser")
class DCNNBLSTMwA(keras.layers.Layer):
    """The whole DCNN-BLSTMwA network up to (not including) its softmax classifier.

    Args:
        backbone: the segment CNN, a key of ``BACKBONES``.
        alpha: MobileNetV2's width multiplier (1.0 for the others).
        weights: the backbone's initial weights: "imagenet", None (random) or a weights file.
        image_size: side the 64x64 segments are resized to before the CNN (64: not resized).
        lstm_units: LSTM units per direction.
        attention_units: hidden size of the attention.
        dense_units: the fully connected layers after the attention, ReLU, each followed by dropout.
        dropout_rate: rate of those dropouts.
    """

    def __init__(self, backbone: str = "mobilenetv2", alpha: float = 1.0, weights: Optional[str] = "imagenet",
                 image_size: int = 64, lstm_units: int = 128, attention_units: int = 128,
                 dense_units: Sequence[int] = (256, 128), dropout_rate: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("lstm_units", lstm_units), ("attention_units", attention_units)):
            check_positive_int("DCNNBLSTMwA", arg, value)
        if not dense_units:
            raise ValueError(f"DCNNBLSTMwA: dense_units must list at least one layer, received "
                             f"dense_units={dense_units!r}")
        for value in dense_units:
            check_positive_int("DCNNBLSTMwA", "dense_units", value)
        check_rate("DCNNBLSTMwA", "dropout_rate", dropout_rate)
        check_backbone("DCNNBLSTMwA", backbone, alpha, weights, image_size)
        self.lstm_units, self.attention_units = lstm_units, attention_units
        self.dense_units, self.dropout_rate = tuple(dense_units), float(dropout_rate)
        self.standardize = UtteranceStandardization(name="standardize")
        self.segment_cnn = SegmentCNN(backbone, alpha, weights, image_size, name="segment_cnn")
        self.bilstm = keras.layers.Bidirectional(keras.layers.LSTM(lstm_units, return_sequences=True, name="lstm"),
                                                 name="bilstm")
        self.attention = AttentionPooling(attention_units, name="attention")
        self.dense = [keras.layers.Dense(units, activation="relu", name=f"dense_{i + 1}")
                      for i, units in enumerate(self.dense_units)]
        self.dropout = [keras.layers.Dropout(self.dropout_rate, name=f"dropout_{i + 1}")
                        for i in range(len(self.dense_units))]

    def build(self, input_shape):
        segments = tuple(input_shape[:2])  # (B, S)
        self.segment_cnn.build(tuple(input_shape))
        self.bilstm.build((*segments, self.segment_cnn.features))
        self.attention.build((*segments, 2 * self.lstm_units))
        width = 2 * self.lstm_units
        for dense in self.dense:
            dense.build((input_shape[0], width))
            width = dense.units

    def sequence(self, x, training=None):  # (B, S, 64, 64, 3) -> (B, S, 2H): the BiLSTM's output per segment
        return self.bilstm(self.segment_cnn(self.standardize(x), training=training), training=training)

    def call(self, x, training=None):  # (B, S, 64, 64, 3) -> (B, dense_units[-1])
        h = self.attention(self.sequence(x, training=training))  # (B, 2H)
        for dense, dropout in zip(self.dense, self.dropout):
            h = dropout(dense(h), training=training)
        return h

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dense_units[-1])

    def legacy_weight_groups(self) -> list:
        """(name, variables) per weighted sub-layer, so that no two variables of a group share a name.

        The backbone's layers keep their Keras Applications names (unique within it); the BiLSTM is split
        into its two directions.
        """
        groups = [(layer.name, list(layer.weights)) for layer in self.segment_cnn.backbone.layers if layer.weights]
        groups += [(f"{self.name}_bilstm_forward", list(self.bilstm.forward_layer.weights)),
                   (f"{self.name}_bilstm_backward", list(self.bilstm.backward_layer.weights)),
                   (f"{self.name}_attention", list(self.attention.weights))]
        groups += [(f"{self.name}_{dense.name}", list(dense.weights)) for dense in self.dense]
        return groups

    def get_config(self):
        cnn = self.segment_cnn
        return {**super().get_config(), "backbone": cnn.backbone_name, "alpha": cnn.alpha,
                "weights": cnn.weights_source, "image_size": cnn.image_size, "lstm_units": self.lstm_units,
                "attention_units": self.attention_units, "dense_units": list(self.dense_units),
                "dropout_rate": self.dropout_rate}
