"""One way to write a file so that it is either complete or absent: write beside it, then rename.

Every results, weights, feature and run file of the project goes through ``atomic_write``: an
interrupted run (Ctrl-C, SIGKILL, a full disk) never leaves a half-written file under a real name. What a killed
process leaves is a temporary named ``.<name>.partial-<pid>h<host>_<random><ext>`` (``PARTIAL``): the next write of
the same file removes it once no process of that pid lives on this host (``_remove_stale``: a killed extraction,
prediction, export or report left one more feature file's or model's worth of bytes each time), and
``remove_partials`` removes every temporary of a run folder when its run is resumed or its grid planned again; a
full disk (or a file-size limit) is one ``DiskFull`` line naming the file, the temporary removed.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator

from .errors import DiskFull, InterruptedAfterWriting, UserError
from .paths import shown

PARTIAL = ".partial-"  # in the name of every temporary of this module: .<name>.partial-<pid>h<host>_<random>[<ext>]
_PARTIAL_NAME = re.compile(r"\.(?P<name>.+)" + re.escape(PARTIAL) + r"[A-Za-z0-9_]+(\.[^/]*)?")


def _pid_space() -> str:
    """This host and process-id namespace: a pid tells whether its writer still runs only where it was made (a folder
    on a network file system is shared with other hosts' processes, and containers may share the host's name but not
    its pids; Ray's often do), so a temporary names where its writer ran."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # pid:[4026531836]; not on macOS: the host alone
    except OSError:
        namespace = ""
    return "h" + hashlib.sha256(f"{socket.gethostname()}\n{namespace}".encode()).hexdigest()[:6]


_HOST = _pid_space()  # in every temporary's name, after its writer's pid
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # a full disk, a file-size limit (RLIMIT_FSIZE), a quota

# mkstemp creates files readable by their owner only; ours get the usual umask-based mode instead.
# os.umask can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FOLDER_MODE = 0o777 & ~_UMASK  # what os.makedirs gives a folder; mkdtemp gives 0o700


_STAGING = threading.local()  # .outputs: the list ``one_commit`` collects this thread's staged outputs in


def atomic_write(path: str, write: Callable[[str], None], follow_link: bool = False) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it onto ``path``.

    The temporary file lives in the same folder, so ``os.replace`` is a rename, never a copy, and it keeps
    ``path``'s extension (writers such as pandas choose the format by it). On any failure it is removed. Inside
    ``one_commit`` the rename waits for the block's end, with the block's other outputs.

    A symbolic link at ``path`` is itself replaced by the file, its target untouched: for a name the program chose
    (results, report and run files), where a link planted in a shared folder had the program replace, and change
    the mode of, whatever file it pointed to. ``follow_link``: for a path the user typed (``--output latest.csv``,
    a link to a dated file), the link is written through, as ``open`` would: its target is replaced, the link stays.
    """
    if follow_link and os.path.islink(path):  # the rename would replace the link itself with a file
        path = os.path.realpath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale(path, os.path.splitext(path)[1])
    fd, tmp = tempfile.mkstemp(prefix=partial_prefix(path), suffix=os.path.splitext(path)[1], dir=folder)
    os.close(fd)
    _stage_or_commit(path, tmp, False, lambda: _write_file(tmp, write))


def partial_prefix(path: str) -> str:
    """The start of a temporary's name for ``path``: ``.<name>.partial-<pid>h<host>_`` (``mkstemp`` or ``mkdtemp``
    adds the rest); for this module's writes, and a folder renamed aside to be removed (runs/run_folder.py)."""
    return f".{os.path.basename(path)}{PARTIAL}{os.getpid()}{_HOST}_"


