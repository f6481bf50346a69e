"""The two steps of setup.sh that its tests check too, so that both run the same code.

    python setup_steps.py digest          the install stamp: a digest of the files that decide what .venv holds
    python setup_steps.py cache-librosa   import every librosa module, which compiles and caches its numba functions

Standard library only for ``digest``: setup.sh runs it with the machine's Python, before .venv has anything.
"""

import hashlib
import importlib
import os
import pkgutil
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
# what pip installs into .venv: setup.sh reinstalls when their digest differs from the stamp it wrote last time
INSTALL_INPUTS = ("Code/requirement.txt", "tests/requirements.txt", "pyproject.toml")


def install_digest() -> str:
    """sha256 of the install inputs, one after the other."""
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        with open(os.path.join(ROOT, name), "rb") as file:
            digest.update(file.read())
    return digest.hexdigest()


def cache_librosa() -> None:
    """Import every librosa module in this one process. Two processes that compile librosa's gufuncs at once (test
    workers, grid workers, on a fresh .venv) can leave a gufunc's kernel and its wrapper cached under different
    names, and the next process to load both calls a null pointer (numba issue #10128, open in numba 0.68); after
    this step every process only reads the cache."""
    import librosa

    for module in pkgutil.walk_packages(librosa.__path__, "librosa."):
        importlib.import_module(module.name)


if __name__ == "__main__":
    steps = {"digest": lambda: print(install_digest()), "cache-librosa": cache_librosa}
    if len(sys.argv) != 2 or sys.argv[1] not in steps:
        sys.exit(f"usage: python setup_steps.py {{{'|'.join(steps)}}}, received {sys.argv[1:]!r}")
    steps[sys.argv[1]]()
