"""One way to write a file so that it is either complete or absent: write beside it, then rename.

Every results, weights, feature and run file of the project goes through ``atomic_write``: an
interrupted run (Ctrl-C, SIGKILL, a full disk) never leaves a half-written file under a real name. What a killed
process leaves is a temporary named ``.<name>.partial-<random><ext>`` (``PARTIAL``), removed by
``remove_partials`` when its run is resumed or its grid planned again; a full disk (or a file-size limit) is one
``DiskFull`` line naming the file, the temporary removed.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator

from .errors import DiskFull, UserError
from .paths import shown

PARTIAL = ".partial-"  # in the name of every temporary of this module: .<name>.partial-<random>[<ext>]
_PARTIAL_NAME = re.compile(r"\.(?P<name>.+)" + re.escape(PARTIAL) + r"[A-Za-z0-9_]+(\.[^/]*)?")
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # a full disk, a file-size limit (RLIMIT_FSIZE), a quota

# mkstemp creates files readable by their owner only; ours get the usual umask-based mode instead.
# os.umask can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FOLDER_MODE = 0o777 & ~_UMASK  # what os.makedirs gives a folder; mkdtemp gives 0o700


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it onto ``path``.

    The temporary file lives in the same folder, so ``os.replace`` is a rename, never a copy, and it keeps
    ``path``'s extension (writers such as pandas choose the format by it). On any failure it is removed. A symbolic
    link at ``path`` is written through, as ``open`` would: its target is replaced, the link stays.
    """
    if os.path.islink(path):  # the rename replaced the link itself with a file before
        path = os.path.realpath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}{PARTIAL}", suffix=os.path.splitext(path)[1],
                               dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        write(tmp)
        with open(tmp, "rb+") as f:  # the bytes are on disk before the name points at them
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as exc:  # said in one line when the disk is full, raised as it was otherwise
        _raise_if_full(path, exc)
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """``value`` as a spreadsheet shows it, never run as a formula: a text that begins with = + - @ (or a tab or a
    carriage return) gets a leading ' (OWASP's rule for CSV injection); numbers, and texts that read as numbers,
    stay. A class or file name from a downloaded run reached the CSV and xlsx outputs as it was."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def write_table(path: str, as_json, header: list[str], rows: Iterable[list]) -> None:
    """``as_json`` as JSON if ``path`` ends in .json, else ``header`` and ``rows`` as CSV (``spreadsheet_safe``);
    written atomically.
    ``as_json`` may be an iterator: its items are written as a JSON array one at a time, as they come.

    A folder that cannot be written is one line naming ``--output`` (predict's and the timeline's flag).
    """
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            if path.lower().endswith(".json") and isinstance(as_json, Iterator):  # a JSON array, item by item
                f.write("[")
                for i, item in enumerate(as_json):
                    f.write(("," if i else "") + "\n " + json.dumps(item, indent=1).replace("\n", "\n "))
                f.write("\n]")
                return
            if path.lower().endswith(".json"):
                json.dump(as_json, f, indent=1)
                return
            writer = csv.writer(f)
            writer.writerow([spreadsheet_safe(cell) for cell in header])
            writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise UserError(f"--output {path}: cannot be written ({exc.strerror or exc})") from None


def atomic_directory(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` into a new folder beside ``path``, then rename it onto ``path`` (``atomic_write`` for folders).

    A folder already at ``path`` is first renamed aside and removed after the swap: a crash between the two
    renames leaves ``path`` absent, never half-written.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}{PARTIAL}", dir=folder)
    old = None
    try:
        os.chmod(tmp, FOLDER_MODE)
        write(tmp)
        for root, _, names in os.walk(tmp):  # the bytes are on disk before the name points at them
            for name in names:
                with open(os.path.join(root, name), "rb+") as f:
                    os.fsync(f.fileno())
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}{PARTIAL}old", dir=folder)
            os.replace(path, old)  # an empty folder is replaced by a rename
        os.replace(tmp, path)
    except Exception as exc:  # said in one line when the disk is full, raised as it was otherwise
        _raise_if_full(path, exc)
        raise
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.exists(leftover):
                shutil.rmtree(leftover)


def _raise_if_full(path: str, exc: Exception) -> None:
    """A one-line ``UserError`` naming ``path`` when ``exc`` says the disk is full or a file-size limit was reached:
    an ``OSError`` by its errno, another (TensorFlow's, writing a SavedModel) by the system's text for it."""
    full = [e for e in _FULL if getattr(exc, "errno", None) == e or os.strerror(e) in str(exc)]
    if full:
        raise DiskFull(f"{path}: cannot be written ({os.strerror(full[0])}); nothing was written under this "
                       "name") from None


def remove_partials(folder: str, names: re.Pattern | None = None) -> list[str]:
    """Remove the temporaries (``.<name>.partial-...``) that a killed process left in ``folder``; their names.
    With ``names``, only the temporaries of files whose name it matches in full.

    Only for files no other process writes to now (a run folder being resumed or planned, that run's results)."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        partial = _PARTIAL_NAME.fullmatch(name)
        if partial and (names is None or names.fullmatch(partial["name"])):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(name)
    return removed


def check_writable(path: str, flag: str, make: bool = True) -> None:
    """Prove, before any work, that ``path`` can be written: its folder is created and a file made in it.

    A one-line ``UserError`` names ``flag`` and ``path`` otherwise, so that a long extraction or prediction never
    ends in an unwritable output. ``make=False`` creates nothing (before TensorFlow starts, where a later refusal
    should leave no folder behind): the first existing part of the folder's path must be a folder this process may
    write into.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a folder, not a file")
    existing = _existing_part(folder)
    if not os.path.isdir(existing):  # makedirs would say "File exists" or "Not a directory"
        raise UserError(f"{flag} {path}: cannot be written ({shown(existing)} is a file, not a folder)")
    if not make:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {path}: cannot be written (no permission to write in {shown(existing)})")
        return
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot be written ({exc.strerror or exc})") from None


def check_writable_folder(folder: str, flag: str) -> None:
    """Refuse, in one line naming ``flag``, a folder that could not be created or written, found without creating
    anything (``check_writable`` makes a file's folder): the first part of its path that exists is a file, or a folder
    this process may not write into. Said before TensorFlow starts; a refused command leaves no folder behind, and the
    folder is made, and proved writable, where a run first writes into it."""
    path = _existing_part(folder)
    if not os.path.isdir(path):
        raise UserError(f"{flag} {folder}: cannot be a folder ({shown(path)} is a file)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {folder}: cannot write there (no permission to write in {shown(path)})")


def _existing_part(folder: str) -> str:
    """The longest leading part of ``folder``'s absolute path that exists (a folder, or a file in the way)."""
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path
