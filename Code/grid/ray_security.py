"""What keeps a local Ray closed to the network and to the machine's other users: loopback addresses only, a token
of its own, and its files in a folder of this user's alone.

Measured on Ray 2.60 (docs/grid.md, tests/test_grid_network.py):

- Every server of a Ray node (GCS, raylet and its object manager, the driver's and every worker's gRPC server,
  the runtime-env agent) listens on the node's IP address when that is the loopback address, and on every
  interface otherwise. ``ray.init(_node_ip_address="127.0.0.1")`` alone does not make it so:
  ``services.resolve_ip_for_localhost`` swaps a loopback address for the machine's network address unless
  ``ray_constants.ENABLE_RAY_CLUSTER`` is false, and that constant is read from
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when Ray is first imported (by anyone, before the grid).
- Ray makes its folder in the system's temporary folder (``/tmp/ray``) and each session's folder in it (logs,
  sockets) writable by every user (mode 0777), and leaves them after the session.
- A new local Ray turns token authentication on by itself, with a token kept in ``~/.ray/auth_token``, one file
  for every Ray of the user, written with the default umask (0644 here). Ray reads ``RAY_AUTH_TOKEN`` before
  that file, so a token in the environment is one of this Ray's own, on no disk.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"


def use_new_token() -> None:
    """Token authentication with a new random token (256 bits) for the Ray about to start in this process.

    The token lives in this process's environment, inherited by the Ray processes it starts (readable by this
    user and root only, in /proc/PID/environ), and is never printed or written to a file. Ray caches its
    configuration and the token it read: both are read again here, for a Ray imported before or a second grid.
    """
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    from ray._raylet import AuthenticationTokenLoader, Config
    Config.initialize("")  # the mode: RayConfig reads RAY_AUTH_MODE when initialized
    AuthenticationTokenLoader.instance().reset_cache()


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """Within: a Ray started here keeps ``_node_ip_address="127.0.0.1"`` as its node address (see above).

    Ray's constant is restored after: once the node has started, Ray takes the node's address from it, and the
    rest of this process (a later ``ray.init`` that joins a cluster) sees the constant as Ray set it.
    """
    from ray._private import ray_constants
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def private_folder() -> str:
    """The folder a local Ray of this user keeps its sessions in (``ray._temp_dir``): ``ray`` in ``closed_folder()``,
    so that what Ray makes writable by everyone inside it (the folder it is given too) is closed to other users."""
    return os.path.join(closed_folder(), "ray")


KEPT_SESSIONS = 5  # the newest ended sessions a local Ray leaves, kept for their logs
# a session whose files changed this recently is taken as running whatever its pid says: one started on another
# machine whose RAY_TMPDIR is shared (its pid means nothing here), or by `ray start`, whose process exits once it runs
QUIET_SECONDS = 3600


def prune_sessions(folder: str, keep: int = KEPT_SESSIONS) -> None:
    """Remove from ``folder`` (``private_folder()``) the sessions of local Rays that ended, but the newest ``keep``:
    Ray leaves each session's folder (logs, sockets) behind, and a user's grids piled them up (98 folders, 21 MB,
    on this project's test machine by one day's runs). A session is ``session_<date>_<time>_<microseconds>_<pid>``,
    the pid that of the process that started it: a session whose process runs (a grid running beside this one), or
    whose files changed within ``QUIET_SECONDS``, is never touched."""
    if not os.path.isdir(folder):  # no local Ray started here yet
        return
    sessions = sorted((name, pid) for name in os.listdir(folder) if name.startswith("session_")
                      and (pid := name.rsplit("_", 1)[-1]).isdigit() and not os.path.islink(os.path.join(folder, name)))
    ended = [name for name, pid in sessions if not _running(int(pid)) and not _recent(os.path.join(folder, name))]
    for name in ended[:max(0, len(ended) - keep)]:  # oldest first: names begin with their time
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (a number beyond any pid: none)
        return False
    except OSError:  # another user's process: running
        return True
    return True


def _recent(session: str) -> bool:
    """Whether the session folder or a file of its ``logs`` changed within ``QUIET_SECONDS``."""
    try:
        logs = os.path.join(session, "logs")
        times = [os.stat(session).st_mtime] + ([entry.stat().st_mtime for entry in os.scandir(logs)]
                                                if os.path.isdir(logs) else [])
    except OSError:  # removed meanwhile: nothing to prune
        return True
    return time.time() - max(times) < QUIET_SECONDS


def closed_folder() -> str:
    """``ray-<uid>`` in ``RAY_TMPDIR`` where it is set, else in the system's temporary folder, readable and
    writable by this user alone (0700): where the grid keeps the local Ray's files and its workers' link to the
    package (``pool.package_parent``); one line where it exists and is not this user's own folder."""
    from ..core.errors import UserError
    # RAY_TMPDIR, where a user pointed Ray away from a small /tmp, is still where its files go
    closed = os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), f"ray-{os.getuid()}")
    try:
        os.makedirs(closed, mode=0o700, exist_ok=True)
        status = os.lstat(closed)
        if status.st_uid != os.getuid() or not os.path.isdir(closed) or os.path.islink(closed):
            raise FileExistsError
        os.chmod(closed, 0o700)
    except OSError as exc:  # a file or a link of that name (anyone can make one in /tmp), or no room to make it
        why = "not a folder of this user's" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
        variable = "RAY_TMPDIR" if os.environ.get("RAY_TMPDIR") else "TMPDIR"  # the one in effect
        raise UserError(f"{closed}: {why}, where the grid keeps the local Ray's files and its workers' link to the "
                        f"package; remove it, or set {variable} to a folder of your own") from None
    return closed
