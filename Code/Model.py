"""One builder per model: network + softmax head + its paper's training recipe.

``MODELS`` maps the name typed after ``--model`` to a ``ModelSpec``. Everything the engine
(``Common_Model.py``) needs from a model is here: how to build it from the hyper-parameters,
the recipe that sets the command line's defaults, and the order in which its weights map to
the authors' legacy ``.hdf5`` files. Adding a model means a network file, one entry here, its recipe in
``core/config.RECIPES`` and its name in ``core/flags.MODEL_NAMES`` (the flag's choices, checked against this
registry by tests/test_flags_table.py). Which faster paths compute it (stacked training, fused ops, a one-pass
export) are flags of its entry, each path's own code aside.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional

from .core.config import RECIPES, Hyper, Recipe
from .core.errors import UserError

if TYPE_CHECKING:  # the networks (and TensorFlow) are imported when a model is built, not when the registry is read
    import keras
    import numpy as np


def _timnet(hyper: Hyper) -> list[keras.layers.Layer]:
    from .TIMNET import TIMNET, WeightLayer
    return [TIMNET(hyper.filter_size, hyper.kernel_size, hyper.dilation_size, hyper.stack_size, hyper.dropout,
                   hyper.activation, name="timnet"),
            WeightLayer(name="weight_layer")]


def _gmtcn(hyper: Hyper) -> list[keras.layers.Layer]:
    from .GTCM import GTCM
    return [GTCM(filters=hyper.filter_size, kernel_size=hyper.kernel_size, name="gtcm")]


def _dcnn(hyper: Hyper) -> list[keras.layers.Layer]:
    from .DCNN import BackboneWeightsError, DCNNBLSTMwA
    weights = None if hyper.backbone_weights == "none" else hyper.backbone_weights
    try:
        return [DCNNBLSTMwA(hyper.backbone, hyper.backbone_alpha, weights, hyper.image_size, name="dcnn_blstmwa")]
    except BackboneWeightsError as exc:
        hint = ("; download that file where the internet is reachable and pass it with --backbone_weights <file>, "
                "or start from random weights with --backbone_weights none (a resumed run reads it from "
                "~/.keras/models/, where Keras keeps what it downloads)") if weights == "imagenet" else ""
        raise UserError(f"--backbone_weights {hyper.backbone_weights}: {exc}{hint}") from None


def _no_variant(hyper: Hyper, trained: bool = True, init_from: Optional[str] = None) -> str:
    return ""


def _dcnn_variant(hyper: Hyper, trained: bool = True, init_from: Optional[str] = None) -> str:
    """The backbone, its width, the input size and (for a training run) its initial weights,
    e.g. ``mobilenetv2 alpha 1, ImageNet init``; a fine-tuned run's are its source's (``init_from``)."""
    width = f" alpha {hyper.backbone_alpha:g}" if hyper.backbone == "mobilenetv2" else ""
    size = f", {hyper.image_size}px" if hyper.image_size != 64 else ""
    source = (f"fine-tuned from {os.path.basename(os.path.normpath(init_from))}" if init_from else
              {"imagenet": "ImageNet init", "none": "random init"}.get(
                  hyper.backbone_weights, f"init from {os.path.basename(hyper.backbone_weights)}"))
    return f"{hyper.backbone}{width}{size}" + (f", {source}" if trained else "")


@dataclass(frozen=True)
class ModelSpec:
    """A model as the engine sees it.

    Args:
        name: the ``--model`` value.
        paper: citation shown in results.
        network: hyper-parameters -> the layers between the input and the softmax Dense.
        recipe: the paper's training settings.
        published_protocol: the ``--protocol`` that chose the authors' published weights, which a re-test of their
            folder records: ``paper`` (SPEC §4: each fold's epoch best on its test fold, TIM-Net's before Aug 2023
            and GM-TCNet's always); None where no weights are published.
        features: the feature kind it reads (data.features.FEATURE_KINDS): a file of another kind is refused.
        variant: (hyper-parameters, whether the run trains, the folder a fine-tuned run starts from) -> what
            tells runs of this model apart in results (empty: nothing); a re-test leaves out what only matters to
            training.
        parallel_chains: independent chains of small operations in a training step (TIM-Net's two directions;
            GM-TCNet's values and gates): TensorFlow runs that many at once.
        operations_span_cores: whether each operation may use every core (else: its chain's share of them). GM-TCNet:
            its fused gated unit joins the values' and gates' chains and would leave a core waiting on one thread.
        stacked: engine/stacked_training.py computes it (``NETWORKS``): ``--training stacked`` trains it, and its
            exported fold-mean graph may compute the folds in one pass.
        fused_ops: nn/fused_ops.py has the ops of its blocks (float32, ReLU), which ``--fused_kernels`` uses.
        one_pass_export: its fold-mean graph computes the folds in one pass (deploy/export.py: where that measured
            as fast as the folds' copies or faster at every batch size).
    """

    name: str
    paper: str
    network: Callable[[Hyper], list]
    recipe: Recipe
    published_protocol: Optional[str]
    features: str = "mfcc"
    variant: Callable[..., str] = _no_variant
    parallel_chains: int = 1
    operations_span_cores: bool = False
    stacked: bool = False
    fused_ops: bool = False
    one_pass_export: bool = False

    def threads(self, cores: int) -> tuple[int, int]:
        """(inter-op, intra-op) threads of a training step on ``cores`` cores: ``parallel_chains`` operations at
        once, each on its share of the cores or, with ``operations_span_cores``, on all of them."""
        chains = max(1, min(self.parallel_chains, cores))
        return chains, max(1, cores if self.operations_span_cores else cores // chains)

    def describe(self, hyper: Hyper, trained: bool, init_from: Optional[str] = None) -> dict:
        """What results records say about the model: its name, paper and variant (of a run fine-tuned from
        ``init_from``: that folder's weights are its start)."""
        return {"model": self.name, "paper": self.paper, "variant": self.variant(hyper, trained, init_from)}


MODELS: dict[str, ModelSpec] = {
    "TIMNET": ModelSpec("TIMNET", "Ye et al., TIM-Net, ICASSP 2023", _timnet,
                        RECIPES["TIMNET"],
                        "paper",  # the published weights; its code selects on the last epoch since Aug 2023
                        parallel_chains=2, stacked=True, fused_ops=True, one_pass_export=True),
    "GMTCN": ModelSpec("GMTCN", "Ye et al., GM-TCNet, Speech Communication 145, 2022", _gmtcn,
                       RECIPES["GMTCN"],
                       "paper", parallel_chains=2,  # the original always selected the epoch on the test fold
                       operations_span_cores=True, stacked=True, fused_ops=True,
                       # its one-pass graph exported sooner but ran slower per batch of 64: ONNX Runtime fuses
                       # each copy's 2-D product, bias and ReLU into one Gemm, not a stack's batched products
                       # (docs/predict.md)
                       one_pass_export=False),
    "DCNN_BLSTMwA": ModelSpec("DCNN_BLSTMwA", "Zhang et al., DCNN-BLSTMwA, Frontiers in Physiology 12:643202, 2021",
                              _dcnn, RECIPES["DCNN_BLSTMwA"],
                              None,  # no code or weights published; how the paper chose its epoch is not known
                              features="logmel3", variant=_dcnn_variant),
}

def stacked_refusal(model: str, activation: str = "relu", normalize: str = "none", mixed_precision: bool | str = False,
                    xla: bool = False, augment: int = 0) -> str | None:
    """Why ``--training stacked`` cannot train ``model`` with these settings, in one line that names the flag, or None.

    The one statement of what engine/stacked_training.py computes: the command line asks it before TensorFlow loads,
    the stacked trainer before it builds its members, and export before it computes the folds in one pass.
    """
    if not MODELS[model].stacked:
        stacked = " and ".join(name for name, spec in MODELS.items() if spec.stacked)
        return f"--training stacked: trains {stacked}; --model {model} trains with --training sequential"
    if activation != "relu":  # TIM-Net's --activation (the other models' blocks are ReLU's)
        return f"--activation {activation}: the stacked path trains ReLU blocks only"
    if normalize != "none":
        return f"--normalize {normalize}: the stacked path trains without a normalisation layer; train sequentially"
    if mixed_precision:
        return "--mixed_precision: the stacked path computes in one type; train sequentially"
    if xla:  # not tried with the stacked step (and slower than the default for the sequential one)
        return "--xla: the stacked path is not compiled with XLA; train without --xla or sequentially"
    if augment:
        return "--augment: the stacked path shares one x between its members; train sequentially"
    return None


@contextlib.contextmanager
def dtype_policy(name: str | None):
    """Keras' global dtype policy ``name`` (core/precision.policy) while models are built in the block, then the one
    before; None leaves it. A layer keeps the policy it was built under, so a run's models compute as it trained."""
    import keras
    if name is None:
        yield
        return
    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def build_model(spec: ModelSpec, input_shape: tuple, num_classes: int, hyper: Hyper) -> keras.Model:
    """Input (one sample's shape, e.g. (T, 39)) -> network -> Dense(C, softmax); layer names are deterministic."""
    import keras
    inputs = keras.Input(tuple(input_shape), name="features")  # (B, T, 39) MFCC; (B, S, 64, 64, 3) logmel3
    x = inputs
    if hyper.normalize in ("utterance", "corpus"):  # "speaker": the inputs come standardised (engine/normalization.py)
        from .data.feature_statistics import EPSILON, FLAT
        from .nn.normalization import CorpusNormalization, UtteranceNormalization
        layer = UtteranceNormalization if hyper.normalize == "utterance" else CorpusNormalization
        x = layer(flat=FLAT, epsilon=EPSILON, name=f"{hyper.normalize}_normalization")(x)
    for layer in spec.network(hyper):
        x = layer(x)  # TIM-Net: (B, n, 39) then (B, 39); GM-TCNet: (B, 39); DCNN-BLSTMwA: (B, 128)
    # under mixed precision the softmax still computes in float32, as Keras recommends
    head_dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed") else None
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype=head_dtype, name="dense")(x)  # (B, C)
    return keras.Model(inputs, outputs, name=spec.name)


def without_pretrained(hyper: Hyper) -> Hyper:
    """``hyper`` with the backbone built from random weights: for a model whose weights all come from a file
    next (test mode, prediction), so that no ImageNet download is attempted."""
    return replace(hyper, backbone_weights="none")


def embedding_model(model: keras.Model) -> keras.Model:
    """The same graph returning (embedding before the Dense, softmax): TIM-Net's fusion, GM-TCNet's pooling,
    DCNN-BLSTMwA's last dense layer."""
    import keras
    return keras.Model(model.input, [model.get_layer("dense").input, model.output])


def legacy_weight_groups(model: keras.Model) -> list:
    """(layer name, variables) of ``model`` in the order of the authors' Keras-2 weight files."""
    groups = []
    for layer in model.layers:
        if hasattr(layer, "legacy_weight_groups"):
            groups.extend(layer.legacy_weight_groups())
        elif layer.weights:
            groups.append((layer.name, list(layer.weights)))
    return groups


def batch_spec(model: keras.Model):
    """A batch of ``model``'s inputs, float32 (None, *one input's shape): the signature of every function traced
    over the model (the trainer's step, ``inference_function``)."""
    import tensorflow as tf
    return tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)


def inference_function(model: keras.Model, fused: bool) -> Callable[..., np.ndarray | list[np.ndarray]]:
    """``model`` in inference mode as one traced function, for every path that evaluates or predicts (the trainer's
    evaluation, a re-test, the API): ``infer(x, batch_size=256)`` gives the outputs for x (N, ...) as NumPy arrays
    (a list of them for a model of several outputs), batch by batch, without tf.data or a progress bar.

    With ``fused``, TIM-Net's blocks and GM-TCNet's units run in the fused ops where setup.sh built them (as a run
    that trained with them evaluates its folds: ``RunConfig.fused_kernels``). The function is traced at its first
    call and reads the model's variables, so another fold's weights assigned to them later need no new trace;
    eagerly, each call would pay Keras' layers in Python again.
    """
    import numpy as np
    import tensorflow as tf

    from .nn import fused_ops

    def infer(x):  # runs when traced: the fused ops enter the graph or not
        with fused_ops.enabled(fused):
            return model(x, training=False)

    traced = tf.function(infer, input_signature=[batch_spec(model)])

    def in_batches(x: np.ndarray, batch_size: int = 256):
        parts = [traced(np.asarray(x[s:s + batch_size], np.float32)) for s in range(0, len(x), batch_size)]
        if isinstance(parts[0], (list, tuple)):
            return [np.concatenate([np.asarray(part[i]) for part in parts]) for i in range(len(parts[0]))]
        return np.concatenate([np.asarray(part) for part in parts])

    return in_batches
