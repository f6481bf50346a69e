"""What every benchmark script shares: a timing job run in a fresh interpreter, the CPU's name, and this checkout's
package.

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


class Tables:
    """What a benchmark prints: each group of lines as soon as it is measured (a later failure keeps it on
    screen), all of them also written to ``markdown`` (a path, or None) by ``save``; the first line names the
    machine and the versions, followed by ``setting``."""

    def __init__(self, setting: str, markdown: str | None = None):
        from importlib.metadata import version
        self.lines: list[str] = []
        self.markdown = markdown
        self.emit(f"machine: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
                  f"TensorFlow {version('tensorflow')}; {setting}")

    def emit(self, *rows: str) -> None:
        self.lines.extend(rows)
        print("\n".join(rows), flush=True)

    def save(self) -> None:
        if self.markdown:
            with open(self.markdown, "w") as f:
                f.write("\n".join(self.lines) + "\n")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout
SHARED = os.environ.get("SER_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))  # shared/, beside the checkout


def shared_file(*parts: str) -> str:
    """The path of a file in the shared/ folder; a missing one ends the script with one line."""
    path = os.path.join(SHARED, *parts)
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path}: not found (set SER_SHARED to the shared/ folder)")
    return path


def checkout_package(code: str = os.path.join(ROOT, "Code")):
    """This checkout's Code/ (or the folder ``code``, another checkout's) as the package timnet_ser (as
    tests/conftest.py loads it), whatever is installed."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("timnet_ser", os.path.join(code, "__init__.py"),
                                                  submodule_search_locations=[code])
    sys.modules["timnet_ser"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["timnet_ser"])
    return sys.modules["timnet_ser"]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


# Timing helpers for jobs that time TensorFlow functions; the job imports time and tensorflow as tf first.
TIMING = """
def timed(function, *args, repeat=20, clock=time.perf_counter):
    \"\"\"Seconds per call of ``function(*args)`` after one call that traces it (``clock``: wall or CPU time).\"\"\"
    function(*args)
    start = clock()
    for _ in range(repeat):
        out = function(*args)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    return (clock() - start) / repeat


def with_backward(unit, weights):
    \"\"\"A compiled step: ``unit``'s forward pass and the gradients of a scalar of its output for its input and its
    ``weights``, as a training step computes them (a gradient not asked for is pruned from the graph: without the
    weights' gradients, the kernel-gradient products would not run).\"\"\"
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch([x, *weights])
            out = unit(x)
            loss = tf.reduce_sum(out * out)
        return tape.gradient(loss, [x, *weights])
    return step
"""


def one_line_errors(main) -> None:
    """``main()``, a UserError of the package (a bad flag, a missing file) ending the script as the command line
    ends: ``error: ...`` on one line, exit status 2, not a traceback."""
    try:
        main()
    except ModuleNotFoundError as missing:  # another interpreter than the project's (python outside the .venv)
        print(f"error: {sys.executable} has no module {missing.name!r}: run this with the project's environment "
              "(.venv/bin/python, which setup.sh makes)", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:  # the package is imported inside main (checkout_package): matched by its class name
        if type(exc).__name__ not in ("UserError", "DiskFull", "Diverged"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
