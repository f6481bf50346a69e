"""Test set-up: Code/ on the import path, the shared reference folder located, TensorFlow quiet, on the CPU and
started as main.py starts it for training."""

import contextlib
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = os.path.join(ROOT, "Code")
# the package timnet_ser of this checkout's Code/, whatever else is installed (main.py loads it the same way)
_spec = importlib.util.spec_from_file_location("timnet_ser", os.path.join(CODE, "__init__.py"),
                                               submodule_search_locations=[CODE])
sys.modules["timnet_ser"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sys.modules["timnet_ser"])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


def _start_tensorflow_as_main_does() -> None:
    """TensorFlow's settings as ``main.py --mode train`` has them (core.tensorflow_setup.start_tensorflow: op
    determinism; Common_Model.configure_tensorflow: TIM-Net's threads, no graph optimiser), set before any test runs
    an operation: the trainings in this process run under the settings whose repeatability docs/training.md states
    (tests/test_engine.py::test_same_seed_same_run checks that they are in force)."""
    from timnet_ser.Common_Model import configure_tensorflow
    from timnet_ser.core.tensorflow_setup import start_tensorflow
    from timnet_ser.Model import MODELS
    start_tensorflow()
    configure_tensorflow(MODELS["TIMNET"])


_start_tensorflow_as_main_does()

SHARED = os.environ.get("SER_SHARED", os.path.join(ROOT, "..", "shared"))
SPEECH_WAV = os.path.join(SHARED, "data", "emodb_2s", "03a01Fa.wav")  # one real recording, where a command needs audio


def pytest_collection_modifyitems(items) -> None:
    """The README's commands (the longest file, about a sixth of the suite) run first. run_tests.sh gives each
    worker process one file at a time (pytest-xdist's loadfile): started last, that file would keep one core busy
    alone at the end."""
    items.sort(key=lambda item: item.path.name != "test_readme.py")  # stable: the rest keep their order


@pytest.fixture(scope="session")
def shared() -> str:
    """../shared (or $SER_SHARED). CI always has it: its absence is a failure, never a skip."""
    reference = os.path.join(SHARED, "reference")
    if not os.path.isdir(reference):
        pytest.fail(f"shared reference folder not found at {reference}: set SER_SHARED to the shared/ folder")
    return SHARED


def train_toy_run(spec, config, x, y, model_path, result_path, speakers=None) -> dict:
    """A run of ``config`` on in-memory features, as main.py starts one: a new run folder, every fold, results."""
    from timnet_ser.core.config import TrainingData
    from timnet_ser.data.feature_files import features_digest
    from timnet_ser.engine.cross_validation import cross_validate, start_run
    info = TrainingData(signal_length=(x.shape[1] - 1) * 512, features=spec.features, input_shape=x.shape[1:],
                        size=0, sha256=features_digest(x, y), files=None)
    run = start_run(config, info, x, speakers, model_path, result_path)
    return cross_validate(spec, [run], x, y)[0]


def retest_toy_run(spec, config, x, y, folder, result_path) -> dict:
    """Test mode on a run folder's own split, as main.py runs it."""
    from timnet_ser.engine.retest import retest_weights
    from timnet_ser.runs.run_folder import require_run
    run = require_run(folder, "--test_path")
    files = [run.weights_file(i) for i in range(run.k)]
    return retest_weights(spec, config, x, y, run.folds(len(x)), files, folder, result_path, "re-test")


@pytest.fixture
def float64():
    """Keras layers built inside the test compute in float64; the global policy is restored afterwards."""
    import keras
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def another_process_holding(lock: str, text: str):
    """A child process that holds the flock of the fold lock file ``lock`` and says ``text`` in it (``{pid}``: its
    process id), as runs/run_folder.RunFolder.training does, until the block ends; then it is killed, which frees
    the lock. Yields the child."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, time\n"
        f"fd = os.open({lock!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.ftruncate(fd, 0)\n"
        f"os.write(fd, {text!r}.format(pid=os.getpid()).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=30)
