"""Test set-up: Code/ on the import path, the shared reference folder located, TensorFlow quiet and on the CPU."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = os.path.join(ROOT, "Code")
sys.path.insert(0, CODE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

SHARED = os.environ.get("SER_SHARED", os.path.join(ROOT, "..", "shared"))


@pytest.fixture(scope="session")
def shared() -> str:
    """../shared (or $SER_SHARED). CI always has it: its absence is a failure, never a skip."""
    reference = os.path.join(SHARED, "reference")
    if not os.path.isdir(reference):
        pytest.fail(f"shared reference folder not found at {reference}: set SER_SHARED to the shared/ folder")
    return SHARED
