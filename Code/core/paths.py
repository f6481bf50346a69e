"""Where things are: the package's own folder (``Code/``, for the scripts that run it) and the default folders
of the command line and the API.

Default folders are relative to the current directory (``./MFCC``, ``./Models``, ``./Results`` ...): run as the
original is (``cd Code && python main.py``) they are ``Code/MFCC`` and so on, as before; run as the installed
``timnet-ser`` they are where the user works, never inside the installed package.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Optional

from .errors import UserError

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # Code/, the folder of timnet_ser
MAIN = os.path.join(PACKAGE, "main.py")

FEATURES = "MFCC"  # the original's folder of feature files (MFCCs, and log-Mel segments beside them)
MODELS = "Models"
RESULTS = "Results"
AUTHORS_WEIGHTS = os.path.join("Test_Models", "EMODB_46")
CORPORA = "Corpora"
SYNTHETIC_WAV = "synthetic_wav"


@functools.cache
def source_digest() -> str:
    """The first 12 hex digits of the sha256 of the program's source: every .py and .cc file of the package and of
    its sub-packages (not of the data folders beside them). What a run's folds record of the program that trained
    them: a resume by another version trains its folds with other code (another rounding, a mended step). Read
    once per process: every fold record and results file of it names the same program, hashed once."""
    import hashlib
    digest = hashlib.sha256()
    folders = [PACKAGE] + sorted(os.path.join(PACKAGE, name) for name in os.listdir(PACKAGE)
                                 if os.path.isfile(os.path.join(PACKAGE, name, "__init__.py")))
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            if name.endswith((".py", ".cc")):
                digest.update(f"{os.path.relpath(os.path.join(folder, name), PACKAGE)}\0".encode())
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:12]


def command() -> str:
    """The command this program was started as, for the commands a message suggests: ``timnet-ser`` where the
    installed command runs, else ``python main.py`` (run from ``Code/`` as the original is; the API too)."""
    return "timnet-ser" if os.path.basename(sys.argv[0] if sys.argv else "") == "timnet-ser" else "python main.py"


def feature_path(data: str, kind: str, given: str | None = None) -> str:
    """``given``, or the default feature file of corpus ``data`` and feature kind ``kind``: ``MFCC/<DATA>.npy`` for
    MFCCs, ``MFCC/<DATA>_<kind>.npy`` for the others (relative to the current directory)."""
    suffix = "" if kind == "mfcc" else f"_{kind}"
    return given or os.path.join(FEATURES, f"{data}{suffix}.npy")


def shown(path: str) -> str:
    """``path`` as the console shows it: relative to the current directory when it lies inside it (what the user
    typed, and no machine's folder names in logs and READMEs), else as it is."""
    relative = os.path.relpath(os.path.abspath(path))
    return path if relative.startswith(os.pardir) else relative


def not_a_folder(named: str, path: str, what: str = "folder") -> UserError:
    """The one-line error for ``path`` (shown as ``named``: the flag and the path), which is not a ``what``: missing,
    or a file (what is often given instead: a weights file or a wav file for the folder that holds it)."""
    return UserError(f"{named}: {'is a file, not a' if os.path.exists(path) else 'no such'} {what}")


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it, links resolved (where the bytes would go)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_outside_weights(output: str, weights_folder: str, shown_as: Optional[str] = None) -> None:
    """Refuse an output (``shown_as`` in the message; default ``--output <output>``) inside the weights folder it is
    made from (links resolved: where the bytes would go): a typo there replaced a fold's weights or the run's
    run.json, and the run was damaged for good."""
    if os.path.isdir(weights_folder) and inside(output, weights_folder):
        raise UserError(f"{shown_as or f'--output {output}'}: inside the weights folder {weights_folder}, whose "
                        "weights and records it could replace; write it elsewhere")
