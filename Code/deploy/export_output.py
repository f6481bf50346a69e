"""Where ``--mode export`` writes: an ``--output`` that fits ``--format``, checked before TensorFlow starts.

An ONNX or TFLite model is one file, a SavedModel a folder; each has its sidecar, ``<output>.json``, beside it
(export.py). The mode checks them, creating nothing, before TensorFlow's start-up; the export checks them again
where it begins, and makes the output's folder.
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


def check_output(path: str, fmt: str, weights_folder: Optional[str], make: bool = False, api: bool = True) -> None:
    """Refuse an output that cannot hold ``fmt``: an unknown format, a name with another format's extension (an ONNX
    graph in ``m.tflite``), a file where the SavedModel folder goes, a folder of other files than a SavedModel
    there (the export replaces it whole), a folder where a file goes, an output inside ``weights_folder`` (the
    folder it is made from), and an output or sidecar that could not be written. ``make=False`` creates nothing
    (before TensorFlow starts); ``make=True`` makes the output's folder and proves it writable (where the export
    begins). The messages name the API's ``path`` and ``format``, or with ``api=False`` ``--output`` and
    ``--format``."""
    output, flag = (f"path={path!r}", "path") if api else (f"--output {path}", "--output")
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"{named('format', fmt, api)}: choose one of {', '.join(EXPORT_FORMATS)}")
    if weights_folder is not None:  # the sidecar, beside the output, lies inside it only where the output does
        check_outside_weights(path, weights_folder, output)
    extension = os.path.splitext(path)[1].lower()
    kind = EXTENSIONS.get(extension, fmt)
    if kind != fmt:
        raise UserError(f"{output}: the name of {'an' if kind == 'onnx' else 'a'} {kind} file, for "
                        f"{named('format', fmt, api, quoted=False)}; rename it, or give "
                        f"{named('format', kind, api, quoted=False)}")
    if fmt != "savedmodel" and extension not in ("", f".{fmt}"):  # notes.txt was replaced by an ONNX graph
        raise UserError(f"{output}: not the name of {'an' if fmt == 'onnx' else 'a'} {fmt} file; name it .{fmt}")
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
