"""Feature files, read and written safely.

Feature file: ``np.save`` of a dict ``{"x": float32 (N, ...), "y": float32 one-hot (N, C)}`` (the
authors' format; their loader is ``np.load(path, allow_pickle=True).item()``), plus metadata keys
``files``, ``speakers``, ``classes``, ``signal_length`` and ``features`` (the kind; a file without it,
such as the authors' own, holds MFCCs) that their loader ignores. Such a file is a pickle, and
unpickling can run code: ``load_features`` admits only numpy arrays, dicts, strings and numbers, and
refuses anything else; numpy takes a pickled dtype's or array's state on trust (fields, flags, a count of
objects: a segmentation fault), so each is checked before numpy is given it. Knows nothing about models.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
from typing import BinaryIO

import numpy as np

from ..core.atomic_file import atomic_write
from ..core.errors import UserError, named, named_twice_in_any_case
from ..core.paths import command, feature_path
from ..core.settings import CONTROL_CHARACTERS
from .corpora import Corpus
from .features import FEATURE_KINDS, N_MELS, N_MFCC, SEGMENT_FRAMES


def save_features(path: str, data: dict, follow_link: bool = False) -> None:
    """``np.save`` of the dict (the authors' format), written atomically: never half-written under ``path``.
    ``follow_link``: ``path`` is the user's ``--feature_path``, not the default name (``atomic_file.atomic_write``)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a handle, not a name: np.save would append ".npy" to other names
            np.save(f, data, allow_pickle=True)
    atomic_write(path, write, follow_link)


def is_npy_file(path: str) -> bool:
    """Whether the file at ``path`` begins as every .npy file does (NumPy's magic string): what extraction may
    replace, where any other file (a manifest, a run's record, a recording) is the user's."""
    with open(path, "rb") as f:
        return f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX


# What a genuine feature file's pickle may name: numpy's array, dtype and scalar reconstruction
# (``numpy._core`` since numpy 2, ``numpy.core`` before), nothing else.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ArraysOnly(pickle._Unpickler):
    """An unpickler that can rebuild numpy arrays, dicts, strings and numbers, and call nothing else.

    The pure-Python unpickler (the C one's reference implementation), so that each state a pickle gives an object
    (its BUILD) is checked before numpy takes it: the C unpickler hands it over unseen."""

    def __init__(self, file: BinaryIO, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        # every callable a pickle can run is looked up here (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*)
        if (module, name) in _ALLOWED and name == "_reconstruct":
            return _empty_then_filled(super().find_class(module, name), self.path)
        if (module, name) in _ALLOWED and name == "ndarray":
            return _ARRAY_TYPE
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UserError(f"{self.path}: refused to load: the file asks to run {module}.{name} "
                        "(a feature file holds only arrays)")

    def load_build(self) -> None:
        # BUILD: the state on top of the stack given to the object under it
        instance, state = self.stack[-2], self.stack[-1]
        if isinstance(instance, np.dtype):
            _check_dtype_state(instance, state, self.path)
        elif isinstance(instance, np.ndarray):
            _check_array_state(state, self.path)
        super().load_build()

    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build}


def _check_dtype_state(dtype: np.dtype, state, path: str) -> None:
    """A dtype's pickled state may only restate the dtype its arguments made (in either byte order), as np.save's
    does: numpy takes fields, a sub-array and flags from it unchecked, and a dtype given an object field its flags
    did not declare had numpy read the file's bytes as pointers (a segmentation fault, when read or freed)."""
    if not any(state == dtype.newbyteorder(order).__reduce__()[2] for order in "<>"):
        raise UserError(f"{path}: refused to load: the file gives a dtype ({dtype.str}) a state of its own (fields, a "
                        "sub-array, flags or a datetime's unit), which no feature file's arrays have")


def _check_array_state(state, path: str) -> None:
    """An array's pickled state: numpy fills an object array from a list without counting it (a list shorter than
    the shape: a segmentation fault); it compares bytes with the shape itself."""
    shape, dtype, values = state[-4], state[-3], state[-1]
    if dtype.hasobject and not (dtype.kind == "O" and isinstance(values, list) and len(values) == math.prod(shape)):
        raise UserError(f"{path}: refused to load: the file declares an array of objects of shape {tuple(shape)} "
                        "and does not hold one value for each")


class _ArrayType:
    """``numpy.ndarray`` as a feature file's pickle may name it: the type of array ``_reconstruct`` makes, and nothing
    to call (called, numpy.ndarray made an array of any shape the file declared, of memory never written)."""

    __slots__ = ()  # one instance serves every file: a pickle's BUILD cannot give it attributes

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("the file calls numpy.ndarray, which makes an array of any shape from nothing")


_ARRAY_TYPE = _ArrayType()
# the most bytes ``_reconstruct`` may make: np.save's pickles ask it for none (shape (0,)), one plain number at most
_PLACEHOLDER_BYTES = 16


def _empty_then_filled(reconstruct, path: str):
    """numpy's ``_reconstruct`` as np.save's pickles call it: an empty array, whose shape and bytes its state then
    gives (bounded by the file). A pickle that asked it for a large shape, or for one element of a dtype that holds a
    large sub-array, allocated that memory from a few bytes."""
    def checked(subtype, shape, dtype):
        if subtype is not _ARRAY_TYPE:
            raise pickle.UnpicklingError("numpy's _reconstruct asked for another type than numpy.ndarray")
        dtype, dims = np.dtype(dtype), tuple(int(n) for n in np.ravel(shape))
        if math.prod(dims) * dtype.itemsize > _PLACEHOLDER_BYTES:  # bytes: one element can be gigabytes
            raise UserError(f"{path}: refused to load: the file declares an array of shape {dims + dtype.shape} it "
                            "does not hold (a feature file's arrays carry their own bytes)")
        return reconstruct(np.ndarray, shape, dtype)
    return checked


def _read_npy(path: str) -> object:
    """The object stored in a .npy file; a pickled one goes through ``_ArraysOnly``."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version not in readers:
            raise UserError(f"{path}: .npy format version {version[0]}.{version[1]} is not supported (1.0 or 2.0)")
        _, _, dtype = readers[version](f)
        if not dtype.hasobject:  # a plain numeric array holds no pickle, hence no code
            f.seek(0)
            return np.load(f, allow_pickle=False)
        stored = _ArraysOnly(f, path).load()  # np.save pickles object arrays; the dict is a 0-d one
    return stored.item() if isinstance(stored, np.ndarray) and stored.shape == () else stored


def _require_dict(data: object, path: str) -> None:
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a {type(data).__name__}, not the dict {{'x': ..., 'y': ...}} of a feature file")


def extract_command(data: str, kind: str, path: str, wav: str = "<folder>") -> str:
    """The command that writes the feature file ``path`` of corpus ``data`` and kind ``kind``: its --features and
    --feature_path where they are not the defaults (without them it wrote MFCCs to MFCC/<DATA>.npy, and the same
    error came back)."""
    return (f"{command()} --mode extract --data {data}" + (f" --features {kind}" if kind != "mfcc" else "")
            + (f" --feature_path {path}" if os.path.normpath(path) != os.path.normpath(feature_path(data, kind))
               else "") + f" --wav_path {wav}")


def load_features(path: str, data_key: str | None = None, kind: str = "mfcc") -> dict:
    """Read a feature file without letting it run code; one-line ``UserError`` for anything else.

    ``data_key`` (the ``--data`` of the caller) and ``kind`` complete the hint given when the file does not exist.
    """
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, not a feature file (.npy)")
    if not os.path.isfile(path):
        raise UserError(f"{path}: feature file not found; make it with: "
                        f"{extract_command(data_key or '<KEY>', kind, path)}")
    try:
        data = _read_npy(path)
    except UserError:
        raise
    except Exception as exc:  # a truncated or foreign file fails in numpy or pickle in many ways
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
        raise UserError(f"{path}: not a readable .npy feature file ({type(exc).__name__}: {reason})") from None
    _require_dict(data, path)
    _check_arrays(data, path)
    _check_metadata(data, path)
    return data


def _check_arrays(data: dict, path: str) -> None:
    """Every array (or numpy number) in the dict holds numbers, booleans or fixed-width text, as a feature file's do:
    records, sub-arrays, objects and raw bytes (void) are read by rules of their own, which no feature file needs.
    An array of Python strings (pandas' ``.values`` of a column of names) is taken as the text it holds."""
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "O" and all(isinstance(v, str) for v in value.flat):
            data[key] = value = value.astype(str)
        if isinstance(value, (np.ndarray, np.generic)):
            dtype = value.dtype
            if dtype.kind not in "biufcSU" or dtype.fields is not None or dtype.subdtype is not None:
                raise UserError(f"{path}: refused to load: {key!r} is an array of dtype {dtype.str}, not of numbers "
                                "or text (a feature file holds no records, sub-arrays, objects or raw bytes)")


def _check_metadata(data: dict, path: str) -> None:
    """The optional keys a file of --mode extract carries, where present: ``signal_length`` a positive whole number
    of samples, ``speakers`` and ``files`` one entry per row of x (a file edited by hand, or written elsewhere)."""
    if "signal_length" in data:
        value = data["signal_length"]
        try:
            whole = float(value).is_integer() and float(value) >= 1
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise UserError(f"{path}: signal_length is {value!r}, expected a positive whole number of samples")
    for key in ("classes", "speakers", "files"):  # lists of text; looked at before numpy reads them: a list nested
        if key in data and not _texts(data[key]):  # in itself a few levels, in a kilobyte, grew to gigabytes
            raise UserError(f"{path}: {key} is not a list of names (one text per entry)")
    odd = next((c for c in data.get("classes", []) if CONTROL_CHARACTERS.search(str(c))), None)
    if odd is not None:  # it rewrote the console where a class was printed
        raise UserError(f"{path}: the class name {str(odd)!r} holds a control character")
    twice = named_twice_in_any_case([str(c) for c in data.get("classes", [])])
    if twice is not None:  # as extract refuses labels that differ in case only: one class trained as two
        first, second = twice
        raise UserError(f"{path}: the class names {first!r} and {second!r} are one name (written twice, or in "
                        "another case); a class is named once: re-extract it")
    x = data.get("x")
    for key in ("speakers", "files"):
        if key not in data or not isinstance(x, np.ndarray) or x.ndim == 0:
            continue
        entries = data[key]
        if len(entries) != len(x):
            raise UserError(f"{path}: {key} holds {len(entries)} entries, expected one per row of x ({len(x)})")


def _texts(entries) -> bool:
    """Whether ``entries`` is a flat list (or 1-D array) of texts."""
    if isinstance(entries, np.ndarray):
        return entries.ndim == 1 and all(isinstance(e, str) for e in entries.tolist())
    return isinstance(entries, (list, tuple)) and all(isinstance(e, str) for e in entries)


def _arrays(data: dict, path: str) -> tuple[np.ndarray, np.ndarray]:
    """``data["x"]``, ``data["y"]`` once they are known to be numpy arrays."""
    _require_dict(data, path)
    missing = [k for k in ("x", "y") if k not in data]
    if missing:
        raise UserError(f"{path}: missing key(s) {', '.join(missing)}; a feature file holds 'x' and 'y'")
    for key in ("x", "y"):
        if not isinstance(data[key], np.ndarray):
            raise UserError(f"{path}: {key} is a {type(data[key]).__name__}, not a numpy array")
    return data["x"], data["y"]


def stored_kind(data: dict, path: str) -> str:
    """The feature kind a file records under ``features``; "mfcc" for files without it (the authors')."""
    kind = str(data.get("features", "mfcc"))
    if kind not in FEATURE_KINDS:
        raise UserError(f"{path}: 'features' is {kind!r}, not one of {', '.join(FEATURE_KINDS)}")
    return kind


def _shape_fits(x: np.ndarray, kind: str) -> bool:
    if kind == "mfcc":
        return x.ndim == 3 and x.shape[1] > 0 and x.shape[2] == N_MFCC
    return x.ndim == 5 and x.shape[1] > 0 and x.shape[2:] == (SEGMENT_FRAMES, N_MELS, 3)


def validate_features(data: dict, path: str, corpus: Corpus, kind: str = "mfcc",
                      model: str | None = None, api: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (N, T, 39) or (N, S, 64, 64, 3), y float32 (N, C)) after checking the feature kind, keys,
    ranks, dtypes, class count and values.

    ``kind`` is what the model reads; ``model`` (its ``--model`` name) completes the message when the file
    holds another kind. Every failure is a one-line ``UserError`` naming ``path``, raised before a model
    sees the data; ``api``: the corpus named as the API's ``data=`` (``Run.evaluate`` named ``--data``).
    """
    x, y = _arrays(data, path)
    stored = stored_kind(data, path)
    if stored != kind:
        reader = f"--model {model}" if model else "the model"
        raise UserError(f"{path}: holds {stored} features; {reader} needs {kind}: extract them with "
                        f"--mode extract --features {kind}")
    return checked_arrays(x, y, path, kind, corpus.num_classes,
                          f"{named('data', corpus.key, api, quoted=False)} has {corpus.num_classes} "
                          f"({', '.join(corpus.classes)})")


def checked_arrays(x: np.ndarray, y: np.ndarray, where: str, kind: str, classes: int,
                   classes_said: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as float32 after checking ranks, dtypes, the class count, row counts and values: x (N, T, 39) MFCC
    or (N, S, 64, 64, 3) log-Mel segments as ``kind`` says, finite; y one-hot (N, ``classes``), whose other count
    ``classes_said`` explains. A feature file's check, and the API's for the arrays it is given; each failure one
    line naming ``where``."""
    if not _shape_fits(x, kind):
        raise UserError(f"{where}: x has shape {x.shape}, expected {FEATURE_KINDS[kind]}")
    if y.ndim != 2:
        raise UserError(f"{where}: y has shape {y.shape}, expected one-hot (N, C)")
    for key, array in (("x", x), ("y", y)):
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(f"{where}: {key} has dtype {array.dtype}, expected float32")
    if y.shape[1] != classes:
        raise UserError(f"{where}: y has {y.shape[1]} classes, {classes_said}")
    if len(x) != len(y):
        raise UserError(f"{where}: x has {len(x)} rows but y has {len(y)}")
    if len(x) == 0:
        raise UserError(f"{where}: holds no samples")
    bad = int((~np.isfinite(x).reshape(len(x), -1).all(axis=1)).sum())
    if bad:
        raise UserError(f"{where}: {bad} row(s) of x hold NaN or Inf")
    if not (np.isin(y, (0.0, 1.0)).all() and (y.sum(axis=1) == 1).all()):
        raise UserError(f"{where}: y is not one-hot (each row one 1, the rest 0)")
    return x.astype(np.float32, copy=False), y.astype(np.float32, copy=False)


def features_digest(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the features and labels (shape, dtype and bytes): the same for any copy of the same file."""
    digest = hashlib.sha256()
    for array in (x, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()
