"""A local Ray ends with the process that started it, however that process ends (SIGKILL included).

Measured on Ray 2.60 (docs/reliability.md, tests/test_grid.py): when the driver of a local Ray is SIGKILLed, its
GCS, raylet and workers end with it, but Ray's dashboard agent and runtime-env agent live on for some 60 s more:
each sees its raylet die and first reports that to the GCS, which is dead too, with a timeout of 60 s written into
Ray (``ray._private.utils.publish_error_to_driver``).

So the driver starts a small watchdog before Ray: a separate Python process, in a session of its own (a Ctrl-C in
the terminal does not reach it), that notes the driver's descendants once a second and waits for the end of a
pipe only the driver holds. The operating system closes that pipe when the driver ends, for whatever reason; the
watchdog then kills the descendants it noted that still run (the same process: same pid and start time) and their
own descendants. The processes are found by their parents, not by a mark in their environment: Ray's process
titles overwrite part of /proc/PID/environ. A process started in the last second before the driver's end, whose
parent ended too, can escape it (Ray starts its processes in the seconds after ``ray.init``, long before a grid
ends). On a normal end ``ray.shutdown`` has stopped them already and the watchdog finds none. Linux only (it reads
/proc); elsewhere nothing is started.
"""

from __future__ import annotations

import os
import subprocess
import sys

# Runs in the watchdog (python -I -S): the standard library only, nothing printed.
_WATCHDOG = r"""
import os, select, signal, sys
driver, me = int(sys.argv[1]), os.getpid()

def processes():  # {pid: (parent pid, start time)} of every process, from /proc/PID/stat
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                found[int(name)] = (int(fields[1]), fields[19])
            except (OSError, IndexError, ValueError):  # ended meanwhile
                pass
    return found

def descendants(table, roots):
    children = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found - {me}

noted = {}  # pid: start time
while not (select.select([0], [], [], 1.0)[0] and os.read(0, 1) == b""):  # the driver never writes: EOF or wait
    table = processes()
    noted.update({pid: table[pid][1] for pid in descendants(table, [driver])})
table = processes()
alive = [pid for pid, start in noted.items() if table.get(pid, (0, None))[1] == start]
for pid in set(alive) | descendants(table, alive):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""

_watchdog: subprocess.Popen | None = None  # its pipe stays open as long as this process lives


def share_fate() -> None:
    """From now on, the processes descended from this one (a local Ray's, and any other it started) end when this
    one ends; once per process. A child meant to outlive a program that embeds the grid must leave its process
    tree (a double fork, as a daemon does)."""
    global _watchdog
    if _watchdog is not None or not os.path.isdir("/proc"):
        return
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}  # no token
    # -I -S: none of the user's Python settings nor site-packages, so nothing but the code above runs in it
    _watchdog = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid())],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=environment, start_new_session=True, close_fds=True)
