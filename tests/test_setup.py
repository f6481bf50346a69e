"""What setup.sh leaves in .venv besides the packages."""

import fcntl
import os
import shutil
import subprocess
import sys
import time

import pytest

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


@pytest.mark.skipif(shutil.which("flock") is None, reason="setup.sh locks with flock where the machine has it")
def test_a_second_set_up_of_one_checkout_waits_for_the_first(tmp_path):
    """Two set-ups at once (run_demo.sh and run_tests.sh started together) would both clear and fill .venv: the
    second waits on setup.sh's lock, says so, and goes on once the first is done (the lock held here is the first).
    The copy links this .venv, installed, so the set-up that goes on installs nothing."""
    for name in ("setup.sh", "setup_steps.py", "pyproject.toml", "Code/requirement.txt", "tests/requirements.txt"):
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), tmp_path / name)
    os.makedirs(tmp_path / "Code" / "nn")
    shutil.copy2(os.path.join(ROOT, "Code", "nn", "build_fused_tail.sh"), tmp_path / "Code" / "nn")
    os.symlink(os.path.join(ROOT, ".venv"), tmp_path / ".venv")
    env = {**os.environ, "CXX": "no-such-compiler"}  # the kernels' build: one line, nothing built
    with open(tmp_path / ".setup.lock", "w") as first:
        fcntl.flock(first, fcntl.LOCK_EX)
        second = subprocess.Popen(["bash", "setup.sh"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            line = second.stdout.readline()  # printed before it waits
            assert "another set-up of this checkout is running; waiting" in line, line
            time.sleep(1)
            assert second.poll() is None  # still waiting
        except BaseException:
            second.kill()
            raise
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0 and "installing" not in out and "pure-TensorFlow path" in out, out
