"""Where ``--mode export`` writes: an ``--output`` that fits ``--format`` (or names it), checked before TensorFlow
starts.

An ONNX or TFLite model is one file, a SavedModel a folder; each has its sidecar, ``<output>.json``, beside it
(export.py). The mode checks them, creating nothing, before TensorFlow's start-up; the export checks them again
where it begins, and makes the output's folder. ``EXTENSIONS`` is the one table from an output's name to its
format, which ``export_format`` reads where the format is not given and checks where it is.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from ..core.atomic_file import check_writable
from ..core.errors import UserError, named
from ..core.flags import EXPORT_FORMATS
from ..core.paths import check_outside_weights

EXTENSIONS = {".onnx": "onnx", ".tflite": "tflite"}  # a SavedModel's folder has no extension of its own
# what TensorFlow writes into a SavedModel's folder: an export replaces a folder holding these only, or nothing
SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "saved_model.pbtxt", "fingerprint.pb", "keras_metadata.pb",
                                 "variables", "assets"})
# and into its variables/ folder (our graphs hold their weights as constants, and no assets)
_VARIABLES_FILE = re.compile(r"variables\.(index|data-\d+-of-\d+)")


def _not_saved_model(path: str) -> list[str]:
    """What in the folder ``path`` a SavedModel export would not have written (sorted, relative paths): its
    sub-folders are looked into too, where a user's files were replaced along with the folder."""
    other = sorted(set(os.listdir(path)) - SAVED_MODEL_ENTRIES)
    for folder, allowed in (("variables", _VARIABLES_FILE), ("assets", None)):
        inside = os.path.join(path, folder)
        if os.path.isdir(inside):
            other += sorted(f"{folder}/{name}" for name in os.listdir(inside)
                            if allowed is None or not allowed.fullmatch(name))
        elif os.path.exists(inside):
            other.append(folder)
    return other


def _output(path: str, api: bool) -> str:
    return f"path={path!r}" if api else f"--output {path}"


def export_format(path: str, fmt: Optional[str], api: bool = True) -> str:
    """The format of an export to ``path``: ``fmt`` where given, else the one the name says: its extension's
    (``EXTENSIONS``), or a SavedModel's for a folder (one there, or a name without an extension). One line for an
    unknown ``fmt``, a name with another format's extension (an ONNX graph in ``m.tflite``) or another extension
    than its file's (notes.txt was replaced by an ONNX graph), and a name that says no format where none is given
    (before, the format was asked for even where ``m.onnx`` said it). The messages name the API's ``path`` and
    ``format``, or with ``api=False`` ``--output`` and ``--format``."""
    output = _output(path, api)
    extension = os.path.splitext(os.path.normpath(path))[1].lower()  # "out/m.onnx/" names "out/m.onnx"
    if fmt is None:
        if extension in EXTENSIONS:
            return EXTENSIONS[extension]
        if not extension or os.path.isdir(path):
            return "savedmodel"
        raise UserError(f"{output}: its extension {extension} names no export format; name it "
                        f"{' or '.join(EXTENSIONS)} (a folder without an extension for savedmodel), or give "
                        f"{'format' if api else '--format'}: one of {', '.join(EXPORT_FORMATS)}")
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"{named('format', fmt, api)}: choose one of {', '.join(EXPORT_FORMATS)}")
    kind = EXTENSIONS.get(extension, fmt)
    if kind != fmt:
        raise UserError(f"{output}: the name of {'an' if kind == 'onnx' else 'a'} {kind} file, for "
                        f"{named('format', fmt, api, quoted=False)}; rename it, or give "
                        f"{named('format', kind, api, quoted=False)}")
    if fmt != "savedmodel" and extension not in ("", f".{fmt}"):
        raise UserError(f"{output}: not the name of {'an' if fmt == 'onnx' else 'a'} {fmt} file; name it .{fmt}")
    return fmt


def check_output(path: str, fmt: Optional[str], weights_folder: Optional[str], make: bool = False,
                 api: bool = True) -> str:
    """The format of the export to ``path`` (``fmt``, or where None the one ``path`` names), once the output is
    known to hold it. Refused: a name or format that ``export_format`` refuses, a file where the
    SavedModel folder goes, a folder of other files than a SavedModel there (the export replaces it whole), a
    folder where a file goes, an output inside ``weights_folder`` (the folder it is made from), and an output or
    sidecar that could not be written. ``make=False`` creates nothing (before TensorFlow starts); ``make=True``
    makes the output's folder and proves it writable (where the export begins). The messages name the API's
    ``path`` and ``format``, or with ``api=False`` ``--output`` and ``--format``."""
    output, flag = _output(path, api), "path" if api else "--output"
    if weights_folder is not None:  # the sidecar, beside the output, lies inside it only where the output does
        check_outside_weights(path, weights_folder, output)
    fmt = export_format(path, fmt, api)
    if fmt == "savedmodel" and os.path.isfile(path):
        raise UserError(f"{output}: is a file; a SavedModel is a folder")
    if fmt == "savedmodel" and os.path.isdir(path):  # the export replaces the whole folder: never one of the user's
        other = _not_saved_model(path)
        if other:
            raise UserError(f"{output}: a folder that holds other files than a SavedModel ({other[0]}"
                            f"{', ...' if len(other) > 1 else ''}); the export would replace it whole: name a new "
                            "folder")
    if fmt != "savedmodel":
        check_writable(path, flag, make)  # refuses a folder
    check_writable(path + ".json", flag, make)
    return fmt
