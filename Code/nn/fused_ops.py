"""The fused element-wise kernels of TIM-Net's temporal-aware block (fused_tail.cc): where setup.sh's build of them
lies, loading it once, and whether the training kernels use it now.

setup.sh builds ``fused_tail.cc`` with the machine's C++ compiler into ``.native/fused_tail.so`` at the checkout's
root (git-ignored; an installed wheel has none). Without it every kernel runs the pure-TensorFlow path of
training_kernels.py, which stays the reference. ``enabled`` switches the fused ops on while a training step is
traced (Common_Model.Trainer, under ``--fused_kernels``); outside it they are off.
"""

from __future__ import annotations

import contextlib
import functools
import os

import tensorflow as tf

LIBRARY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))), ".native",
                       "fused_tail.so")

_active = False


@functools.cache
def library():
    """The loaded op library, or None where setup.sh built none (or it does not load in this TensorFlow)."""
    if not os.path.isfile(LIBRARY):
        return None
    try:
        return tf.load_op_library(LIBRARY)
    except (tf.errors.NotFoundError, OSError) as error:  # built for another TensorFlow: setup.sh rebuilds it
        print(f"{LIBRARY}: not loaded ({error}); training uses the pure-TensorFlow path")
        return None


def available() -> bool:
    """The library is built and loads, and TensorFlow computes on the CPU: the ops have CPU kernels only (on a GPU
    they would copy every activation to the host and back)."""
    return library() is not None and not tf.config.list_physical_devices("GPU")


def active() -> bool:
    """Whether the training kernels traced now use the fused ops."""
    return _active


@contextlib.contextmanager
def enabled(wanted: bool = True):
    """Within the block, the training kernels use the fused ops if ``wanted`` and they are ``available``."""
    global _active
    before, _active = _active, bool(wanted) and available()
    try:
        yield _active
    finally:
        _active = before
