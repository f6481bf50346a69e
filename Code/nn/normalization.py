"""Per-utterance normalisation of MFCC frames, the network's first layer under ``--normalize utterance``.

Each utterance's every coefficient is standardised over its non-padded frames: ``(x - mean) / sqrt(var + eps)``;
a padded frame (zero padding from centring, or digital silence: flat in the log-Mel domain, so every coefficient
but the 0th is about 0, data/feature_statistics.py) becomes all zeros. Being part of the network, it is applied
identically by training, test, predict, the API and every exported graph; it has no weights, so the fold weight
files keep the authors' layout.
"""

from __future__ import annotations

import keras
from keras import ops

from .layer_args import check_positive_number


@keras.saving.register_keras_serializable(package="ser")
class UtteranceNormalization(keras.layers.Layer):
    """(B, T, C) MFCC frames -> the same, each utterance's coefficients standardised over its voiced frames.

    Args:
        flat: a frame whose coefficients 1.. all lie within this of 0 is padding.
        epsilon: added to the variance.
    """

    def __init__(self, flat: float = 1e-3, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        check_positive_number("UtteranceNormalization", "flat", flat)
        check_positive_number("UtteranceNormalization", "epsilon", epsilon)
        self.flat, self.epsilon = flat, epsilon

    def call(self, x):
        voiced = ops.cast(ops.max(ops.abs(x[..., 1:]), axis=-1, keepdims=True) > self.flat, x.dtype)  # (B, T, 1)
        count = ops.maximum(ops.sum(voiced, axis=1, keepdims=True), 1.0)  # (B, 1, 1)
        mean = ops.sum(x * voiced, axis=1, keepdims=True) / count  # (B, 1, C)
        variance = ops.sum(ops.square((x - mean) * voiced), axis=1, keepdims=True) / count
        return (x - mean) * ops.rsqrt(variance + self.epsilon) * voiced

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "flat": self.flat, "epsilon": self.epsilon}
