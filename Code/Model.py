"""One builder per model: network + softmax head + its paper's training recipe.

``MODELS`` maps the name typed after ``--model`` to a ``ModelSpec``. Everything the engine
(``Common_Model.py``) needs from a model is here: how to build it from the hyper-parameters,
the recipe that sets the command line's defaults, and the order in which its weights map to
the authors' legacy ``.hdf5`` files. Adding a model means a network file and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np

from GTCM import GTCM
from TIMNET import TIMNET, WeightLayer


@dataclass(frozen=True)
class Recipe:
    """A paper's training settings; each is a command-line default that a flag overrides."""

    epochs: int
    label_smoothing: float  # applied to a copy of the training labels only
    lr: float = 0.001
    beta1: float = 0.93
    beta2: float = 0.98
    epsilon: float = 1e-8  # the authors pass 1e-8; Keras 3's default is 1e-7
    batch_size: int = 64


@dataclass(frozen=True)
class Hyper:
    """Network hyper-parameters from the command line (the original's flag names)."""

    filter_size: int = 39
    kernel_size: int = 2
    dilation_size: int = 8  # TIM-Net: number of TABs per direction
    stack_size: int = 1
    dropout: float = 0.1
    activation: str = "relu"


def _timnet(hyper: Hyper) -> list[keras.layers.Layer]:
    return [TIMNET(hyper.filter_size, hyper.kernel_size, hyper.dilation_size, hyper.stack_size, hyper.dropout,
                   hyper.activation, name="timnet"),
            WeightLayer(name="weight_layer")]


def _gmtcn(hyper: Hyper) -> list[keras.layers.Layer]:
    return [GTCM(filters=hyper.filter_size, kernel_size=hyper.kernel_size, name="gtcm")]


@dataclass(frozen=True)
class ModelSpec:
    """A model as the engine sees it.

    Args:
        name: the ``--model`` value.
        paper: citation shown in results.
        network: hyper-parameters -> the layers between the input and the softmax Dense.
        recipe: the paper's training settings.
        protocol_note: how the original chose its published weights.
    """

    name: str
    paper: str
    network: Callable[[Hyper], list]
    recipe: Recipe
    protocol_note: str


MODELS: dict[str, ModelSpec] = {
    "TIMNET": ModelSpec("TIMNET", "Ye et al., TIM-Net, ICASSP 2023", _timnet,
                        Recipe(epochs=500, label_smoothing=0.1),
                        "published weights selected on the test fold before Aug 2023; last epoch since"),
    "GMTCN": ModelSpec("GMTCN", "Ye et al., GM-TCNet, Speech Communication 145, 2022", _gmtcn,
                       Recipe(epochs=300, label_smoothing=0.0),
                       "the original always selected the epoch on the test fold"),
}


def build_model(spec: ModelSpec, input_shape: tuple, num_classes: int, hyper: Hyper) -> keras.Model:
    """Input (one sample's shape, e.g. (T, 39)) -> network -> Dense(C, softmax); layer names are deterministic."""
    inputs = keras.Input(tuple(input_shape), name="features")  # (B, T, 39) for the MFCC models
    x = inputs
    for layer in spec.network(hyper):
        x = layer(x)  # TIM-Net: (B, n, 39) then (B, 39); GM-TCNet: (B, 39)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="dense")(x)  # (B, C)
    return keras.Model(inputs, outputs, name=spec.name)


def embedding_model(model: keras.Model) -> keras.Model:
    """The same graph returning (embedding before the Dense, softmax): TIM-Net's fusion, GM-TCNet's pooling."""
    return keras.Model(model.inputs, [model.get_layer("dense").input, model.outputs[0]])


def legacy_weight_groups(model: keras.Model) -> list:
    """(layer name, variables) of ``model`` in the order of the authors' Keras-2 weight files."""
    groups = []
    for layer in model.layers:
        if hasattr(layer, "legacy_weight_groups"):
            groups.extend(layer.legacy_weight_groups())
        elif layer.weights:
            groups.append((layer.name, list(layer.weights)))
    return groups


def predict_in_batches(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Softmax outputs (N, C) in inference mode, batch by batch: no tf.data pipeline, no progress bar."""
    return np.concatenate([np.asarray(model(x[s:s + batch_size], training=False))
                           for s in range(0, len(x), batch_size)])
