"""Which process trains which fold of a run folder: one lock file per fold (``.<k>-fold_<i>.lock``), held with the
kernel's flock while the fold trains, so that a second ``--resume`` of the run or a grid's worker never trains the
same fold at the same time; the file names the holder (process, host, since when) for the one line that refuses
the second. A killed process leaves its file but never its lock: ``remove_stale`` removes such files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Optional

from ..core.errors import UserError
from ..core.paths import shown

# Another command asking who trains a fold (``FoldLocks.holder``) holds its lock shared for an instant: a fold
# found locked is tried again for this long before it is called busy
PROBE_SECONDS = 0.2
_HELD_LOCKS: dict[str, int] = {}  # the fold locks (``FoldLocks.training``) this process holds: lock file -> descriptor
_UNGUARDED: set[str] = set()  # the run folders whose file system took no lock (warned once)


class FoldLocks:
    """The fold locks of the run folder ``path`` with ``k`` folds (numbered from 0 here, from 1 in file names)."""

    def __init__(self, path: str, k: int):
        self.path, self.k = path, k

    @contextlib.contextmanager
    def training(self, folds: Iterable[int]) -> Iterator[None]:
        """Hold the lock of each of ``folds`` (from 0) while they train, so that no other process (a second
        ``--resume`` of the run, a grid's worker) trains them at the same time; one line naming the fold and the
        process that holds it otherwise. The locks are the kernel's (flock): a killed process leaves none behind.
        A lock this process holds already is not taken again; where none can be taken (a folder this process may
        not write into, a file system without locks), the fold trains as it did before there were locks."""
        taken = []
        try:
            for fold in folds:
                path = self.lock_file(fold)
                if path in _HELD_LOCKS:
                    continue
                descriptor = self._locked(path, fold)
                if descriptor is None:
                    continue
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, f"process {os.getpid()} on {socket.gethostname()} since "
                                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
                _HELD_LOCKS[path] = descriptor
                taken.append(path)
            yield
        finally:
            for path in taken:  # removed while still locked: a process that opened it meanwhile sees it gone
                descriptor = _HELD_LOCKS.pop(path)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                fcntl.flock(descriptor, fcntl.LOCK_UN)
                os.close(descriptor)

    def holder(self, fold: int) -> str:
        """Who holds fold ``fold``'s lock (its lock file's text), or "" where no process does."""
        path = self.lock_file(fold)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return ""
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return ""
        except BlockingIOError:
            return _holder(descriptor)
        except OSError:  # a file system without locks
            return ""
        finally:
            os.close(descriptor)

    def _locked(self, path: str, fold: int) -> Optional[int]:
        """The descriptor of the lock file ``path``, locked by this process; None where no lock can be taken."""
        probed_until = time.monotonic() + PROBE_SECONDS
        while True:
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # never another file
            except OSError:  # a folder this process cannot write into: the fold's own files say so, in one line
                return None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(descriptor)
                os.close(descriptor)
                if time.monotonic() < probed_until:  # perhaps another command's holder(), for an instant
                    time.sleep(0.01)
                    continue
                raise self.busy(fold, holder) from None
            except OSError as exc:  # a file system without locks (some network mounts): the fold trains unguarded
                os.close(descriptor)
                if self.path not in _UNGUARDED:  # said once per run folder
                    _UNGUARDED.add(self.path)
                    print(f"warning: {shown(self.path)}: its file system takes no locks ({exc.strerror or exc}); "
                          "nothing stops a second process (a --resume, a grid's worker) from training the same "
                          "fold at the same time", file=sys.stderr)
                return None
            try:
                if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                    return descriptor
            except FileNotFoundError:
                pass
            os.close(descriptor)  # its holder removed the file as this process locked it: take the new one

    def lock_file(self, fold: int) -> str:
        return os.path.join(self.path, f".{self.k}-fold_{fold + 1}.lock")

    def busy(self, fold: int, holder: str) -> UserError:
        """The one line for fold ``fold`` (from 0), which ``holder`` (its lock file's text) is training."""
        return UserError(f"{shown(self.path)}: fold {fold + 1}/{self.k} is being trained by {holder}; wait for it to "
                         "end, then run this command again")

    def remove_stale(self) -> None:
        """Remove the lock files of folds that no process holds: a killed process leaves its file (never its lock),
        and a fold it had finished is not locked again, so its file stayed in the finished run. Each is removed
        while locked here, as ``training`` removes its own."""
        for fold in range(self.k):
            path = self.lock_file(fold)
            if path in _HELD_LOCKS or not os.path.isfile(path):
                continue
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # the file still at that name: another process may have replaced it meanwhile (``_locked``)
                if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
            except OSError:  # held by a process training the fold, or a file system without locks: left as it is
                pass
            finally:
                os.close(descriptor)


def _holder(descriptor: int) -> str:
    """What a fold's lock file says of the process that holds it."""
    return os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
