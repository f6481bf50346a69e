"""MFCC normalisation layers, the network's first layer under ``--normalize utterance`` and ``--normalize corpus``.

Each standardises every coefficient over the non-padded frames: ``(x - mean) / sqrt(var + eps)``; a padded frame
(zero padding from centring, or digital silence: flat in the log-Mel domain, so every coefficient but the 0th is
about 0, data/feature_statistics.py) becomes all zeros. ``UtteranceNormalization`` takes the mean and variance of
each utterance itself (no weights); ``CorpusNormalization`` holds those of the training fold's frames as
non-trainable weights, set once per fold before training (engine/normalization.py) and saved in the fold's weight
file. Being part of the network, both are applied identically by training, test, predict, the API and every
exported graph. (``--normalize speaker`` standardises the features before the network: engine/normalization.py.)
"""

from __future__ import annotations

import keras
from keras import ops

from .layer_args import check_positive_number


def _voiced(x, flat: float):
    """(B, T, 1): 1 for a frame whose coefficients 1.. do not all lie within ``flat`` of 0, else 0."""
    return ops.cast(ops.max(ops.abs(x[..., 1:]), axis=-1, keepdims=True) > flat, x.dtype)


class _Normalization(keras.layers.Layer):
    """The arguments and config both layers share.

    Args:
        flat: a frame whose coefficients 1.. all lie within this of 0 is padding.
        epsilon: added to the variance.
    """

    def __init__(self, flat: float = 1e-3, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        check_positive_number(type(self).__name__, "flat", flat)
        check_positive_number(type(self).__name__, "epsilon", epsilon)
        self.flat, self.epsilon = flat, epsilon

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "flat": self.flat, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="ser")
class UtteranceNormalization(_Normalization):
    """(B, T, C) MFCC frames -> the same, each utterance's coefficients standardised over its voiced frames.

    Args:
        flat: a frame whose coefficients 1.. all lie within this of 0 is padding.
        epsilon: added to the variance.
    """

    def call(self, x):
        voiced = _voiced(x, self.flat)  # (B, T, 1)
        count = ops.maximum(ops.sum(voiced, axis=1, keepdims=True), 1.0)  # (B, 1, 1)
        mean = ops.sum(x * voiced, axis=1, keepdims=True) / count  # (B, 1, C)
        variance = ops.sum(ops.square((x - mean) * voiced), axis=1, keepdims=True) / count
        return (x - mean) * ops.rsqrt(variance + self.epsilon) * voiced


@keras.saving.register_keras_serializable(package="ser")
class CorpusNormalization(_Normalization):
    """(B, T, C) MFCC frames -> the same, standardised with the mean and variance of the training fold's voiced
    frames (non-trainable weights ``mean`` and ``variance``, (C,) each; 0 and 1 until set).

    Args:
        flat: a frame whose coefficients 1.. all lie within this of 0 is padding.
        epsilon: added to the variance.
    """

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.mean = self.add_weight(shape=channels, initializer="zeros", trainable=False, name="mean")
        self.variance = self.add_weight(shape=channels, initializer="ones", trainable=False, name="variance")

    def call(self, x):
        mean, variance = ops.cast(self.mean, x.dtype), ops.cast(self.variance, x.dtype)
        return (x - mean) * ops.rsqrt(variance + self.epsilon) * _voiced(x, self.flat)