def _remove_stale(path: str, suffix: str) -> None:
    """Remove the temporaries of ``path`` (this exact name, its ``suffix``) that a process of this host and this user
    left when it was killed mid-write (SIGKILL, a crash): each killed extraction or prediction left one, the size of
    a feature file or an output, and the next run of the command left another beside it. A temporary whose pid is
    alive is another write's, in progress; one of another user, or made on another host or in another pid namespace
    (``_pid_space``), is never touched. Best effort: a temporary that cannot be removed is left, and the write goes
    on."""
    folder, name = os.path.split(os.path.abspath(path))
    stale = re.compile(re.escape(f".{name}{PARTIAL}") + r"(\d+)" + re.escape(_HOST) + r"_[A-Za-z0-9_]+"
                       + re.escape(suffix))
    try:
        names = os.listdir(folder)
    except OSError:  # the write itself says what is wrong with the folder
        return
    for found in filter(None, map(stale.fullmatch, names)):
        if _may_be_writing(int(found[1])):
            continue
        temporary = os.path.join(folder, found[0])
        with contextlib.suppress(OSError):  # removed by another run at the same moment, or not ours to remove
            if os.lstat(temporary).st_uid != os.getuid():
                continue
            if os.path.isdir(temporary) and not os.path.islink(temporary):
                shutil.rmtree(temporary)
            else:
                os.remove(temporary)


def _may_be_writing(pid: int) -> bool:
    """Whether a process ``pid`` may exist on this host: one that exists (another user's too: signal 0 is then
    refused, not unknown), or a number no process of ours had (0 would signal a process group)."""
    if not 0 < pid < 2 ** 31:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def _write_file(tmp: str, write: Callable[[str], None]) -> None:
    os.chmod(tmp, 0o666 & ~_UMASK)
    write(tmp)
    with open(tmp, "rb+") as f:  # the bytes are on disk before the name points at them
        os.fsync(f.fileno())


def _stage_or_commit(path: str, tmp: str, folder: bool, write: Callable[[], None]) -> None:
    """``write()`` the temporary ``tmp`` of ``path``, then rename it into place, or leave that to ``one_commit``;
    the temporary removed on any failure, a full disk said in one line."""
    staged = getattr(_STAGING, "outputs", None)
    try:
        write()
        if staged is not None:
            staged.append((tmp, path, folder))
            return
        _commit(tmp, path, folder)
    except Exception as exc:  # said in one line when the disk is full, raised as it was otherwise
        _raise_if_full(path, exc)
        raise
    finally:
        if staged is None or (tmp, path, folder) not in staged:
            _remove(tmp, folder)


def _remove(tmp: str, folder: bool) -> None:
    """A temporary file or folder that is still there."""
    if os.path.lexists(tmp):
        (shutil.rmtree if folder else os.remove)(tmp)


def _commit(tmp: str, path: str, folder: bool) -> None:
    """Rename the written temporary ``tmp`` onto ``path``. A folder already there is first renamed aside and removed
    after the swap, or put back where the swap did not happen (an interrupt between the two renames deleted the
    previous export with the new one)."""
    if not folder:
        os.replace(tmp, path)
        return
    old = None
    try:
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}{PARTIAL}old", dir=os.path.dirname(
                os.path.abspath(path)))
            os.replace(path, old)  # an empty folder is replaced by a rename
        os.replace(tmp, path)
    finally:
        if old and not os.path.exists(path):
            os.replace(old, path)
        elif old:
            shutil.rmtree(old)


@contextlib.contextmanager
def one_commit() -> Iterator[None]:
    """Outputs that belong together (a model and its sidecar, a run's results files, a report's files): every
    ``atomic_write`` and ``atomic_directory`` inside the block only writes its temporary; at the block's end all are
    renamed into place one after the other, with Ctrl-C and SIGTERM held back until the last (``_signals_held``), so
    that an interrupt leaves the old set or the new one, never some of each (an interrupt after one rename left a
    model with the previous export's sidecar). A failure, or an interrupt, inside the block renames nothing and
    removes the temporaries. A SIGKILL between two renames (microseconds) can still leave a mix."""
    if getattr(_STAGING, "outputs", None) is not None:  # inside another block: its end commits these too
        yield
        return
    staged = _STAGING.outputs = []
    try:
        yield
    except BaseException:
        _remove_all(staged)
        raise
    finally:
        _STAGING.outputs = None
    for _, path, folder in staged:  # what a rename would refuse, found before the first rename
        if os.path.isdir(path) and not os.path.islink(path) and not folder:
            _remove_all(staged)
            raise UserError(f"{shown(path)}: is a folder; nothing was written")
        if folder and (os.path.islink(path) or os.path.lexists(path) and not os.path.isdir(path)):
            _remove_all(staged)
            raise UserError(f"{shown(path)}: {'a link' if os.path.islink(path) else 'a file'} where a folder is "
                            "written; nothing was written")
    with _signals_held(", ".join(shown(path) for _, path, _ in staged)):
        try:
            for tmp, path, folder in staged:
                try:
                    _commit(tmp, path, folder)
                except Exception as exc:
                    _raise_if_full(path, exc)
                    if isinstance(exc, OSError):
                        raise UserError(f"{shown(path)}: cannot be written ({exc.strerror or exc})") from None
                    raise
        finally:
            _remove_all(staged)  # what a failed rename left


