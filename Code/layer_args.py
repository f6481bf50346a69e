"""The layers' argument checks: each raises a ValueError that names the layer and the argument and echoes
the received value, as keras-tcn's layers do. Shared by every network file (TIMNET, GTCM, DCNN, causal_conv).
"""

from __future__ import annotations


def check_positive_int(owner: str, name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, received {name}={value!r}")


def check_positive_number(owner: str, name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive number, received {name}={value!r}")


def check_rate(owner: str, name: str, value) -> None:
    """A dropout rate: a number in [0, 1)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), received {name}={value!r}")


def check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be True or False, received {name}={value!r}")
