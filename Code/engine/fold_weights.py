"""A run's fold weights, loaded one way for every user (test mode, prediction, the API, export): the network built
once without pretrained weights (all of them come from the files), every fold's file read and checked against it
before anything is used, then one fold's arrays assigned, or a separate copy of the network per fold."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..core import precision
from ..core.config import Hyper
from ..core.errors import UserError
from ..data.corpora import CORPORA, SAMPLE_RATE
from ..data.features import feature_shape
from ..Model import MODELS, ModelSpec, build_model, dtype_policy, legacy_weight_groups, without_pretrained
from ..nn.legacy_weights import WeightsMismatch, assign_weight_arrays, check_legacy_weights, declared_shapes, shapes_fit

if TYPE_CHECKING:
    import keras


class FoldWeights:
    """The network of ``spec`` and the checked arrays of every fold's legacy weight file.

    Args:
        spec, hyper: the model and its hyper-parameters.
        input_shape: one sample's shape, (T, 39) or (S, 64, 64, 3).
        num_classes: C.
        files: (fold number from 1, path) of the weight files, in fold order.
        data: the corpus they are loaded for, named in the message when their class count is another's.
        name_model: for weights that record no model (a folder without run.json, read as ``spec``'s because the
            user's model setting says so): how a message names a value of that setting (the API's
            ``model='GMTCN'``, the command line's ``--model GMTCN``). A file that does not fit ``spec`` is then
            refused naming the setting and the model it fits (the authors' TIM-Net folder read as GMTCN's was
            refused naming only a weights file and a layer count); None: the run's record names its model.
    """

    def __init__(self, spec: ModelSpec, hyper: Hyper, input_shape: Sequence[int], num_classes: int,
                 files: Sequence[tuple[int, str]], data: str | None = None, mixed_precision: bool | str | None = None,
                 name_model: Callable[[str], str] | None = None):
        if files and data is not None:
            check_class_count(files[0][1], num_classes, data)
        self.spec, self.hyper = spec, without_pretrained(hyper)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        # a run's --mixed_precision (core/precision.py): its models compute as it trained and was tested (a bf16
        # run predicted in float32 disagreed with its recorded test predictions); None: the global policy
        with dtype_policy(None if mixed_precision is None else precision.policy(mixed_precision)):
            self.model = build_model(spec, self.input_shape, num_classes, self.hyper)
        self.groups = legacy_weight_groups(self.model)
        # every file checked before anything is used: (fold number, path, arrays by layer)
        try:
            self.folds = [(number, path, check_legacy_weights(path, self.groups)) for number, path in files]
        except WeightsMismatch as exc:
            if name_model is None:
                raise
            raise UserError(self._not_this_model(exc, name_model)) from None
        self._lock = threading.RLock()  # held while a fold's weights are in self.model (``loaded``)

    def _not_this_model(self, exc: WeightsMismatch, name_model: Callable[[str], str]) -> str:
        """The line refusing weights that do not fit ``self.spec``, naming the model setting that chose it and the
        first other model whose network, with the same hyper-parameters and classes, fits them: one network built
        per other model (a second or so), only on this error."""
        folder = os.path.dirname(exc.path) or "."
        given = name_model(self.spec.name)
        for other in MODELS.values():
            if other.name != self.spec.name and shapes_fit(exc.layers, self._groups_of(other)):
                return (f"{given}: the weights in {folder} are not {self.spec.name}'s, they are {other.name}'s; give "
                        f"{name_model(other.name)}")
        reason = str(exc).removeprefix(f"{exc.path}: ")
        return (f"{given}: the weights in {folder} fit neither {self.spec.name} with these hyper-parameters nor "
                f"another model ({os.path.basename(exc.path)} {reason})")

    def _groups_of(self, other: ModelSpec) -> list:
        """The legacy weight groups of ``other``'s network with these hyper-parameters and classes; a model of
        another feature kind reads 2 s of it, since no network's weight shapes depend on the input's length."""
        shape = self.input_shape if other.features == self.spec.features else feature_shape(other.features,
                                                                                             2 * SAMPLE_RATE)
        with dtype_policy("float32"):
            return legacy_weight_groups(build_model(other, shape, self.num_classes, self.hyper))

    @contextmanager
    def loaded(self, index: int) -> Iterator[keras.Model]:
        """``self.model`` holding the weights of ``self.folds[index]`` until the block ends. One network serves every
        fold, so the block holds a lock: another thread's fold would otherwise replace these weights mid-call (two
        threads predicting with one run gave wrong probabilities, and an export beside them a wrong model)."""
        with self._lock:
            assign_weight_arrays(self.folds[index][2], self.groups)
            yield self.model

    def copy(self, index: int) -> keras.Model:
        """A separate network holding ``self.folds[index]``'s weights, named ``fold_<i>`` (copies' names differ)."""
        import keras
        with dtype_policy("float32"):  # an exported graph computes in float32 (deploy/export.py says so)
            network = build_model(self.spec, self.input_shape, self.num_classes, self.hyper)
        assign_weight_arrays(self.folds[index][2], legacy_weight_groups(network))
        number = self.folds[index][0]
        return keras.Model(network.input, network.output, name=f"fold_{number}")


def check_class_count(path: str, num_classes: int, data: str) -> None:
    """Weights whose softmax layer has another class count than corpus ``data``: one line with the corpora that
    have their count (the authors' CASIA_32 has 6 classes: --data CASIA)."""
    bias = next((shapes[-1] for name, shapes in declared_shapes(path) if name == "dense"), ())  # nothing read
    if not bias or bias[-1] == num_classes:
        return  # no softmax layer of that name: check_legacy_weights names what does not fit
    count = bias[-1]
    fits = [key for key, corpus in CORPORA.items() if corpus.num_classes == count]
    hint = f"; corpora with {count} classes: {', '.join('--data ' + k for k in fits)}" if fits else ""
    raise UserError(f"{path}: its weights classify {count} classes, not the {num_classes} of --data {data}{hint}")
