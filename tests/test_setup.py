"""What setup.sh leaves in .venv besides the packages."""

import os
import subprocess
import sys

from conftest import ROOT


def test_librosas_numba_functions_are_already_cached():
    """setup.sh compiles librosa's numba functions in one process when it installs. Compiled by several processes at
    once instead (the test workers or a grid's workers on a fresh .venv), a gufunc's kernel and its wrapper can be
    cached by two processes under different names, and a later process that loads both calls a null pointer
    (numba issue #10128): a worker died that way in librosa.yin. So no process after setup.sh may compile one:
    setup.sh's own step, run again, only reads the cache."""
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_CACHE_DIR"}
    done = subprocess.run([sys.executable, os.path.join(ROOT, "setup_steps.py"), "cache-librosa"],
                          env={**env, "NUMBA_DEBUG_CACHE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (done.stdout + done.stderr).splitlines()
    assert any("data loaded from" in line for line in log), "numba's cache was not used at all"
    compiled = [line for line in log if "data saved to" in line]
    assert not compiled, f"{len(compiled)} librosa functions were compiled after setup.sh, e.g. {compiled[0]}"
