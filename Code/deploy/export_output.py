"""Where ``--mode export`` writes: an ``--output`` that fits ``--format``, checked before TensorFlow starts.

An ONNX or TFLite model is one file, a SavedModel a folder; each has its sidecar, ``<output>.json``, beside it
(export.py). The mode checks them, creating nothing, before TensorFlow's start-up; the export checks them again
where it begins, and makes the output's folder.
"""

from __future__ import annotations

import os

from ..core.atomic_file import check_writable
from ..core.errors import UserError
from ..core.flags import EXPORT_FORMATS

EXTENSIONS = {".onnx": "onnx", ".tflite": "tflite"}  # a SavedModel's folder has no extension of its own


def check_output(path: str, fmt: str, make: bool = False) -> None:
    """Refuse an output that cannot hold ``fmt``: an unknown format, a name with another format's extension (an ONNX
    graph in ``m.tflite``), a file where the SavedModel folder goes, a folder where a file goes, and an output or
    sidecar that could not be written. ``make=False`` creates nothing (before TensorFlow starts); ``make=True`` makes
    the output's folder and proves it writable (where the export begins)."""
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    kind = EXTENSIONS.get(os.path.splitext(path)[1].lower(), fmt)
    if kind != fmt:
        raise UserError(f"--output {path}: the name of a {kind} file, for --format {fmt}; rename it, or give "
                        f"--format {kind}")
    if fmt == "savedmodel" and os.path.isfile(path):
        raise UserError(f"--output {path}: is a file; a SavedModel is a folder")
    if fmt != "savedmodel":
        check_writable(path, "--output", make)  # refuses a folder
    check_writable(path + ".json", "--output", make)
