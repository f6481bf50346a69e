"""TensorFlow's start: quiet (its C++ start-up chatter kept off the terminal), GPU memory on demand, repeatable.

Used by the command line before any mode that builds a model, and by the Python API (api.py), which must
print nothing.
"""

from __future__ import annotations

import os
import sys


def quietly(action):
    """Run ``action()`` with TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) kept off the terminal.

    Those lines are written to file descriptor 2 before any log setting applies, so stderr is
    pointed at /dev/null for the call only; an exception still propagates and prints normally.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return action()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def start_tensorflow() -> None:
    """Import TensorFlow quietly, grow GPU memory on demand, make CPU runs repeatable (same seed, same numbers)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = quietly(lambda: __import__("tensorflow"))
    tf.get_logger().setLevel("ERROR")
    for device in quietly(lambda: tf.config.list_physical_devices("GPU")):  # CUDA probing is chatty too
        try:
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:  # the GPU is already in use (a second start in one process): keep its setting
            pass
    tf.config.experimental.enable_op_determinism()
