"""Keras-2 legacy HDF5 weight files (``model.save_weights('x.hdf5')`` in TF 2.4-2.15), read and written as data.

Layout (SPEC §4): root attributes ``layer_names``, ``backend``, ``keras_version``; one group per
layer whose attribute ``weight_names`` lists its variables, each stored at ``<layer>/<layer>/<var>:0``.
The original's layer names carry process-wide counters (``conv1d_34``), so files are matched to a
model by the order of the layers that hold weights, never by name. Files are opened with h5py and
only arrays are read: nothing in a weight file is ever executed.

A model hands this module its weights as ``groups``: a list, in legacy order, of
``(layer_name, [variable, ...])`` with the variables in the legacy order inside the layer.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import h5py
import numpy as np

from ..core.atomic_file import atomic_write
from ..core.errors import UserError


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_weight_arrays(path: str, groups: Sequence[tuple[str, Sequence]] | None = None
                       ) -> list[tuple[str, list[np.ndarray]]]:
    """The weighted layers of a legacy file, in file order: [(layer name, [array, ...]), ...].

    With ``groups`` (a model's, as ``check_legacy_weights`` takes them), every dataset's declared shape is
    compared with the variable it maps to before any array is read: a file of another model, or one that
    declares large arrays where the model has small ones, costs no read of its data."""
    with _weight_datasets(path) as layers:
        if groups is not None:
            _check_declared(path, layers, groups)
        return [(name, [np.asarray(d) for d in datasets]) for name, datasets in layers]


def declared_shapes(path: str) -> list[tuple[str, list[tuple[int, ...]]]]:
    """The weighted layers of a legacy file and the shapes their datasets declare, nothing read: [(layer name,
    [shape, ...]), ...]."""
    with _weight_datasets(path) as layers:
        return _layer_shapes(layers)


def _layer_shapes(layers: list) -> list[tuple[str, list[tuple[int, ...]]]]:
    """[(layer name, [the shape each dataset declares, ...]), ...] of ``_weight_datasets``' layers."""
    return [(name, [tuple(d.shape) for d in datasets]) for name, datasets in layers]


@contextmanager
def _weight_datasets(path: str) -> Iterator[list]:
    """The weighted layers of ``path`` as its unread h5py datasets, [(layer name, [dataset, ...]), ...], each
    dataset stored in the file and an array of numbers (``_dataset``), all of them declaring ``MAX_FILE_BYTES``
    at most; the file open until the block ends, an unreadable or damaged file one line naming it."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: weights file not found")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f  # a full-model .h5 keeps them one level down
            if "layer_names" not in root.attrs:
                raise UserError(f"{path}: not a Keras-2 weights file (no 'layer_names' attribute)")
            layers = []
            for name in (_text(n) for n in root.attrs["layer_names"]):
                group = _stored_here(root, name, path)
                names = [_text(w) for w in group.attrs.get("weight_names", [])]
                if names:
                    layers.append((name, [_dataset(group, w, path) for w in names]))
            declared = sum(d.size * d.dtype.itemsize for _, datasets in layers for d in datasets)
            if declared > MAX_FILE_BYTES:  # before any is read: compressed, a few kilobytes named one array many times
                raise UserError(f"{path}: its weights declare {declared:,} bytes in all, more than any network here "
                                "has (the same array named many times?)")
            yield layers
    except OSError as exc:
        raise UserError(f"{path}: cannot be read as HDF5 ({exc})") from None
    except KeyError as exc:
        raise UserError(f"{path}: damaged weights file, missing {exc}") from None


class WeightsMismatch(UserError):
    """Weights whose layers do not fit the model's (their count or a declared shape): a file of another model, or of
    the same model with other hyper-parameters. ``path``: the file; ``layers``: the shapes its datasets declare
    (``declared_shapes``), so that a caller that knows how the model was chosen can tell which model fits them
    (engine/fold_weights.py)."""

    def __init__(self, message: str, path: str, layers: list):
        super().__init__(message)
        self.path, self.layers = path, layers


def shapes_fit(layers: list, groups: Sequence[tuple[str, Sequence]]) -> bool:
    """Whether ``declared_shapes``' ``layers`` are the shapes of ``groups``' variables, layer by layer in order."""
    return len(layers) == len(groups) and all(
        [tuple(shape) for shape in shapes] == [tuple(v.shape) for v in variables]
        for (_, shapes), (_, variables) in zip(layers, groups))


def _check_declared(path: str, layers: list, groups: Sequence[tuple[str, Sequence]]) -> None:
    """Refuse, in one line naming the dataset (a ``WeightsMismatch``), the first of ``layers``' datasets whose
    declared shape is not that of the variable of ``groups`` it maps to (layer by layer in order, the variables in
    order inside). The values may be of any float or integer type: they are cast to the variable's, as ever."""
    shapes = _layer_shapes(layers)
    if shapes_fit(shapes, groups):
        return
    if len(layers) != len(groups):
        raise WeightsMismatch(f"{path}: holds {len(layers)} layers with weights, the model has {len(groups)} "
                              "(weights of another model or another number of blocks?)", path, shapes)
    for (file_name, datasets), (model_name, variables) in zip(layers, groups):
        if len(datasets) != len(variables):
            raise WeightsMismatch(f"{path}: layer {file_name!r} holds {len(datasets)} weights, the model's layer "
                                  f"{model_name!r} has {len(variables)} (weights of another model?)", path, shapes)
        for dataset, variable in zip(datasets, variables):
            if tuple(dataset.shape) != tuple(variable.shape):
                raise WeightsMismatch(f"{path}: weight {dataset.name!r} declares the shape {tuple(dataset.shape)}, "
                                      f"the model's layer {model_name!r} expects {tuple(variable.shape)} (another "
                                      "class count or model?)", path, shapes)


MAX_WEIGHTS = 1 << 26  # values in one weight array (256 MB of float32): the largest network here holds 3.5 M in all
MAX_FILE_BYTES = 1 << 30  # bytes of all the weight arrays of a file together: the largest network here has 14 MB


def _stored_here(group, name: str, path: str):
    """``group[name]``, refused where a step of its path is a link (soft, or to another file): a weights file that
    points elsewhere reads what it points to, through a link on the way (a layer's group) as through one at the end."""
    here = group.file if name.startswith("/") else group
    steps = [step for step in name.split("/") if step]
    for k, step in enumerate(steps):
        link = here.get(step, getlink=True) if isinstance(here, h5py.Group) else None
        if link is None:
            raise KeyError(name)
        if not isinstance(link, h5py.HardLink):
            if k == len(steps) - 1:
                raise UserError(f"{path}: {name!r} is a link ({type(link).__name__}), not weights stored in the file")
            raise UserError(f"{path}: {name!r} lies under {posixpath.join(here.name, step)!r}, a link "
                            f"({type(link).__name__}), not a group stored in the file")
        here = here[step]
    return here


def _dataset(group, name: str, path: str):
    """The dataset ``group[name]``, refused where its values are not stored in this file (external storage or a
    virtual dataset read other files, whatever they are: a weights file could carry a private file's bytes into an
    exported model), where it holds no array of numbers, or where it declares more values than any network here has
    (a file read without a model to compare its shapes with is read whole)."""
    dataset = _stored_here(group, name, path)
    if not hasattr(dataset, "shape"):
        raise UserError(f"{path}: {name!r} is a group, not a weight array")
    if dataset.shape is None or dataset.dtype.kind not in "biuf":  # strings: read at any length, whatever size says
        raise UserError(f"{path}: weight {name!r} is not an array of numbers (dtype {dataset.dtype}, shape "
                        f"{dataset.shape})")
    if dataset.external or dataset.is_virtual:
        raise UserError(f"{path}: weight {name!r} keeps its values outside the file (external or virtual storage); "
                        "a weights file holds its own")
    if dataset.size > MAX_WEIGHTS:
        raise UserError(f"{path}: weight {name!r} declares {dataset.size:,} values, more than any network here has")
    return dataset


def all_finite(arrays) -> bool:
    """Whether every array holds finite numbers only (a diverged fold's weights hold NaN or Inf)."""
    return all(np.isfinite(a).all() for a in arrays)


def check_legacy_weights(path: str, groups: Sequence[tuple[str, Sequence]]) -> list:
    """The arrays of ``path`` if they fit ``groups`` layer by layer in order and are finite; a ``WeightsMismatch``
    naming the first dataset whose declared shape does not fit (both shapes, said before anything is read), a
    ``UserError`` naming the first layer that holds NaN or Inf."""
    layers = read_weight_arrays(path, groups)
    for file_name, arrays in layers:  # saved by a version that kept a diverged fold: one class for every input
        if not all_finite(arrays):
            raise UserError(f"{path}: layer {file_name!r} holds weights that are not finite (NaN or Inf: the fold "
                            "diverged in training); they would predict one class for every utterance")
    return layers


def assign_weight_arrays(layers: list, groups: Sequence[tuple[str, Sequence]]) -> None:
    """Assign ``check_legacy_weights``' arrays to the variables of ``groups``, layer by layer in order."""
    for (_, arrays), (_, variables) in zip(layers, groups):
        for variable, array in zip(variables, arrays):
            variable.assign(array.astype(np.float32))


def load_legacy_weights(path: str, groups: Sequence[tuple[str, Sequence]]) -> None:
    """Assign the arrays of ``path`` to the variables of ``groups``, layer by layer in order.

    Everything is checked before anything is assigned, so a failed load never leaves a model half-loaded.
    """
    assign_weight_arrays(check_legacy_weights(path, groups), groups)


def save_legacy_weights(path: str, groups: Sequence[tuple[str, Sequence]], keras_version: str = "2.4.0") -> None:
    """Write ``groups`` in the Keras-2 layout, atomically.

    The file is made in memory and then written as bytes: HDF5 crashes the process (a segmentation fault in its
    close) when the disk fills up under it, while a plain write fails with an error that names the file."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode("utf8") for name, _ in groups])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = keras_version.encode("utf8")
        for name, variables in groups:
            group = f.create_group(name)
            weight_names = [f"{name}/{_variable_name(v)}:0" for v in variables]
            group.attrs["weight_names"] = np.array([w.encode("utf8") for w in weight_names])
            for weight_name, variable in zip(weight_names, variables):
                group.create_dataset(weight_name, data=np.asarray(variable, dtype=np.float32))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
    atomic_write(path, write)


def _variable_name(variable) -> str:
    # Keras 3 variables have a short .name ("kernel"); keep the last path component either way.
    return str(getattr(variable, "name", "w")).split("/")[-1].split(":")[0]
