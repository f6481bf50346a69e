"""The fused element-wise kernels of TIM-Net's block and GM-TCNet's gated unit (fused_tail.cc): where setup.sh's
build of them lies, loading it once, and whether the training kernels use it now.

setup.sh builds ``fused_tail.cc`` with the machine's C++ compiler into ``.native/fused_tail.so`` at the checkout's
root (git-ignored; an installed wheel has none). Without it every kernel runs the pure-TensorFlow path of
training_kernels.py, which stays the reference. ``enabled`` switches the fused ops on while a training step or an
inference function is traced or called (Common_Model.Trainer, under ``--fused_kernels``; a re-test and the API as
the run trained); outside it they are off, and an exported model never holds them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys

import tensorflow as tf

LIBRARY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))), ".native",
                       "fused_tail.so")

_active = False


def cpu_flags(text: str) -> set:
    """The instruction-set flags of /proc/cpuinfo's first ``flags`` line (or of that line alone), as a set."""
    line = next((line for line in text.splitlines() if line.startswith("flags")), text)
    return set(line.partition(":")[2].split() if line.startswith("flags") else line.split())


def _missing_cpu_flags() -> set:
    """Flags of the CPU the library was built for (-march=native; the build records them) that this CPU lacks."""
    try:
        with open(os.path.join(os.path.dirname(LIBRARY), "fused_tail.cpu")) as built, open("/proc/cpuinfo") as here:
            return cpu_flags(built.read()) - cpu_flags(here.read())
    except OSError:  # a portable build records none; no /proc/cpuinfo: nothing to compare
        return set()


def _built_from_other_source() -> bool:
    """Whether the library's build stamp (its first field: the digest of fused_tail.cc and build_fused_tail.sh) names
    other sources than this checkout's: a library built before the ops changed would not match the calls traced here.
    No stamp, or no sources to compare (an installed package): nothing to compare, False."""
    here = os.path.dirname(os.path.realpath(__file__))
    try:
        with open(os.path.join(os.path.dirname(LIBRARY), "fused_tail.stamp")) as stamp:
            built = stamp.read().split()[:1]
        digest = hashlib.sha256()
        for name in ("fused_tail.cc", "build_fused_tail.sh"):
            with open(os.path.join(here, name), "rb") as source:
                digest.update(source.read())
    except OSError:
        return False
    return bool(built) and built[0] != digest.hexdigest()


@functools.cache
def library():
    """The loaded op library, or None where setup.sh built none, it was built from other sources than this checkout's
    (its ops' signatures may differ from the calls here), it was built for a CPU with instructions this one
    lacks (a checkout shared between machines: loading it could stop the process on an illegal instruction), or it
    does not load in this TensorFlow."""
    if not os.path.isfile(LIBRARY):
        return None
    if _built_from_other_source():
        print(f"{LIBRARY}: built from another version of fused_tail.cc; training uses the pure-TensorFlow path until "
              "setup.sh rebuilds it", file=sys.stderr)
        return None
    if missing := _missing_cpu_flags():
        print(f"{LIBRARY}: built for another CPU (this one lacks {' '.join(sorted(missing)[:5])}); training uses "
              "the pure-TensorFlow path until setup.sh rebuilds it", file=sys.stderr)
        return None
    try:
        return tf.load_op_library(LIBRARY)
    except (tf.errors.NotFoundError, OSError) as error:  # built for another TensorFlow: setup.sh rebuilds it
        print(f"{LIBRARY}: not loaded ({error}); training uses the pure-TensorFlow path", file=sys.stderr)
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
