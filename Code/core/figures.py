"""What every picture of the project shares: its texts drawn as they are (matplotlib imported only when one is
drawn)."""

from __future__ import annotations

import functools
from collections.abc import Callable


def plain_text(plot: Callable) -> Callable:
    """``plot`` with its texts (class, corpus and file names, possibly from elsewhere) drawn as they are, never read
    as maths: a '$' in a name began TeX, and an unknown command raised deep inside matplotlib."""
    @functools.wraps(plot)
    def plotted(*args, **kwargs):
        from matplotlib import rc_context
        with rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)
    return plotted
