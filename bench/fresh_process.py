"""What every benchmark script shares: a timing job run in a fresh interpreter, and the CPU's name.

Each job is a Python snippet that prints one JSON line last; a fresh process per job keeps TensorFlow's
thread settings, compiled functions and peak memory from leaking from one measurement into the next.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys


def run_json(code: str, what: str, env: dict | None = None) -> dict:
    """Run ``code`` with this interpreter (extra environment variables ``env``); its last stdout line as JSON.

    A failing job ends the script with ``what`` and the end of the job's stderr.
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if done.returncode:
        raise SystemExit(f"{what} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"