def _remove_all(staged: list) -> None:
    for tmp, _, folder in staged:
        _remove(tmp, folder)


@contextlib.contextmanager
def _signals_held(written: str) -> Iterator[None]:
    """Ctrl-C and SIGTERM that arrive in the block take effect at its end. Python runs signal handlers in the main
    thread only (any thread may receive the signal, TensorFlow's among them, so blocking it in this one does not
    hold it back): the handlers are swapped for one that notes the signal. Elsewhere than the main thread nothing
    can be held, nor a signal whose handler was set outside Python. A noted signal is then handled as it would have
    been, and where that raises KeyboardInterrupt after the block succeeded, the interrupt says that ``written``
    was written (the command line said "nothing was written")."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted = []
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    previous = {number: handler for number, handler in previous.items() if handler is not None}
    for number in previous:
        signal.signal(number, lambda received, frame: noted.append(received))
    done = False
    try:
        yield
        done = True
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if noted:  # as it would have been handled: Python's Ctrl-C handler, a program's own, or the default's end
            handler = previous[noted[0]]
            try:
                if callable(handler):
                    handler(noted[0], None)
                elif handler == signal.SIG_DFL:
                    os.kill(os.getpid(), noted[0])
            except KeyboardInterrupt:
                if not done:
                    raise
                raise InterruptedAfterWriting(f"{written} written first, complete") from None


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


def write_table(path: str, as_json, header: list[str], rows: Iterable[list], follow_link: bool = False) -> None:
    """``as_json`` as JSON if ``path`` ends in .json, else ``header`` and ``rows`` as CSV (``spreadsheet_safe``);
    written atomically (``follow_link``: as ``atomic_write``'s, for a path the user typed).
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
        atomic_write(path, write, follow_link)
    except OSError as exc:
        raise UserError(f"--output {path}: cannot be written ({exc.strerror or exc})") from None


def atomic_directory(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` into a new folder beside ``path``, then rename it onto ``path`` (``atomic_write`` for folders).

    A folder already at ``path`` is first renamed aside and removed after the swap; an interrupt between the two
    renames puts it back (``_commit``), so ``path`` holds the old folder or the new one, never half of one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale(path, "")
    tmp = tempfile.mkdtemp(prefix=partial_prefix(path), dir=folder)

    def write_folder() -> None:
        os.chmod(tmp, FOLDER_MODE)
        write(tmp)
        for root, _, names in os.walk(tmp):  # the bytes are on disk before the name points at them
            for name in names:
                with open(os.path.join(root, name), "rb+") as f:
                    os.fsync(f.fileno())
    _stage_or_commit(path, tmp, True, write_folder)


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
    name = os.path.basename(path)
    longest = len(f"{partial_prefix(name)}12345678{os.path.splitext(name)[1]}".encode())  # atomic_write's temporary
    if longest > 255:  # the usual NAME_MAX: a 245-byte name was refused only when its file was written, at the end
        raise UserError(f"{flag} {path}: the name is too long to be written ({len(name.encode())} bytes; its "
                        f"temporary needs {longest - len(name.encode())} more, and 255 is the most)")
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
